"""What the notebooks share beyond the experiments: checking the parameters papermill injected.

papermill puts its ``-p name value`` pairs in a cell of assignments after the cell tagged ``parameters``.
A name that cell does not define (``-p forget_frac 0.3``, ``-p PROFILE quick``) only makes a new variable:
papermill warns, and the run silently uses the default. Every notebook's first cell after its parameters
is ``parameters = check_parameters()``, which stops the run at once on such a name and lists the
notebook's parameters.

Seeds have one name per meaning in every notebook: ``seeds``, a list of model seeds (one run per seed;
initialisation, loader order, the attack's splits), wherever a notebook runs models per seed;
``split_seed``, the one seed of the removal notebooks' forget split and validation/test halves; and
``split_seeds``, the α₀ sweep's forget-set seeds (its models all start from one fixed seed). A seed passed
under another of these names (``-p seed 3``, or ``seeds`` to the sweep) stops the run with the name to use.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError

#: The first line of the cell papermill injects (its Python translator's comment).
INJECTED_HEADER = "# Parameters"


def assigned_names(source: str) -> list[str]:
    """The names a cell of plain assignments defines, in order (``a = 1``, ``b: int = 2``, ``c = d = 3``)."""
    names: list[str] = []
    for statement in ast.parse(source).body:
        targets = statement.targets if isinstance(statement, ast.Assign) else (
            [statement.target] if isinstance(statement, ast.AnnAssign) else [])
        names += [target.id for target in targets if isinstance(target, ast.Name) and target.id not in names]
    return names


def unknown_parameters(declared_source: str, injected_source: str) -> list[str]:
    """The names the injected cell assigns that the ``parameters`` cell does not define."""
    declared = set(assigned_names(declared_source))
    return [name for name in assigned_names(injected_source) if name not in declared]


def _as_list(value: Any) -> str:
    """``value`` written as papermill's ``-y`` list, e.g. ``[3]`` for 3."""
    return str(list(value)) if isinstance(value, (list, tuple)) else f"[{value}]"


def seed_hint(name: str, declared: Sequence[str], value: Any = "<seed>") -> str:
    """What to pass instead of a seed parameter ``name`` that a notebook declaring ``declared`` does not take;
    ``""`` when ``name`` is not a seed name or the notebook has no seed parameter for it.

        >>> print(seed_hint("seed", ["dataset", "seeds", "split_seed"], 11))
        model seeds are `seeds`, a list: -y "seeds: [11]" (the forget split's seed is `split_seed`)
    """
    if name == "seed" and "seeds" in declared:
        split = " (the forget split's seed is `split_seed`)" if "split_seed" in declared else ""
        return f'model seeds are `seeds`, a list: -y "seeds: {_as_list(value)}"{split}'
    if name in ("seed", "seeds", "split_seed") and "split_seeds" in declared:
        return ("the models all start from one fixed seed; the forget-set seeds are `split_seeds`, a list: "
                f'-y "split_seeds: {_as_list(value)}"')
    if name == "split_seeds" and "split_seed" in declared:
        return "this notebook draws one split, from `split_seed`: -p split_seed <seed>; model seeds are `seeds`"
    return ""


def check_parameters(history: Sequence[str] | None = None, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """The notebook's parameters and their values; stops on an injected name the notebook does not define.

    Call it in the cell right after the ``parameters`` cell. The cells come from the kernel's input
    history (IPython's ``In``): the cell before this one is papermill's injected cell when it starts with
    ``# Parameters``, and the one before that the ``parameters`` cell; without injection (JupyterLab,
    nbval) the cell before this one is the ``parameters`` cell and there is nothing to check.

    Args:
        history: the executed cells' sources, oldest first, ending with the calling cell (default: the
            running kernel's ``In``).
        namespace: where the values live (default: the kernel's user namespace).

    Returns:
        ``{name: value}`` for every parameter the ``parameters`` cell defines, with the injected values.

    Raises:
        ConfigError: an injected name the notebook does not define; the message lists its parameters, and
            for a seed under another seed parameter's name, the name to use (:func:`seed_hint`).
    """
    if history is None or namespace is None:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            raise ConfigError("check_parameters() runs inside a notebook kernel; pass history and namespace "
                              "to use it elsewhere")
        history = shell.user_ns.get("In", []) if history is None else history
        namespace = shell.user_ns if namespace is None else namespace
    cells = list(history)[:-1]  # the calling cell is the last one
    if not cells:
        return {}
    injected = cells[-1] if cells[-1].lstrip().startswith(INJECTED_HEADER) else None
    declared = cells[-2] if injected is not None and len(cells) >= 2 else cells[-1]
    names = assigned_names(declared)
    if injected is not None:
        unknown = unknown_parameters(declared, injected)
        if unknown:
            # Seeds have three names (module docstring): a seed under the wrong one also gets the one to use.
            hints = [f"{name!r}: {hint}" for name in unknown
                     if (hint := seed_hint(name, names, namespace.get(name, "<seed>")))]
            raise ConfigError(
                f"this notebook has no parameter {', '.join(map(repr, unknown))} (papermill -p); its parameters "
                f"are: {', '.join(names)}. Rerun with those names (lowercase), e.g. -p {names[0]} <value>."
                + "".join(f"\nFor {hint}." for hint in hints)
            )
    return {name: namespace[name] for name in names if name in namespace}

