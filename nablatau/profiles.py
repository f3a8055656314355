"""Experiment profiles and per-method settings: frozen values, checked when this module is imported.

A profile is a small set of deltas over one set of defaults (the paper's settings), per experiment:

- ``paper``: the paper's exact settings — full CIFAR with the reference's 50-epoch SGD recipe, or full
  GoEmotions with RoBERTa-base (meant for a GPU).
- ``quick``: the paper's procedure, smaller, on real data subsets that a 2-core CPU handles in
  minutes. For images, the paper's SGD recipe (momentum, weight decay, linear decay) trains on 3,500
  CIFAR-10 images for 40 epochs, at batch 128 and without augmentation so that the original
  memorises its training set and leaks membership, as the paper's original does: there is something
  to unlearn. ∇τ and every baseline run with their paper settings. Forty epochs, because a retrained
  model runs the same epochs on (1 − f) of the images, so (1 − f) of the steps: with fewer epochs it
  ends under-trained and is no sound reference. How the size was chosen, and what each earlier size
  measured: ``docs/profiles.md``. For text, the offline all-MiniLM-L6-v2 encoder on a GoEmotions subset.
- ``smoke``: seconds, for CI and nbval; the numbers mean nothing beyond "the pipeline runs".

Every table here is read-only (:class:`Frozen`); :func:`resolve_profile` and :func:`method_settings`
return fresh, plain copies that a caller may change.

    >>> PROFILES["quick"]["n_train"]
    3500
    >>> method_settings("nablatau", "text")["alpha0"]
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigError, raise_if_any
from .losses import multilabel_bce
from .models import OFFLINE_TEXT_ENCODER, default_text_encoder
from .train import CIFAR_RECIPE, GOEMOTIONS_RECIPE, TrainRecipe


class Frozen(dict):
    """A ``dict`` that refuses changes: shared settings no caller can alter by accident.

    It stays a ``dict`` so that it is written to JSON (results files, checkpoint keys) exactly as one.
    ``dict(frozen)`` or ``{**frozen}`` gives a changeable copy.
    """

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("these settings are read-only; change a copy, e.g. resolve_profile(name, n_train=...) "
                        "or dict(settings)")

    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore

    def __reduce__(self) -> tuple:  # pickles (e.g. to Ray workers) without calling __setitem__
        return (type(self), (dict(self),))

    def __copy__(self) -> Frozen:
        return self

    def __deepcopy__(self, memo: dict) -> Frozen:
        return self  # every value inside is frozen too


def freeze(value: Any) -> Any:
    """``value`` with every mapping inside turned into a :class:`Frozen` (other values are kept)."""
    if isinstance(value, Mapping):
        return Frozen({key: freeze(item) for key, item in value.items()})
    return value


def thaw(value: Any) -> Any:
    """A plain, changeable copy of ``value``: every mapping inside becomes a ``dict``."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    return value


# --- Image profiles ------------------------------------------------------------------------------

#: The quick image recipe: the paper's SGD recipe (lr 0.1, momentum 0.9, weight decay 5e-4, linear
#: decay to 0.001·lr) for 40 epochs at batch 128 (the reference's CIFAR-100 batch size) without
#: augmentation, so that 3,500 images are memorised on the CPU, the original and every retrained
#: model alike: the membership gap the paper's 50 augmented epochs leave on 50,000 images. See the
#: module docstring.
QUICK_IMAGE_RECIPE = CIFAR_RECIPE.replace(epochs=40, batch_size=128, augment=None)

PAPER = freeze({
    "n_train": None,  # None = the whole training set
    "n_heldout": None,  # None = the whole test set, halved into validation and test
    "recipe": CIFAR_RECIPE,
    # Training batch size per data set where the reference differs from the recipe's: it trains the
    # CIFAR-100 original at 128 (TRAIN_Cifar100.ipynb), CIFAR-10 at 256.
    "batch_size_by_dataset": {"cifar100": 128},
    "unlearn_batch_size": 256,  # the reference's CIFAR batch size
    # Retrained references per comparison, each with its own training seed: the first is the gold standard,
    # the others measure how far an exact retraining lands from it (retraining's own spread) and calibrate
    # the per-example attack.
    "references": 2,
})
PROFILES = freeze({
    "paper": {},
    "quick": {"n_train": 3500, "n_heldout": 2000, "recipe": QUICK_IMAGE_RECIPE, "unlearn_batch_size": 64},
    "smoke": {"n_train": 400, "n_heldout": 200, "recipe": QUICK_IMAGE_RECIPE.replace(epochs=2),
              "unlearn_batch_size": 8},
})

# --- Text profiles -------------------------------------------------------------------------------

TEXT_PAPER = freeze({
    "n_train": None,  # None = the whole split (train 43,410 / dev 5,426 / test 5,427)
    "n_val": None,  # dev-split samples; they set ∇τ's target loss L̄_val
    "n_test": None,  # test-split samples; the attack's non-members and the test accuracy
    "encoder": "roberta-base",  # the reference's encoder; a name or a local folder
    "pooling": "pooler",  # the reference's head reads the pooled output; "mean" for sentence encoders
    "max_length": 40,
    "recipe": GOEMOTIONS_RECIPE,
    "unlearn_batch_size": 128,
    "references": 2,  # as for images: the gold standard and retraining's own spread
})
# On 2 CPU cores MiniLM fine-tunes at ~35-50 texts/s, so quick memorises a small subset: 400 texts,
# 20 epochs of batch 16 at lr 1e-4 (lr 3e-4 sat on the label prior for a dozen epochs before learning).
# all-MiniLM-L6-v2 was trained for mean pooling, and its untrained pooler learns far slower.
TEXT_PROFILES = freeze({
    "paper": {},
    "quick": {"n_train": 400, "n_val": 200, "n_test": 400, "encoder": None, "pooling": "mean",
              "recipe": GOEMOTIONS_RECIPE.replace(epochs=20, lr=1e-4, batch_size=16), "unlearn_batch_size": 16},
    "smoke": {"n_train": 96, "n_val": 32, "n_test": 32, "encoder": None, "pooling": "mean",
              "recipe": GOEMOTIONS_RECIPE.replace(epochs=1, batch_size=32), "unlearn_batch_size": 8},
})

# --- Per-method settings -------------------------------------------------------------------------

#: ∇τ and the baselines in the paper's image tables, in the order the tables list them.
IMAGE_METHODS = ("nablatau", "finetune", "scrub", "ssd", "amnesiac", "neggrad_plus", "bad_teacher")

#: The text comparison's methods, in the order its table lists them.
TEXT_METHODS = ("nablatau", "finetune", "neggrad_plus", "scrub", "ssd", "amnesiac", "bad_teacher")

#: How each method runs on images: the defaults of :func:`nablatau.unlearn` and of each baseline are
#: the ∇τ reference notebooks' vision settings (see their docstrings; Amnesiac batches its shuffled
#: union at the reference's 128 itself); ``batch_size`` here would override the profile's unlearning
#: batch size for that method's loaders.
IMAGE_METHOD_SETTINGS = freeze({
    "nablatau": {},
    "finetune": {},
    "scrub": {},
    "ssd": {},
    "amnesiac": {},
    "neggrad_plus": {},
    "bad_teacher": {},
})

#: How each method runs on the text task. ∇τ and finetune follow the reference text notebook
#: (Unlearning_main_NLP): α₀ 0.5 fixed, lr 3e-4, epochs = int(|retain| / (2·|forget|)) in batches, no
#: scheduler, train mode, and the two-sided ascent term relu(Δ²) = Δ²; finetune = α 0 with twice the
#: epochs. Every method starts from :func:`nablatau.models.without_head_dropout` of the original (the
#: reference rebuilds the classifier with head dropout 0 before unlearning). The other baselines,
#: which the reference text notebook does not run, keep their own defaults in train mode; NegGrad+
#: uses AdamW at the training lr, our choice, because its SGD lr 0.01 default is meant for ResNets.
#: SSD keeps its defaults (α 10, λ 1, eval mode).
TEXT_METHOD_SETTINGS = freeze({
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
})

#: Per experiment: (defaults, profiles, per-method settings).
EXPERIMENTS = freeze({"image": (PAPER, PROFILES, IMAGE_METHOD_SETTINGS),
                      "text": (TEXT_PAPER, TEXT_PROFILES, TEXT_METHOD_SETTINGS)})


def _experiment(experiment: str) -> tuple[Frozen, Frozen, Frozen]:
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"experiment must be one of {sorted(EXPERIMENTS)}, got {experiment!r}")
    return EXPERIMENTS[experiment]


def resolve_profile(name: str, experiment: str = "image", *, dataset: str | None = None,
                    **overrides: Any) -> dict[str, Any]:
    """The settings of profile ``name`` of ``experiment`` ("image" or "text") with ``overrides`` applied.

    Unknown experiments, profiles and settings are errors, never silently ignored. A text ``encoder``
    of ``None`` means the offline default, named :data:`nablatau.models.OFFLINE_TEXT_ENCODER` in the
    settings (not by the folder it is installed in, so run ids do not depend on the machine). For images,
    ``dataset`` applies ``batch_size_by_dataset`` to the training recipe (CIFAR-100 trains at 128).

        >>> resolve_profile("paper", dataset="cifar100")["recipe"].batch_size
        128
        >>> resolve_profile("paper", dataset="cifar10")["recipe"].batch_size
        256

    Args:
        name: ``"paper"``, ``"quick"`` or ``"smoke"``.
        experiment: ``"image"`` or ``"text"``.
        dataset: the image data set, for its training batch size.
        overrides: settings that replace the profile's (e.g. ``n_train=5000``).

    Returns:
        A new, plain dict (the caller may change it) with ``profile`` and ``experiment`` added.

    Raises:
        ConfigError: an unknown experiment, profile or setting name, listing the valid ones.
    """
    defaults, profiles, _ = _experiment(experiment)
    if name not in profiles:
        raise ConfigError(f"profile must be one of {sorted(profiles)}, got {name!r}")
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown {experiment} profile settings {unknown}; the known ones are {sorted(defaults)}")
    raise_if_any(references_problems(overrides["references"]) if "references" in overrides else [])
    settings = thaw({**defaults, **profiles[name], **overrides, "profile": name, "experiment": experiment})
    if experiment == "text" and settings["encoder"] is None:
        default_text_encoder()  # fails now, naming the package to install, rather than when training starts
        settings["encoder"] = OFFLINE_TEXT_ENCODER
    batch_size = settings.get("batch_size_by_dataset", {}).get(dataset)
    if batch_size is not None and batch_size != settings["recipe"].batch_size:
        settings["recipe"] = settings["recipe"].replace(batch_size=batch_size)
    return settings


def references_problems(references: Any) -> list[str]:
    """Why ``references`` is not a number of retrained references; empty when it is.

    One reference cannot say how far a second exact retraining lands, so a comparison needs at least two.
    """
    if isinstance(references, bool) or not isinstance(references, int) or references < 2:
        return [f"references must be an integer >= 2 (the gold standard and at least one more retraining to "
                f"measure retraining's own spread), got {references!r}"]
    return []


def method_settings(name: str, experiment: str = "image") -> dict[str, Any]:
    """The keyword arguments method ``name`` runs with in ``experiment`` ("image" or "text"), as a new dict.

    Raises:
        ConfigError: an unknown experiment or method name, listing the valid ones.
    """
    settings = _experiment(experiment)[2]
    if name not in settings:
        raise ConfigError(f"unknown method {name!r} for the {experiment} experiment; choose from {sorted(settings)}")
    return thaw(settings[name])


def plain_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as JSON values for a results file: a callable (e.g. a loss) is named by its ``__name__``.

        >>> plain_settings(TEXT_METHOD_SETTINGS["nablatau"])["loss"]
        'multilabel_bce'
    """
    return {key: plain_settings(value) if isinstance(value, Mapping)
            else getattr(value, "__name__", repr(value)) if callable(value) else value
            for key, value in settings.items()}


def _problems() -> list[str]:
    """Every inconsistency of the tables above (checked once, at import)."""
    problems = []
    for experiment, (defaults, profiles, methods) in EXPERIMENTS.items():
        for name, deltas in profiles.items():
            unknown = sorted(set(deltas) - set(defaults))
            if unknown:
                problems.append(f"{experiment} profile {name!r} sets unknown settings {unknown}; the known ones "
                                f"are {sorted(defaults)}")
            settings = {**defaults, **deltas}
            if not isinstance(settings["recipe"], TrainRecipe):
                problems.append(f"{experiment} profile {name!r}: recipe must be a TrainRecipe")
            sizes = [key for key in ("n_train", "n_heldout", "n_val", "n_test") if key in settings]
            problems += [f"{experiment} profile {name!r}: {key} must be None (all) or a positive integer, got "
                         f"{settings[key]!r}" for key in sizes
                         if settings[key] is not None and not (isinstance(settings[key], int) and settings[key] > 0)]
            if not (isinstance(settings["unlearn_batch_size"], int) and settings["unlearn_batch_size"] > 0):
                problems.append(f"{experiment} profile {name!r}: unlearn_batch_size must be a positive integer")
            problems += [f"{experiment} profile {name!r}: {problem}" for problem in references_problems(settings["references"])]
        if set(methods) != set(IMAGE_METHODS):
            problems.append(f"{experiment} method settings must name exactly {sorted(IMAGE_METHODS)}, got "
                            f"{sorted(methods)}")
    return problems


raise_if_any(_problems())
