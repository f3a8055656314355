"""The paper's image experiments: remove a random subset or whole classes, compare every method.

One call, :func:`run_removal`, does what the ``subset_removal`` and ``class_removal`` notebooks show:
train (or load) the original model, retrain the gold standard without the forget set, run ∇τ and
every baseline on its own copy of the original, and measure each model the same way. The results
file is saved after every model, so a rerun with the same parameters (or one after a crash) reuses
the cached checkpoints and skips every model already measured.

What is measured (the retrained model is the reference for every number):

- random subset removal: accuracy on retain, forget and test; the loss and entropy attacks between
  the forget set and the test set.
- class removal: the same, plus accuracy on the test samples of the forgotten classes and of the other
  classes; the attacks compare forget-class training samples with held-out samples of the same
  classes (``test_forget_class``), so the attack sees membership, not the class.

∇τ and finetuning are also measured after every epoch (MIA and test accuracy), for the curves.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from . import __version__
from .data import ImageData, load_cifar, loaders, make_splits
from .errors import ConfigError, DivergenceError, raise_if_any
from .evaluate import evaluate
from .experiment import (TABLE_COLUMNS, default_device, method_function, original_image_model, resolve_profile,
                         results_table, retrained_image_model)
from .results import load_results, results_path, save_results

#: ∇τ and the baselines in the paper's image tables, in the order the tables list them.
IMAGE_METHODS = ("nablatau", "finetune", "scrub", "ssd", "amnesiac", "neggrad_plus", "bad_teacher")

#: How each method runs on images: the defaults of :func:`nablatau.unlearn` and of each baseline are
#: the ∇τ reference notebooks' vision settings (see their docstrings; Amnesiac batches its shuffled
#: union at the reference's 128 itself); ``batch_size`` here would override the profile's unlearning
#: batch size for that method's loaders.
IMAGE_METHOD_SETTINGS: dict[str, dict[str, Any]] = {
    "nablatau": {},
    "finetune": {},
    "scrub": {},
    "ssd": {},
    "amnesiac": {},
    "neggrad_plus": {},
    "bad_teacher": {},
}

#: Methods measured after every epoch, for the MIA and test-accuracy curves.
TRACKED_METHODS = ("nablatau", "finetune")

#: Models every run has besides the methods.
REFERENCE_MODELS = ("original", "retrain")


@dataclass
class RemovalRun:
    """What one :func:`run_removal` call measured, as saved in its results file at ``path``."""

    config: dict[str, Any]
    models: dict[str, dict[str, Any]]
    path: Path

    @property
    def table(self) -> pd.DataFrame:
        """One row per model: the issue's metrics, runtime and runtime relative to retraining."""
        columns = list(TABLE_COLUMNS)
        if self.config.get("forget_classes") is not None:
            columns[3:3] = ["test_forget_class_acc", "test_other_classes_acc"]
        return results_table(self.measured, columns=columns)

    @property
    def measured(self) -> dict[str, dict[str, Any]]:
        """The models that finished, without the ones that failed."""
        return {name: m for name, m in self.models.items() if "error" not in m}

    @property
    def failed(self) -> dict[str, str]:
        """``{method: error message}`` for the methods that diverged."""
        return {name: m["error"] for name, m in self.models.items() if "error" in m}

    def history(self, name: str) -> pd.DataFrame:
        """The per-epoch history of model ``name`` (training epochs for original and retrain)."""
        return pd.DataFrame(self.models[name].get("history", []))


def removal_config(*, notebook: str, dataset: str, profile: str, forget_fraction: float | None,
                   forget_classes: Sequence[int] | None, seed: int, split_seed: int) -> dict[str, Any]:
    """Everything that determines a run's numbers: its results file is named by a hash of this."""
    problems = []
    if (forget_fraction is None) == (forget_classes is None):
        problems.append("pass exactly one of forget_fraction (subset removal, e.g. 0.1) and forget_classes "
                        f"(class removal, e.g. [3]); got {forget_fraction!r} and {forget_classes!r}")
    if forget_fraction is not None and not 0 < forget_fraction < 1:
        problems.append(f"forget_fraction must be in (0, 1), got {forget_fraction}; the paper uses 0.03, "
                        "0.15 and 0.30")
    if forget_classes is not None:
        forget_classes = [forget_classes] if isinstance(forget_classes, int) else list(forget_classes)
        if not forget_classes or not all(isinstance(c, int) and c >= 0 for c in forget_classes):
            problems.append(f"forget_classes must be a non-empty list of class ids, got {forget_classes!r}")
    raise_if_any(problems)
    return {"notebook": notebook, "dataset": dataset, "profile": profile, "forget_fraction": forget_fraction,
            "forget_classes": sorted(forget_classes) if forget_classes is not None else None, "seed": seed,
            "split_seed": split_seed, "settings": resolve_profile(profile, dataset=dataset),
            "method_settings": IMAGE_METHOD_SETTINGS, "nablatau_version": __version__}


def run_removal(notebook: str, *, dataset: str = "cifar10", profile: str = "quick",
                forget_fraction: float | None = None, forget_classes: Sequence[int] | None = None,
                seed: int = 0, split_seed: int = 42, methods: Sequence[str] = IMAGE_METHODS,
                output_dir: str | Path = "results", data: ImageData | None = None,
                device: torch.device | None = None, progress: bool = True) -> RemovalRun:
    """Run (or resume) one removal experiment and return its results; see the module docstring.

    Args:
        notebook: names the results folder, ``<output_dir>/<notebook>/<run-id>.json``.
        dataset: ``"cifar10"`` or ``"cifar100"``.
        profile: ``"smoke"``, ``"quick"`` or ``"paper"`` (:func:`nablatau.experiment.resolve_profile`).
        forget_fraction: random subset removal: the fraction of the training set to forget.
        forget_classes: class removal: the class ids to forget (give exactly one of the two).
        seed: model initialisation, loader order and the attack's splits.
        split_seed: the forget split and the validation/test halves (the reference's 42).
        methods: ∇τ (``"nablatau"``) and baselines by name; original and retrain always run.
        output_dir: root folder of the results files.
        data: the loaded data set (default: :func:`nablatau.data.load_cifar` of ``dataset``).
        device: default :func:`nablatau.experiment.default_device`.
        progress: show progress bars.

    Returns:
        A :class:`RemovalRun`. A method that diverges is recorded with its error and the others still
        run; ``run.failed`` lists them.
    """
    methods = list(dict.fromkeys(methods))
    clash = sorted(set(methods) & set(REFERENCE_MODELS))
    if clash:
        raise ConfigError(f"{clash} always run as the reference models; remove them from methods")
    for name in methods:
        method_function(name)  # unknown names fail here, before any training
    config = removal_config(notebook=notebook, dataset=dataset, profile=profile, forget_fraction=forget_fraction,
                            forget_classes=forget_classes, seed=seed, split_seed=split_seed)
    path = results_path(output_dir, notebook, config)
    models: dict[str, dict[str, Any]] = load_results(path)["models"] if path.exists() else {}
    wanted = [*REFERENCE_MODELS, *methods]
    todo = [name for name in wanted if name not in models]
    if not todo:
        print(f"Every model is already measured in {path}; delete that file to measure again.")
        return _saved_run(path, wanted)
    if models:
        print(f"Resuming {path}: {sorted(set(wanted) - set(todo))} already measured, running {todo}.")

    settings = config["settings"]
    device = device or default_device()
    data = data if data is not None else load_cifar(dataset)
    original, original_info, train_set, heldout = original_image_model(data, dataset, settings, seed=seed,
                                                                       device=device, progress=progress)
    class_removal = config["forget_classes"] is not None
    splits = make_splits(train_set, heldout, forget_fraction=forget_fraction,
                         forget_classes=config["forget_classes"], seed=split_seed)
    attack = ("forget", "test_forget_class") if class_removal else ("forget", "test")
    # Measured in a fixed order: the attack's cross-validation folds follow the sample order, and a
    # shuffled loader's order depends on how often it was iterated (by the methods run before).
    in_order = loaders(splits, batch_size=settings["unlearn_batch_size"], device=device, shuffle=False)
    measured = {name: loader for name, loader in in_order.items() if name != "val"}

    def measure(model: nn.Module, keep_losses: bool = False) -> dict[str, Any]:
        return evaluate(model, measured, attack=attack, seed=seed, sample_losses=keep_losses)

    def track(epoch: int, model: nn.Module) -> dict[str, Any]:
        scores = evaluate(model, {name: measured[name] for name in dict.fromkeys([*attack, "test"])},
                          attack=attack, seed=seed)
        return {key: scores[key] for key in ("mia_loss", "mia_entropy", "test_acc", "forget_acc")}

    def save() -> None:
        save_results(output_dir, notebook, config=config, models=models)

    for name in todo:
        if name == "original":
            models[name] = {**measure(original, keep_losses=True), "runtime_s": original_info["wall_time_s"],
                            "history": original_info.get("history", [])}
        elif name == "retrain":
            forget = ({"forget_classes": config["forget_classes"]} if class_removal
                      else {"forget_fraction": forget_fraction, "split_seed": split_seed})
            retrained, info = retrained_image_model(data, dataset, settings, splits.retain, forget=forget, seed=seed,
                                                    device=device, progress=progress)
            models[name] = {**measure(retrained, keep_losses=True), "runtime_s": info["wall_time_s"],
                            "history": info.get("history", []),
                            "config": {"recipe": settings["recipe"], "seed": seed, **forget}}
            del retrained
        else:
            method_settings = dict(IMAGE_METHOD_SETTINGS[name])
            # Fresh, identically seeded loaders for every method: its batches do not depend on which methods
            # ran before it, so a resumed run gives the numbers of an uninterrupted one.
            loader = loaders(splits, batch_size=method_settings.pop("batch_size", settings["unlearn_batch_size"]),
                             seed=seed, device=device)
            model = copy.deepcopy(original)
            try:
                result = method_function(name)(model, loader["forget"], loader["retain"], loader["val"], seed=seed,
                                               progress=progress, callback=track if name in TRACKED_METHODS else None,
                                               **method_settings)
            except DivergenceError as error:  # recorded, and the other methods still run
                models[name] = {"error": str(error), "history": getattr(error, "history", [])}
                print(f"{name} diverged: {error}")
            else:
                models[name] = {**measure(model, keep_losses=name == "nablatau"), "runtime_s": result.wall_time_s,
                                "config": result.config, "history": result.history}
            del model
        save()
    return _saved_run(path, wanted)


def _saved_run(path: Path, wanted: Sequence[str]) -> RemovalRun:
    """The run as its results file holds it (plain JSON values), restricted to the ``wanted`` models."""
    saved = load_results(path)
    return RemovalRun(saved["config"], {name: saved["models"][name] for name in wanted}, path)


def run_train_original(*, dataset: str = "cifar10", profile: str = "quick", seed: int = 0, split_seed: int = 42,
                       output_dir: str | Path = "results", data: ImageData | None = None,
                       device: torch.device | None = None, progress: bool = True) -> RemovalRun:
    """Train (or load from the cache) the original model and measure it: what there is to unlearn.

    The attacks compare the whole training set with the test half of the held-out set (the same half
    every removal run tests on), so the loss-MIA here is the original model's membership gap.
    Saved as ``<output_dir>/train_original/<run-id>.json`` with the training history.
    """
    from torch.utils.data import DataLoader, Subset

    from .data import split_heldout

    config = {"notebook": "train_original", "dataset": dataset, "profile": profile, "seed": seed,
              "split_seed": split_seed, "settings": resolve_profile(profile, dataset=dataset),
              "nablatau_version": __version__}
    device = device or default_device()
    data = data if data is not None else load_cifar(dataset)
    settings = config["settings"]
    original, info, train_set, heldout = original_image_model(data, dataset, settings, seed=seed, device=device,
                                                              progress=progress)
    _, test_index = split_heldout(len(heldout), split_seed)
    splits = {"train": train_set, "test": Subset(heldout, test_index.tolist())}
    batch = settings["unlearn_batch_size"]
    metrics = evaluate(original, {name: DataLoader(d, batch_size=batch) for name, d in splits.items()},
                       attack=("train", "test"), seed=seed, sample_losses=True)
    models = {"original": {**metrics, "runtime_s": info["wall_time_s"], "history": info.get("history", []),
                           "n_train": len(train_set), "n_test": len(splits["test"])}}
    path = save_results(output_dir, "train_original", config=config, models=models)
    return _saved_run(path, ["original"])
