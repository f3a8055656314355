"""Experiment profiles and the cached original model, shared by notebooks, benchmarks and tests.

A profile is a small dict of deltas over one set of defaults (the paper's settings), per experiment:

- ``paper``: the paper's exact settings — full CIFAR with the reference's 50-epoch SGD recipe, or full
  GoEmotions with RoBERTa-base (meant for a GPU).
- ``quick``: real data subsets that a 2-core CPU handles in minutes. For images, Adam without
  augmentation memorises 2,000 CIFAR-10 images, so the original model leaks membership (loss-MIA ≈
  0.85) and there is something to unlearn; the paper's recipe on so few images would need many more
  epochs. For text, the offline all-MiniLM-L6-v2 encoder on a GoEmotions subset.
- ``smoke``: seconds, for CI and nbval; the numbers mean nothing beyond "the pipeline runs".
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .data import (ImageData, ResidentLoader, TextData, TextDataset, TextSplit, UnlearningSplits,
                   can_stay_resident, random_forget_split, subset)
from .errors import ConfigError
from .evaluate import evaluate
from .losses import PerSampleLoss, cross_entropy, multilabel_bce
from .models import default_text_encoder
from .train import CIFAR_RECIPE, GOEMOTIONS_RECIPE, CheckpointCache, TrainRecipe, recipe_spec, train
from .unlearn import UnlearnResult, unlearn

#: Memorises a small subset in a dozen epochs on the CPU (see the module docstring).
OVERFIT_RECIPE = TrainRecipe(optimizer="adamw", lr=1e-3, weight_decay=0.0, epochs=12, batch_size=128)

PAPER = {
    "n_train": None,  # None = the whole training set
    "n_heldout": None,  # None = the whole test set, halved into validation and test
    "recipe": CIFAR_RECIPE,
    # Training batch size per data set where the reference differs from the recipe's: it trains the
    # CIFAR-100 original at 128 (TRAIN_Cifar100.ipynb), CIFAR-10 at 256.
    "batch_size_by_dataset": {"cifar100": 128},
    "unlearn_batch_size": 256,  # the reference's CIFAR batch size
}
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {"n_train": 2000, "n_heldout": 1000, "recipe": OVERFIT_RECIPE, "unlearn_batch_size": 64},
    "smoke": {"n_train": 400, "n_heldout": 200, "recipe": OVERFIT_RECIPE.replace(epochs=2),
              "unlearn_batch_size": 64},
}

TEXT_PAPER = {
    "n_train": None,  # None = the whole split (train 43,410 / dev 5,426 / test 5,427)
    "n_val": None,  # dev-split samples; they set ∇τ's target loss L̄_val
    "n_test": None,  # test-split samples; the attack's non-members and the test accuracy
    "encoder": "roberta-base",  # the reference's encoder; a name or a local folder
    "pooling": "pooler",  # the reference's head reads the pooled output; "mean" for sentence encoders
    "max_length": 40,
    "recipe": GOEMOTIONS_RECIPE,
    "unlearn_batch_size": 128,
}
# On 2 CPU cores MiniLM fine-tunes at ~35-50 texts/s, so quick memorises a small subset: 400 texts,
# 20 epochs of batch 16 at lr 1e-4 (lr 3e-4 sat on the label prior for a dozen epochs before learning).
# all-MiniLM-L6-v2 was trained for mean pooling, and its untrained pooler learns far slower.
TEXT_PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {"n_train": 400, "n_val": 200, "n_test": 400, "encoder": None, "pooling": "mean",
              "recipe": GOEMOTIONS_RECIPE.replace(epochs=20, lr=1e-4, batch_size=16), "unlearn_batch_size": 16},
    "smoke": {"n_train": 96, "n_val": 32, "n_test": 32, "encoder": None, "pooling": "mean",
              "recipe": GOEMOTIONS_RECIPE.replace(epochs=1, batch_size=32), "unlearn_batch_size": 16},
}

EXPERIMENTS = {"image": (PAPER, PROFILES), "text": (TEXT_PAPER, TEXT_PROFILES)}


def default_device() -> torch.device:
    """CUDA when available (the fast path: bf16, channels-last, data resident on the GPU), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_profile(name: str, experiment: str = "image", *, dataset: str | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """The settings of profile ``name`` of ``experiment`` ("image" or "text") with ``overrides`` applied.

    Unknown experiments, profiles and settings are errors, never silently ignored. A text ``encoder``
    of ``None`` means the offline default, :func:`nablatau.models.default_text_encoder`. For images,
    ``dataset`` applies ``batch_size_by_dataset`` to the training recipe (CIFAR-100 trains at 128).

        >>> resolve_profile("paper", dataset="cifar100")["recipe"].batch_size
        128
        >>> resolve_profile("paper", dataset="cifar10")["recipe"].batch_size
        256
    """
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"experiment must be one of {sorted(EXPERIMENTS)}, got {experiment!r}")
    defaults, profiles = EXPERIMENTS[experiment]
    if name not in profiles:
        raise ConfigError(f"profile must be one of {sorted(profiles)}, got {name!r}")
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown {experiment} profile settings {unknown}; the known ones are {sorted(defaults)}")
    settings = {**defaults, **profiles[name], **overrides, "profile": name, "experiment": experiment}
    if experiment == "text" and settings["encoder"] is None:
        settings["encoder"] = default_text_encoder()
    batch_size = settings.get("batch_size_by_dataset", {}).get(dataset)
    if batch_size is not None and batch_size != settings["recipe"].batch_size:
        settings["recipe"] = settings["recipe"].replace(batch_size=batch_size)
    return settings


def profile_data(data: ImageData, settings: dict[str, Any], seed: int = 0) -> tuple[Dataset, Dataset]:
    """Training and held-out sets of a profile: seeded subsets, or the full sets when sizes are None."""
    train_set, heldout = data.train, data.test
    if settings["n_train"] is not None:
        train_set = subset(train_set, settings["n_train"], seed=seed)
    if settings["n_heldout"] is not None:
        heldout = subset(heldout, settings["n_heldout"], seed=seed)
    return train_set, heldout


def _text_subset(split: TextSplit, n: int | None, seed: int, tokenizer: Any, max_length: int) -> TextDataset:
    index = torch.arange(len(split)) if n is None else subset(range(len(split)), n, seed=seed).indices
    index = torch.as_tensor(index)
    return TextDataset([split.texts[i] for i in index], split.targets[index], tokenizer, max_length)


def text_splits(data: TextData, settings: dict[str, Any], tokenizer: Any, *, forget_fraction: float,
                seed: int = 42, subset_seed: int = 0) -> tuple[TextDataset, UnlearningSplits]:
    """The tokenised training set, and retain/forget from it with val from dev and test from test.

    As in the reference text notebooks, ∇τ's target loss comes from the dev split and the attack
    compares forget samples with the test split. Subsets (``n_train``, ``n_val``, ``n_test``) are drawn
    with ``subset_seed``; the forget split uses ``seed`` (the reference's 42). Every text is tokenised
    once, here.
    """
    tokenise = dict(tokenizer=tokenizer, max_length=settings["max_length"], seed=subset_seed)
    train_set = _text_subset(data.train, settings["n_train"], **tokenise)
    retain, forget = random_forget_split(len(train_set), forget_fraction, seed)
    return train_set, UnlearningSplits(
        retain=Subset(train_set, retain.tolist()), forget=Subset(train_set, forget.tolist()),
        val=_text_subset(data.dev, settings["n_val"], **tokenise),
        test=_text_subset(data.test, settings["n_test"], **tokenise))


#: How each method runs on the text task. ∇τ and finetune follow the reference text notebook
#: (Unlearning_main_NLP): α₀ 0.5 fixed, lr 3e-4, epochs = int(|retain| / (2·|forget|)) in batches, no
#: scheduler, train mode, and the two-sided ascent term relu(Δ²) = Δ²; finetune = α 0 with twice the
#: epochs. Every method starts from :func:`nablatau.models.without_head_dropout` of the original (the
#: reference rebuilds the classifier with head dropout 0 before unlearning). The other baselines,
#: which the reference text notebook does not run, keep their own defaults in train mode; NegGrad+
#: uses AdamW at the training lr, our choice, because its SGD lr 0.01 default is meant for ResNets.
#: SSD keeps its defaults (α 10, λ 1, eval mode).
TEXT_METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "nablatau": {"loss": multilabel_bce, "alpha0": 0.5, "lr": 3e-4, "epochs_multiplier": 1,
                 "lr_end_factor": None, "ascent": "two_sided", "train_mode": True},
    "finetune": {"task": "multilabel", "lr": 3e-4, "epoch_rule": "text", "lr_end_factor": None,
                 "train_mode": True},
    "neggrad_plus": {"task": "multilabel", "optimizer": "adamw", "lr": 5e-5, "momentum": 0.0,
                     "weight_decay": 0.01, "train_mode": True},
    "scrub": {"task": "multilabel", "train_mode": True},
    "amnesiac": {"task": "multilabel", "train_mode": True},
    "bad_teacher": {"task": "multilabel", "train_mode": True},
    "ssd": {"task": "multilabel"},  # importances in eval mode, as SSD's code does
}


def trained_model(build_model: Callable[[], nn.Module], train_set: Dataset, settings: dict[str, Any], *,
                  key: dict[str, Any],
                  loss: PerSampleLoss = cross_entropy, collate_fn: Callable | None = None, seed: int = 0,
                  cache: CheckpointCache | None = None, device: torch.device | None = None,
                  progress: bool = True) -> tuple[nn.Module, dict]:
    """``build_model()`` trained on ``train_set`` with the profile's recipe, or loaded from the cache.

    The model is built right after seeding torch with ``seed``, so its initial weights, and with them
    the trained weights on the CPU, are the same for the same seed.

    ``key`` names what else determines the weights (e.g. ``{"role": "retrain", "dataset": "cifar10",
    "model": "resnet18", "forget_fraction": 0.1}``); the training-set size, recipe and seed are added.
    ``info`` holds the training wall time and history (recorded at training time, so also when the
    model comes from the cache). The model is returned on ``device`` (default :func:`default_device`).
    """
    device = device or default_device()
    recipe: TrainRecipe = settings["recipe"]
    spec = {**key, "n_train": len(train_set), "recipe": recipe_spec(recipe), "seed": seed}
    generator = torch.Generator().manual_seed(seed)
    if device.type == "cuda" and can_stay_resident([train_set], device, collate_fn):
        loader = ResidentLoader(train_set, recipe.batch_size, shuffle=True, generator=generator, device=device)
    else:
        loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, generator=generator,
                            collate_fn=collate_fn)
    torch.manual_seed(seed)
    model, info = (cache or CheckpointCache()).get_or_train(
        spec, build_model().to(device),
        lambda fresh: train(fresh, loader, recipe, loss=loss, seed=seed, progress=progress))
    return model.to(device), info


def image_model_key(dataset: str, role: str = "original", **extra: Any) -> dict[str, Any]:
    """What determines an image model's weights besides the training set, recipe and seed.

    One definition for every notebook and the sweep, so they share cached checkpoints: e.g. the
    ``"original"`` model of CIFAR-10, or the ``"retrain"`` model with ``forget_fraction`` and
    ``split_seed`` (or ``forget_classes``) in ``extra``.
    """
    return {"role": role, "dataset": dataset, "model": "resnet18", **extra}


def original_image_model(data: ImageData, dataset: str, settings: dict[str, Any], *, seed: int = 0,
                         cache: CheckpointCache | None = None, device: torch.device | None = None,
                         progress: bool = True) -> tuple[nn.Module, dict, Dataset, Dataset]:
    """The profile's original ResNet-18 (trained once, then cached), its training set and held-out set."""
    from .models import resnet18  # imported here to keep this module's top-level imports light

    train_set, heldout = profile_data(data, settings, seed=seed)
    model, info = trained_model(lambda: resnet18(data.num_classes), train_set, settings,
                                key=image_model_key(dataset), seed=seed, cache=cache, device=device,
                                progress=progress)
    return model, info, train_set, heldout


def retrained_image_model(data: ImageData, dataset: str, settings: dict[str, Any], retain: Dataset, *,
                          forget: dict[str, Any], seed: int = 0, cache: CheckpointCache | None = None,
                          device: torch.device | None = None, progress: bool = True) -> tuple[nn.Module, dict]:
    """The gold standard: a ResNet-18 trained from scratch on ``retain`` with the original's recipe.

    ``forget`` names what was removed (``{"forget_fraction": 0.1, "split_seed": 42}`` or
    ``{"forget_classes": [3]}``); it is part of the cache key, so each forget set is retrained once.
    """
    from .models import resnet18

    return trained_model(lambda: resnet18(data.num_classes), retain, settings,
                         key=image_model_key(dataset, "retrain", **forget), seed=seed, cache=cache,
                         device=device, progress=progress)


def method_function(name: str) -> Callable[..., UnlearnResult]:
    """``nablatau.unlearn`` for "nablatau", else the baseline of that name (see ``baselines.METHODS``)."""
    from .baselines import METHODS  # imported here: baselines imports this package's core modules

    functions = {"nablatau": unlearn, **METHODS}
    if name not in functions:
        raise ConfigError(f"unknown method {name!r}; choose from {sorted(functions)}")
    return functions[name]


def compare_methods(original: nn.Module, splits: UnlearningSplits, methods: Sequence[str], *, batch_size: int,
                    collate_fn: Callable | None = None,
                    method_settings: Mapping[str, Mapping[str, Any]] | None = None, task: str = "multiclass",
                    evaluated: Sequence[str] = ("retain", "forget", "test"),
                    attack: tuple[str, str] = ("forget", "test"), seed: int = 0,
                    progress: bool = True) -> dict[str, dict[str, Any]]:
    """Run every method on its own copy of ``original`` and evaluate it; the original is left untouched.

    Every method gets fresh loaders over ``splits``, seeded alike (:func:`nablatau.data.loaders`), so its
    batches do not depend on the methods run before it; every model is measured with fixed-order
    loaders. ``method_settings[name]`` holds keyword arguments for that method (e.g. the text settings
    of ∇τ). Returns, per method, the :func:`~nablatau.evaluate.evaluate` metrics plus ``runtime_s``,
    the resolved ``config`` and the per-epoch ``history``. Unknown method names fail before any work.
    """
    from .data import loaders

    functions = {name: method_function(name) for name in methods}
    unused = sorted(set(method_settings or {}) - set(methods))
    if unused:
        raise ConfigError(f"method_settings names methods that are not run: {unused}; add them to methods")
    in_order = loaders(splits, batch_size=batch_size, collate_fn=collate_fn, shuffle=False)
    measured = {name: in_order[name] for name in dict.fromkeys([*evaluated, *attack])}
    outcome = {}
    for name, function in functions.items():
        batches = loaders(splits, batch_size=batch_size, seed=seed, collate_fn=collate_fn)
        model = copy.deepcopy(original)
        result = function(model, batches["forget"], batches["retain"], batches["val"], seed=seed,
                          progress=progress, **dict((method_settings or {}).get(name, {})))
        metrics = evaluate(model, measured, task=task, attack=attack, seed=seed)
        outcome[name] = {**metrics, "runtime_s": result.wall_time_s, "config": result.config,
                         "history": result.history}
        del model
    return outcome


TABLE_COLUMNS = ("test_acc", "forget_acc", "retain_acc", "mia_loss", "mia_entropy", "runtime_s")


def results_table(models: Mapping[str, Mapping[str, Any]], columns: Sequence[str] = TABLE_COLUMNS,
                  reference: str = "retrain") -> pd.DataFrame:
    """One row per model with ``columns``, plus each runtime as a fraction of the ``reference``'s."""
    table = pd.DataFrame({name: {c: metrics.get(c, float("nan")) for c in columns} for name, metrics in models.items()}).T
    if reference in models and "runtime_s" in columns:
        table[f"runtime_vs_{reference}"] = table["runtime_s"] / models[reference]["runtime_s"]
    return table


def ranking(models: Mapping[str, Mapping[str, Any]], metric: str = "mia_loss", reference: str = "retrain",
            exclude: Sequence[str] = ("original",)) -> list[tuple[str, float]]:
    """Unlearning methods sorted by |metric − reference's metric|, closest first.

    The ``reference`` and the ``exclude``d models (by default the original, which unlearned nothing)
    are not ranked.
    """
    if reference not in models:
        raise ConfigError(f"the reference model {reference!r} is missing; got {sorted(models)}")
    target = models[reference][metric]
    gaps = [(name, abs(m[metric] - target)) for name, m in models.items()
            if name != reference and name not in exclude]
    return sorted(gaps, key=lambda item: item[1])


def closest_to_retrain(models: Mapping[str, Mapping[str, Any]], metric: str = "mia_loss") -> str:
    """A sentence naming the methods by |metric − retrain's metric| and where ∇τ ranks.

    Gaps are compared as printed (3 decimals), so equal printed gaps are called a tie, not a win.
    """
    order = [(name, round(gap, 3)) for name, gap in ranking(models, metric)]
    listing = ", ".join(f"{name} ({gap:.3f})" for name, gap in order)
    gaps = dict(order)
    if "nablatau" not in gaps:
        return f"Closest to the retrained model's {metric}: {listing}."
    own = gaps["nablatau"]
    position = 1 + sum(gap < own for gap in gaps.values())
    tied = [name for name, gap in order if gap == own and name != "nablatau"]
    if position > 1:
        verdict = f"∇τ is NOT the closest method: it ranks {position} of {len(order)}"
    elif tied:
        verdict = f"∇τ is tied for the closest method with {', '.join(tied)}"
    else:
        verdict = "∇τ is the closest method to the retrained model"
    return f"Closest to the retrained model's {metric}: {listing}. {verdict} on {metric}."
