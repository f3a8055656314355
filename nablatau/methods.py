"""Every unlearning method by name, ∇τ and the baselines alike: the one registry experiment loops read.

Every entry is called the same way (the convention is documented once in :mod:`nablatau.baselines`)::

    METHODS[name](model, forget, retain, val, *, <its own settings>, task="multiclass", loss=None,
                  train_mode=False, seed=None, progress=True, callback=None) -> UnlearnResult

The registry is a module of its own because the baselines import ∇τ (finetune is ∇τ with α = 0): a
registry inside :mod:`nablatau.nabla_tau` would import the baselines back, and one inside
:mod:`nablatau.baselines` would have to leave ∇τ out or special-case it.

    >>> METHODS["nablatau"] is unlearn
    True
    >>> sorted(METHODS)
    ['amnesiac', 'bad_teacher', 'finetune', 'nablatau', 'neggrad_plus', 'scrub', 'ssd']
"""

from __future__ import annotations

from collections.abc import Callable

from .baselines import METHODS as BASELINES
from .errors import ConfigError
from .nabla_tau import UnlearnResult, unlearn

#: Every unlearning method by name: ∇τ (``"nablatau"``) and the baselines of :data:`nablatau.baselines.METHODS`.
#: Retraining from scratch is the reference every method is compared with, not an entry.
METHODS: dict[str, Callable[..., UnlearnResult]] = {"nablatau": unlearn, **BASELINES}


def method(name: str) -> Callable[..., UnlearnResult]:
    """The unlearning method registered as ``name`` in :data:`METHODS`.

    Raises:
        ConfigError: an unknown name, listing the known ones.
    """
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    return METHODS[name]
