"""Experiment profiles and the cached original model, shared by notebooks, benchmarks and tests.

A profile is a small dict of deltas over one set of defaults (the paper's settings):

- ``paper``: full CIFAR, the reference's 50-epoch SGD recipe with augmentation (meant for a GPU).
- ``quick``: a real CIFAR-10 subset that a 2-core CPU trains in about a minute. Adam without
  augmentation memorises it, so the original model leaks membership (loss-MIA ≈ 0.85) and there is
  something to unlearn; the paper's recipe on so few images would need many more epochs.
- ``smoke``: seconds, for CI and nbval; the numbers mean nothing beyond "the pipeline runs".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data import ImageData, ResidentLoader, subset, tensors_of
from .errors import ConfigError
from .losses import PerSampleLoss, cross_entropy
from .train import CIFAR_RECIPE, CheckpointCache, TrainRecipe, recipe_spec, train

#: Memorises a small subset in a dozen epochs on the CPU (see the module docstring).
OVERFIT_RECIPE = TrainRecipe(optimizer="adamw", lr=1e-3, weight_decay=0.0, epochs=12, batch_size=128)

PAPER = {
    "n_train": None,  # None = the whole training set
    "n_heldout": None,  # None = the whole test set, halved into validation and test
    "recipe": CIFAR_RECIPE,
    "unlearn_batch_size": 256,  # the reference's CIFAR batch size
}
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {"n_train": 2000, "n_heldout": 1000, "recipe": OVERFIT_RECIPE, "unlearn_batch_size": 64},
    "smoke": {"n_train": 400, "n_heldout": 200, "recipe": OVERFIT_RECIPE.replace(epochs=2),
              "unlearn_batch_size": 64},
}


def default_device() -> torch.device:
    """CUDA when available (the fast path: bf16, channels-last, data resident on the GPU), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_profile(name: str, **overrides: Any) -> dict[str, Any]:
    """The settings of profile ``name`` with ``overrides`` applied; unknown names and keys are errors."""
    if name not in PROFILES:
        raise ConfigError(f"profile must be one of {sorted(PROFILES)}, got {name!r}")
    unknown = sorted(set(overrides) - set(PAPER))
    if unknown:
        raise ConfigError(f"unknown profile settings {unknown}; the known ones are {sorted(PAPER)}")
    return {**PAPER, **PROFILES[name], **overrides, "profile": name}


def profile_data(data: ImageData, settings: dict[str, Any], seed: int = 0) -> tuple[Dataset, Dataset]:
    """Training and held-out sets of a profile: seeded subsets, or the full sets when sizes are None."""
    train_set, heldout = data.train, data.test
    if settings["n_train"] is not None:
        train_set = subset(train_set, settings["n_train"], seed=seed)
    if settings["n_heldout"] is not None:
        heldout = subset(heldout, settings["n_heldout"], seed=seed)
    return train_set, heldout


def trained_model(model: nn.Module, train_set: Dataset, settings: dict[str, Any], *, key: dict[str, Any],
                  loss: PerSampleLoss = cross_entropy, collate_fn: Callable | None = None, seed: int = 0,
                  cache: CheckpointCache | None = None, device: torch.device | None = None,
                  progress: bool = True) -> tuple[nn.Module, dict]:
    """``model`` (freshly built) trained on ``train_set`` with the profile's recipe, or loaded from the cache.

    ``key`` names what else determines the weights (e.g. ``{"role": "retrain", "dataset": "cifar10",
    "model": "resnet18", "forget_fraction": 0.1}``); the training-set size, recipe and seed are added.
    ``info`` holds the training wall time and history (recorded at training time, so also when the
    model comes from the cache). The model is returned on ``device`` (default :func:`default_device`).
    """
    device = device or default_device()
    recipe: TrainRecipe = settings["recipe"]
    spec = {**key, "n_train": len(train_set), "recipe": recipe_spec(recipe), "seed": seed}
    generator = torch.Generator().manual_seed(seed)
    if device.type == "cuda" and collate_fn is None and tensors_of(train_set) is not None:
        loader = ResidentLoader(train_set, recipe.batch_size, shuffle=True, generator=generator, device=device)
    else:
        loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, generator=generator,
                            collate_fn=collate_fn)
    model, info = (cache or CheckpointCache()).get_or_train(
        spec, model.to(device),
        lambda fresh: train(fresh, loader, recipe, loss=loss, seed=seed, progress=progress))
    return model.to(device), info
