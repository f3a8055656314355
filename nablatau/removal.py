"""The paper's experiments as the notebooks run them: one call each over :mod:`nablatau.runner`.

- :func:`run_removal`: random subset removal or class removal on CIFAR (``subset_removal`` and
  ``class_removal`` notebooks; the benchmark, with profile overrides);
- :func:`run_quickstart`: ∇τ alone against retraining on a random subset (``quickstart``);
- :func:`run_text_removal`: ∇τ and the baselines on GoEmotions (``text_removal``);
- :func:`run_train_original`: the original model and its membership gap (``train_original``).

Each trains (or loads) the original model, retrains the gold standard without the forget set, runs
every method on its own copy of the original and measures each model the same way; the results file
is saved after every model, so a rerun with the same parameters (or one after a crash) reuses the
cached checkpoints and skips every model already measured.

What is measured (the retrained model is the reference for every number):

- random subset removal: accuracy on retain, forget and test; the loss and entropy attacks between
  the forget set and the test set.
- class removal: the same, plus accuracy on the test samples of the forgotten classes and of the other
  classes; the attacks compare forget-class training samples with held-out samples of the same
  classes (``test_forget_class``), so the attack sees membership, not the class.
- text removal: the same as subset removal, plus micro/macro-F1 (multilabel). ∇τ's target loss comes
  from the dev split and the attack's non-members from the test split, as in the reference.

∇τ and finetuning are also measured over their epochs on images (:func:`nablatau.runner.is_tracked_epoch`),
for the curves. Text runs are not: measuring mid-run iterates DataLoaders, which draw from the global random generator that
the methods' dropout uses, so it would change their numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .checks import is_int
from .data import ImageData, TextData
from .errors import ConfigError
from .profiles import IMAGE_METHODS, TEXT_METHODS
from .runner import run_experiment
from .runs import RemovalRun
from .spec import experiment_specs
from .tables import shortened_trainings


def shortened_training_note(runs: Mapping[int, RemovalRun]) -> str:
    """A warning line when the runs trained their models for fewer epochs than their profile's, else ``""``."""
    shortened = shortened_trainings(run.config for run in runs.values())
    if not shortened:
        return ""
    epochs, profile_epochs = shortened[0]
    return (f"SHORTENED TRAINING: the original and the retrained model trained {epochs} epochs, not the "
            f"{next(iter(runs.values())).config['profile']} profile's {profile_epochs} "
            "(same recipe otherwise: its learning-rate decay spans the shorter run). ∇τ and the baselines are untouched.")


def run_removal(notebook: str, *, dataset: str = "cifar10", profile: str = "quick",
                forget_fraction: float | None = None, forget_classes: Sequence[int] | None = None,
                seed: int = 0, split_seed: int = 42, methods: Sequence[str] = IMAGE_METHODS,
                output_dir: str | Path = "results", data: ImageData | None = None,
                device: torch.device | None = None, progress: bool = True,
                overrides: Mapping[str, Any] | None = None, train_epochs: int | None = None) -> RemovalRun:
    """Run (or resume) one image removal experiment and return its results; see the module docstring.

    Args:
        notebook: names the results folder, ``<output_dir>/<notebook>/<run-id>.json``.
        dataset: ``"cifar10"`` or ``"cifar100"``.
        profile: ``"smoke"``, ``"quick"`` or ``"paper"`` (:func:`nablatau.profiles.resolve_profile`).
        forget_fraction: random subset removal: the fraction of the training set to forget.
        forget_classes: class removal: the class ids to forget (give exactly one of the two).
        seed: model initialisation, loader order and the attack's splits.
        split_seed: the forget split and the validation/test halves (the reference's 42).
        methods: ∇τ (``"nablatau"``) and baselines by name; original and retrain always run.
        output_dir: root folder of the results files.
        data: the loaded data set (default: :func:`nablatau.data.load_cifar` of ``dataset``).
        device: default :func:`nablatau.runner.default_device`.
        progress: show progress bars.
        overrides: profile settings to replace (e.g. ``{"n_train": 5000}``); recorded in the config.
        train_epochs: training epochs of the original and the retrained model, when they must be fewer
            than the profile's (e.g. the paper point on a CPU); recorded as ``shortened_training``.

    Returns:
        A :class:`~nablatau.runs.RemovalRun`. A method that diverges is recorded with its error and
        the others still run; ``run.failed`` lists them.

    Raises:
        ConfigError: bad forget settings, an unknown method, or a reference model among ``methods``
            (before any training).
    """
    specs = experiment_specs("removal", methods, notebook=notebook, dataset=dataset, profile=profile,
                             forget_fraction=forget_fraction, forget_classes=forget_classes, seed=seed,
                             split_seed=split_seed, overrides=dict(overrides or {}), train_epochs=train_epochs)
    return run_experiment(specs, output_dir=output_dir, data=data, device=device, progress=progress)


def run_quickstart(*, dataset: str = "cifar10", profile: str = "quick", forget_fraction: float = 0.15,
                   seed: int = 0, output_dir: str | Path = "results", data: ImageData | None = None,
                   device: torch.device | None = None, progress: bool = True) -> RemovalRun:
    """∇τ with its default rules against the original and the retrained model (``quickstart`` notebook).

    A random-subset run (forget split with the reference's seed 42) with ∇τ as the only method, saved
    as ``<output_dir>/quickstart/<run-id>.json``. Arguments as :func:`run_removal`'s.
    """
    specs = experiment_specs("quickstart", ["nablatau"], dataset=dataset, profile=profile,
                             forget_fraction=forget_fraction, seed=seed)
    return run_experiment(specs, output_dir=output_dir, data=data, device=device, progress=progress)


def run_text_removal(*, profile: str = "quick", forget_fraction: float = 0.15, seed: int = 0,
                     encoder: str | None = None, methods: Sequence[str] = TEXT_METHODS,
                     output_dir: str | Path = "results", data: TextData | None = None,
                     device: torch.device | None = None, progress: bool = True) -> RemovalRun:
    """Run (or resume) the GoEmotions removal experiment (``text_removal`` notebook).

    Args:
        profile: ``"smoke"``, ``"quick"`` or ``"paper"`` (the text profiles of :mod:`nablatau.profiles`).
        forget_fraction: the fraction of the training comments to forget (the paper: 0.15 and 0.30).
        seed: model initialisation, subsets, loader order and the attack's splits; the forget split
            uses the reference's seed 42.
        encoder: a Hugging Face name or local folder; None = the profile's encoder.
        methods: ∇τ and baselines by name (settings: ``TEXT_METHOD_SETTINGS``).
        output_dir: root folder of the results files (``<output_dir>/text_removal/<run-id>.json``).
        data: the loaded GoEmotions (default :func:`nablatau.data.load_goemotions`).
        device: default :func:`nablatau.runner.default_device`.
        progress: show progress bars.

    Returns:
        A :class:`~nablatau.runs.RemovalRun`.

    Raises:
        ConfigError: an unknown profile, setting or method (before any training).
    """
    specs = experiment_specs("text", methods, profile=profile, forget_fraction=forget_fraction, seed=seed,
                             encoder=encoder)
    return run_experiment(specs, output_dir=output_dir, data=data, device=device, progress=progress)


def check_seeds(seeds: Any) -> list[int]:
    """``seeds`` as a list of distinct non-negative integers, or a :class:`ConfigError` naming the fix."""
    if is_int(seeds):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(is_int(s) and s >= 0 for s in seeds)):
        raise ConfigError(f"seeds must be a non-empty list of non-negative integers, e.g. [1, 2, 3] (the reference's "
                          f"seeds); got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {list(seeds)} repeat a seed; a repeated seed is the same run, not another sample")
    return list(seeds)


def over_seeds(experiment: Callable[..., RemovalRun], seeds: Sequence[int], **parameters: Any) -> dict[int, RemovalRun]:
    """``{seed: experiment(seed=seed, **parameters)}``: one run (or resumed run) per seed, in order.

    The seeds are checked first, and the runs differ only in their seed, so the first run's own checks
    (made before it trains anything) cover every run: a bad parameter fails before any training.
    """
    seeds = check_seeds(seeds)
    return {seed: experiment(seed=seed, **parameters) for seed in seeds}


def run_train_original(*, dataset: str = "cifar10", profile: str = "quick", seed: int = 0, split_seed: int = 42,
                       output_dir: str | Path = "results", data: ImageData | None = None,
                       device: torch.device | None = None, progress: bool = True,
                       overrides: Mapping[str, Any] | None = None) -> RemovalRun:
    """Train (or load from the cache) the original model and measure it: what there is to unlearn.

    The attacks compare the whole training set with the test half of the held-out set (the same half
    every removal run tests on), so the loss-MIA here is the original model's membership gap.
    Saved as ``<output_dir>/train_original/<run-id>.json`` with the training history; when that file
    exists, it is returned as it is (nothing is loaded, trained or measured), as removal runs reuse theirs.
    ``overrides`` replaces profile settings as in :func:`run_removal` (e.g. ``{"n_train": 5000}``; recorded
    in the config).
    """
    # A fresh clone finds the committed results: re-measuring would retrain the original (minutes) and, on
    # another CPU, overwrite the committed numbers with slightly different ones. run_experiment loads nothing then.
    specs = experiment_specs("original", dataset=dataset, profile=profile, seed=seed, split_seed=split_seed,
                             overrides=dict(overrides or {}))
    return run_experiment(specs, output_dir=output_dir, data=data, device=device, progress=progress)
