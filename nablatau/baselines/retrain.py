"""Retraining from scratch on the retain set: the gold standard every unlearning method is measured by."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Unpack

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import ConfigError, raise_if_any
from ..batches import model_device
from ..loop import UnlearnResult, loader_samples, precision_of
from ..train import CIFAR_RECIPE, TrainRecipe, recipe_spec, train, training_loader
from .common import Shared, SharedSettings, reset_parameters, task_problems


def retrain(model: nn.Module, forget: DataLoader, retain: DataLoader, val: DataLoader, *,
            recipe: TrainRecipe = CIFAR_RECIPE, build_model: Callable[[], nn.Module] | None = None, seed: int = 0,
            **shared: Unpack[SharedSettings]) -> UnlearnResult:
    """Retrain from scratch on the retain set: the gold standard every unlearning method is measured by.

    ``model`` is re-initialised in place after ``torch.manual_seed(seed)``: with the weights of a fresh
    ``build_model()`` when given (the architecture's own initialiser, e.g. torchvision ResNet's Kaiming
    init, hence exactly the initialisation the original model was trained from when it was built the
    same way), else by calling ``reset_parameters()`` on every submodule that has one (PyTorch's default
    layer initialisation; parameters held directly by modules without it keep their trained values).
    It is then trained with :func:`nablatau.train.train` and ``recipe`` on a new loader over
    the samples the retain loader draws (``retain.dataset``, or its sampler's subset:
    :func:`~nablatau.loop.loader_samples`) with the recipe's batch size (not the retain loader's), shuffled by a generator
    seeded with ``seed``, without an incomplete last batch (:func:`~nablatau.train.training_loader`).
    The forget loader is never read and ``val`` is unused.

    Not in :data:`~nablatau.baselines.METHODS`: the experiment runner trains the retrained reference
    through its checkpoint cache, so each forget set is retrained once.

    Of the shared parameters (:mod:`nablatau.baselines`) it takes ``task``, ``loss`` (the training loss),
    ``progress`` and ``callback``, and not ``train_mode``: training sets the modes, and the caller's mode
    is restored at the end. ``model``'s trained weights are discarded; only the retain samples (and the
    retain loader's ``collate_fn``) is used. ``callback`` is called once, as
    ``callback(recipe.epochs - 1, model)`` after training (``train`` has no per-epoch hook); its mapping
    joins the last history row.

    Args:
        recipe: the training recipe, e.g. :data:`~nablatau.train.CIFAR_RECIPE` (default) or
            :data:`~nablatau.train.GOEMOTIONS_RECIPE`.
        build_model: builds a freshly initialised model of the same architecture; default: reset
            parameters in place.
        seed: seeds the initialisation, the shuffling and :func:`~nablatau.train.train`; on the CPU the
            same seed gives identical weights. Default 0.

    Returns:
        An :class:`~nablatau.nabla_tau.UnlearnResult` whose config holds the recipe as a plain dict, and
        whose history is :func:`~nablatau.train.train`'s (``epoch`` counted from 1, ``loss``, ``lr``,
        ``elapsed_s``); ``wall_time_s`` is the training time.

    Raises:
        ConfigError: not a TrainRecipe, unknown task, an empty retain set or one without ``.dataset``.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite training loss.
    """
    run = Shared.parse("retrain", shared, train_mode=None)
    problems = task_problems(run.task)
    if not isinstance(recipe, TrainRecipe):
        problems.append(f"recipe must be a TrainRecipe, got {type(recipe).__name__}; use e.g. "
                        "nablatau.train.CIFAR_RECIPE or TrainRecipe(...)")
    try:
        dataset = loader_samples(retain, method="retrain", role="retain")
    except ConfigError as error:
        problems.append(str(error))
    else:
        if not len(dataset):
            problems.append("the retain loader is empty; retraining needs at least one retain sample")
    if build_model is not None and (isinstance(build_model, nn.Module) or not callable(build_model)):
        problems.append(f"build_model must be a function returning a fresh model, got a "
                        f"{type(build_model).__name__}; pass e.g. nablatau.models.resnet18 (not a model "
                        "instance) or leave it None")
    raise_if_any(problems)
    config = run.config(forget, retain, val, recipe=recipe_spec(recipe), epochs=recipe.epochs, seed=seed,
                        init="build_model" if build_model is not None else "reset_parameters",
                        precision=precision_of(model_device(model)))
    was_training = model.training
    torch.manual_seed(seed)
    if build_model is not None:
        model.load_state_dict(build_model().state_dict())
    else:
        reset_parameters(model)
    generator = torch.Generator().manual_seed(seed)
    loader = training_loader(dataset, recipe.batch_size, generator=generator,
                             collate_fn=getattr(retain, "collate_fn", None))
    try:
        trained = train(model, loader, recipe, loss=run.loss_function, seed=seed, progress=run.progress)
        result = UnlearnResult(config=config, history=trained.history, wall_time_s=trained.wall_time_s)
        callback_start = time.perf_counter()
        if run.callback is not None:  # kept out of wall_time_s, as in the other methods
            result.history[-1].update(run.callback(recipe.epochs - 1, model) or {})
        config["callback_s"] = time.perf_counter() - callback_start if run.callback is not None else 0.0
    finally:
        model.train(was_training)
    return result
