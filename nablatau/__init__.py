"""nablatau: the reference, reproducible implementation of ∇τ (Trippa et al. 2024, arXiv:2403.14339).

    >>> import nablatau
    >>> result = nablatau.unlearn(model, forget_loader, retain_loader, val_loader)  # doctest: +SKIP
    >>> metrics = nablatau.evaluate(model, {"retain": ..., "forget": ..., "test": ...})  # doctest: +SKIP

Modules: :mod:`~nablatau.unlearn` (the algorithm), :mod:`~nablatau.mia` (attacks),
:mod:`~nablatau.evaluate`, :mod:`~nablatau.data`, :mod:`~nablatau.models`, :mod:`~nablatau.train`,
:mod:`~nablatau.baselines` (finetune, NegGrad+, SCRUB, Amnesiac, Bad Teacher, SSD, and retraining from
scratch, the reference), :mod:`~nablatau.profiles` (profiles, per-method settings),
:mod:`~nablatau.runner` (the experiment runner, cached models), :mod:`~nablatau.removal` (the notebooks'
experiments), :mod:`~nablatau.tables`, :mod:`~nablatau.results`, :mod:`~nablatau.losses`,
:mod:`~nablatau.batches`, :mod:`~nablatau.errors`.
"""

from . import baselines, data, losses, models, train
from .data import (UnlearningSplits, class_forget_split, load_cifar, load_goemotions, loaders, make_splits,
                   random_forget_split, split_heldout)
from .errors import (CheckpointError, ConfigError, DataError, DataNotFoundError, DivergenceError,
                     NablatauError, ShapeError)
from .evaluate import evaluate
from .mia import MIAResult, population_mia
from .models import TextClassifier, resnet18
from .train import CIFAR_RECIPE, GOEMOTIONS_RECIPE, CheckpointCache, TrainRecipe
from .baselines import METHODS
from .unlearn import (UnlearnResult, alpha_at, default_alpha0, default_epochs, refreshes_target_loss,
                      unlearn)

__version__ = "0.1.0"

__all__ = [
    "CIFAR_RECIPE", "METHODS", "CheckpointCache", "CheckpointError", "ConfigError", "DataError",
    "DataNotFoundError", "DivergenceError", "GOEMOTIONS_RECIPE", "MIAResult", "NablatauError",
    "ShapeError", "TextClassifier", "TrainRecipe", "UnlearnResult", "UnlearningSplits", "alpha_at",
    "baselines", "class_forget_split", "data", "default_alpha0", "default_epochs", "evaluate", "load_cifar",
    "load_goemotions", "loaders", "losses", "make_splits", "models", "population_mia",
    "random_forget_split", "refreshes_target_loss", "resnet18", "split_heldout", "train", "unlearn",
]
