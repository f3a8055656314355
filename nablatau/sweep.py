"""The α₀ × forget-fraction sweep behind the paper's "no hyperparameter tuning" claim, run on Ray.

Trippa et al. (2024, arXiv:2403.14339, Sec. 4) swept α₀ and the forget fraction (12 × 12 values,
3 seeds) and found that α₀ = 5/3 · fraction (:func:`nablatau.nabla_tau.default_alpha0`) works from 1 %
to 50 % forgotten. This module reruns that grid so that it fills one laptop, one GPU box or a cluster:

* every grid cell is one Ray task that unlearns the cached original model with ∇τ at one
  (fraction, α₀, seed) and writes its own results file atomically (:func:`nablatau.results.save_results`);
  one more task per (fraction, seed) retrains from scratch, the gold standard the cells are compared with;
* a cell whose file exists is done: a rerun after a kill or a failure runs only the missing cells;
* :mod:`nablatau.sweep_figures` reads the files back (:func:`~nablatau.sweep_figures.load_sweep`) and turns
  them into heatmaps and the rule-vs-best-α₀ plot, without importing this module (no torch, no Ray).

Seeds: the cell's ``seed`` draws the forget set (``make_splits(..., seed=seed)``), as in the
reference sweep (Unlearning_main_experiments_split_and_alpha.ipynb); the validation/test halves of the
held-out set are drawn once, with the reference sweep's seed 1337 (:data:`HELDOUT_SEED`), and stay
fixed across cells. The original model, its initialisation, the loaders' order, ∇τ's own seed, the
retrained model's initialisation and the attack use seed 0 (:data:`MODEL_SEED`), so one cached
original serves every cell and seeds differ only in what is forgotten.

Mode: the reference sweep runs ∇τ's steps with ``net.train()`` (BatchNorm on batch statistics,
L̄_val measured in eval mode), unlike its main image notebooks, which stay in eval mode. The sweep
follows it by default (``train_mode=True``, recorded in every cell's config); ``train_mode=False``
sweeps the main notebooks' procedure instead.

    >>> grid = sweep_grid("smoke")
    >>> [(cell.fraction, cell.alpha0, cell.is_rule) for cell in grid.cells]
    [(0.06, 0.1, True), (0.06, 0.5, False), (0.3, 0.1, False), (0.3, 0.5, True)]
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import TensorDataset

from .data import data_dir, load_cifar, loaders, make_splits, tensors_of
from .cluster import error_line, resolve_address, start_ray
from .checks import as_list, forget_fraction_problems, is_int, is_number
from .errors import ConfigError, NablatauError, raise_if_any
from .metrics import accuracy, evaluate
from .mia import predict
from .profiles import resolve_profile
from .progress import progress_bar
from .removal import profile_data
from .results import results_path, save_results
from .runner import checkpoint_key, default_device, measuring_loaders, reference_problems, trained_model
from .sweep_rule import NOTEBOOK, rule_alpha0
from .train import CheckpointCache, recipe_spec
from .nabla_tau import default_epochs, unlearn

MODEL_SEED = 0  # original model, loaders, ∇τ, retrained model and attack; the cell seed draws the forget set
HELDOUT_SEED = 1337  # the reference sweep's SEED: one validation/test split of the held-out set for every cell
TRAIN_MODE = True  # the reference sweep's net.train() during ∇τ's steps
DATASETS = ("cifar10", "cifar100")

#: The reference's grid: the same 12 values for the forget fraction and for α₀.
REFERENCE_VALUES = (0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50)

#: Grids per profile; each builds on the image profile of the same name (``resolve_profile``).
#: ``max_epochs`` caps ∇τ's epoch rule as the reference sweep did (``min(rule, 80)``).
SWEEP_PROFILES: dict[str, dict[str, Any]] = {
    # The reference's 12 × 12 × 3 = 432 cells, 30 more for the rule's α₀ where it is not a grid value,
    # and 36 retrainings, on full CIFAR: days on one GPU, hours on a cluster.
    "paper": {"fractions": REFERENCE_VALUES, "alphas": REFERENCE_VALUES, "seeds": (1, 2, 3), "max_epochs": 80},
    # The quick image profile (3,500 images, the SGD recipe): 2 fractions × (3 α₀ + the rule's 0.167 and
    # 0.5, each bracketed by grid values) × the reference's 3 seeds = 24 cells, 6 retrainings and the
    # original: two fractions, because each cell runs the recipe's 40-epoch original and retrainings.
    "quick": {"fractions": (0.10, 0.30), "alphas": (0.05, 0.25, 0.75), "seeds": (1, 2, 3), "max_epochs": 80},
    # 400 images, 2 training epochs: a 2 × 2 grid whose rule values (0.1, 0.5) are grid values, so the
    # smallest grid that still has a rule cell and a cell beside it at each fraction.
    "smoke": {"fractions": (0.06, 0.30), "alphas": (0.10, 0.50), "seeds": (1,), "max_epochs": 80},
}


# --- The grid ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A sweep task: ∇τ at (fraction, α₀, seed), or (``kind="retrain"``) retraining at (fraction, seed)."""

    kind: str  # "nablatau" | "retrain"
    dataset: str
    profile: str
    fraction: float
    seed: int  # draws the forget set
    alpha0: float | None = None  # None for retrain cells
    is_rule: bool = False  # α₀ is the rule's 5/3 · fraction
    max_epochs: int | None = None  # ∇τ runs min(epoch rule, max_epochs) epochs
    train_mode: bool = TRAIN_MODE  # ∇τ's steps in train mode (the reference sweep) or eval mode

    @property
    def label(self) -> str:
        """A name for progress bars and errors, e.g. ``nablatau cifar10/quick fraction=0.15 alpha0=0.5 seed=1``."""
        alpha = f" alpha0={self.alpha0:g}{' (rule)' if self.is_rule else ''}" if self.kind == "nablatau" else ""
        return f"{self.kind} {self.dataset}/{self.profile} fraction={self.fraction:g}{alpha} seed={self.seed}"

    def config(self) -> dict[str, Any]:
        """Everything that determines this cell's result; its hash names the results file.

        ``is_rule`` is left out: it says how the cell entered a grid, not what it computes, so the
        same cell found through another grid is the same file.
        """
        config = {"kind": self.kind, "dataset": self.dataset, "profile": self.profile,
                  "forget_fraction": self.fraction, "seed": self.seed, "model_seed": MODEL_SEED,
                  "heldout_seed": HELDOUT_SEED, "settings": resolve_profile(self.profile, dataset=self.dataset)}
        if self.kind == "nablatau":
            config.update(alpha0=self.alpha0, max_epochs=self.max_epochs, train_mode=self.train_mode)
        return config


@dataclass(frozen=True)
class SweepGrid:
    """The validated grid of a sweep; build it with :func:`sweep_grid`."""

    dataset: str
    profile: str
    fractions: tuple[float, ...]
    alphas: tuple[float, ...]
    seeds: tuple[int, ...]
    max_epochs: int
    retrain: bool = True
    train_mode: bool = TRAIN_MODE

    def alphas_at(self, fraction: float) -> list[tuple[float, bool]]:
        """``(α₀, is_rule)`` run at ``fraction``: the grid's α₀ plus the rule's, which may be one of them."""
        rule = rule_alpha0(fraction)
        values = {alpha: math.isclose(alpha, rule, rel_tol=1e-6) for alpha in self.alphas}
        if not any(values.values()):
            values[rule] = True
        return sorted(values.items())

    @property
    def cells(self) -> list[Cell]:
        """The ∇τ cells, by fraction, α₀, seed."""
        return [Cell("nablatau", self.dataset, self.profile, fraction, seed, alpha, is_rule, self.max_epochs,
                     self.train_mode)
                for fraction in self.fractions for alpha, is_rule in self.alphas_at(fraction) for seed in self.seeds]

    @property
    def retrain_cells(self) -> list[Cell]:
        """One retraining per (fraction, seed), or none when ``retrain`` is off."""
        if not self.retrain:
            return []
        return [Cell("retrain", self.dataset, self.profile, fraction, seed)
                for fraction in self.fractions for seed in self.seeds]

    def table(self) -> pd.DataFrame:
        """One row per fraction: the α₀ values run there (the rule's marked ``*``) and the seeds."""
        return pd.DataFrame([{"fraction": f, "rule α₀": rule_alpha0(f),
                              "α₀ run": ", ".join(f"{a:g}{'*' if r else ''}" for a, r in self.alphas_at(f)),
                              "seeds": ", ".join(map(str, self.seeds))} for f in self.fractions]).set_index("fraction")


def sweep_grid(profile: str = "smoke", *, dataset: str = "cifar10", fractions: Sequence[float] | None = None,
               alphas: Sequence[float] | None = None, seeds: Sequence[int] | None = None,
               max_epochs: int | None = None, retrain: bool = True, train_mode: bool = TRAIN_MODE) -> SweepGrid:
    """The grid of ``profile`` (:data:`SWEEP_PROFILES`), with any of its values replaced.

    Args:
        profile: ``smoke``, ``quick`` or ``paper``; also picks the image profile (data size, recipe).
        dataset: ``cifar10`` or ``cifar100``.
        fractions: forget fractions in (0, 1); the rule's α₀ must stay ≤ 1, so at most 0.6.
        alphas: α₀ values in [0, 1]; the rule's value 5/3 · fraction is added at each fraction.
        seeds: forget-set seeds (non-negative integers).
        max_epochs: cap on ∇τ's epoch rule (the reference: 80).
        retrain: also retrain from scratch per (fraction, seed), the reference the MIA gap uses.
        train_mode: ∇τ's steps in train mode, as the reference sweep (default), or in eval mode, as
            the reference's main image notebooks.

    Raises:
        ConfigError: listing every problem at once (unknown profile or dataset, empty lists, values
            out of range, forget sets with no sample).
    """
    if profile not in SWEEP_PROFILES:
        raise ConfigError(f"profile must be one of {sorted(SWEEP_PROFILES)}, got {profile!r}")
    defaults = SWEEP_PROFILES[profile]
    fractions = defaults["fractions"] if fractions is None else fractions
    alphas = defaults["alphas"] if alphas is None else alphas
    seeds = defaults["seeds"] if seeds is None else seeds
    max_epochs = defaults["max_epochs"] if max_epochs is None else max_epochs
    n_train = resolve_profile(profile)["n_train"] or 50_000  # both CIFARs have 50,000 training images

    problems = []
    if dataset not in DATASETS:
        problems.append(f"dataset must be one of {DATASETS}, got {dataset!r}")
    for name, values in (("fractions", fractions), ("alphas", alphas), ("seeds", seeds)):
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable) or len(list(values)) == 0:
            problems.append(f"{name} must be a non-empty list, got {values!r}; pass e.g. {list(defaults[name])[:2]} "
                            f"or None for the {profile} profile's grid")
    problems += [problem for f in as_list(fractions) for problem in
                 forget_fraction_problems(f, name="fraction", example="pass forget fractions such as 0.1")]
    problems += [f"fraction {f:g} gives the rule's α₀ 5/3 · {f:g} = {5 / 3 * f:.3f} > 1, which ∇τ cannot run "
                 "(α₀ ≤ 1); the paper's rule covers forget fractions up to 0.5, so drop it"
                 for f in as_list(fractions) if is_number(f) and 0.6 < f < 1]
    problems += [f"fraction {f:g} of {n_train} training images forgets no image; use a fraction ≥ {1 / n_train:.2g}"
                 for f in as_list(fractions) if is_number(f) and 0 < f * n_train < 1]
    problems += [f"alpha {a!r} is not in [0, 1]; α₀ weighs the ascent term, e.g. 0.1"
                 for a in as_list(alphas) if not (is_number(a) and 0 <= a <= 1)]
    problems += [f"seed {s!r} is not a non-negative integer; pass e.g. [1, 2, 3]"
                 for s in as_list(seeds) if not (is_int(s) and s >= 0)]
    if not (is_int(max_epochs) and max_epochs >= 1):
        problems.append(f"max_epochs must be a positive integer (the reference caps at 80), got {max_epochs!r}")
    if not isinstance(train_mode, bool):
        problems.append(f"train_mode must be True (the reference sweep) or False, got {train_mode!r}")
    raise_if_any(problems)
    return SweepGrid(dataset, profile, tuple(sorted({float(f) for f in fractions})),
                     tuple(sorted({float(a) for a in alphas})), tuple(sorted({int(s) for s in seeds})),
                     int(max_epochs), bool(retrain), train_mode)


# --- One cell --------------------------------------------------------------------------------------


@dataclass
class SweepData:
    """A profile's training and held-out images as tensors: loaded once per sweep, shared through Ray."""

    dataset: str
    profile: str
    train: TensorDataset
    heldout: TensorDataset
    num_classes: int


def load_sweep_data(dataset: str, profile: str, data_root: str | os.PathLike | None = None) -> SweepData:
    """The profile's subsets of ``dataset`` (:func:`nablatau.removal.profile_data`, seed :data:`MODEL_SEED`).

    The same images, in the same order, as the other notebooks' ``profile_data``, so checkpoints are shared.
    """
    data = load_cifar(dataset, data_root)
    train_set, heldout = profile_data(data, resolve_profile(profile, dataset=dataset), seed=MODEL_SEED)
    return SweepData(dataset, profile, TensorDataset(*tensors_of(train_set)), TensorDataset(*tensors_of(heldout)),
                     data.num_classes)


def original_model(data: SweepData, cache_dir: str | os.PathLike, *, progress: bool = False) -> tuple[nn.Module, dict]:
    """The profile's original ResNet-18: trained once (seed :data:`MODEL_SEED`), then loaded from ``cache_dir``."""
    from .models import resnet18

    settings = resolve_profile(data.profile, dataset=data.dataset)
    return trained_model(lambda: resnet18(data.num_classes), data.train, settings,
                         key=checkpoint_key(settings, dataset=data.dataset), seed=MODEL_SEED,
                         cache=CheckpointCache(cache_dir), progress=progress)


def run_cell(cell: Cell, data: SweepData, output_dir: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """Run one cell and write its results file; returns the file's path.

    A ∇τ cell unlearns the cached original with ``alpha0`` for ``min(default_epochs, max_epochs)``
    epochs in the cell's mode (the other settings are ∇τ's defaults); a retrain cell trains a fresh
    ResNet-18 on the retain set with the original's recipe (cached under ``cache_dir``). Both are
    measured as the removal runs measure (:func:`nablatau.runner.measuring_loaders`): accuracy on
    retain/forget/test and the loss and entropy attacks (forget vs test), on the held-out halves of
    :data:`HELDOUT_SEED`. A retrained model is also checked against the
    original (:func:`check_reference`).
    """
    start = time.perf_counter()
    settings = resolve_profile(cell.profile, dataset=cell.dataset)
    device = default_device()
    splits = make_splits(data.train, data.heldout, forget_fraction=cell.fraction, seed=cell.seed,
                         heldout_seed=HELDOUT_SEED)
    batches = loaders(splits, batch_size=settings["unlearn_batch_size"], seed=MODEL_SEED, device=device)
    # Measured as every removal run measures its models (the runner's fixed-order loaders), so that a sweep
    # cell and the notebooks' ∇τ are two numbers of one kind.
    evaluated = measuring_loaders(splits, settings["unlearn_batch_size"], device=device)
    if cell.kind == "retrain":
        from .models import resnet18

        model, info = trained_model(
            lambda: resnet18(data.num_classes), splits.retain, settings, seed=MODEL_SEED, device=device,
            key=checkpoint_key(settings, "retrain", dataset=cell.dataset, forget_fraction=cell.fraction,
                               split_seed=cell.seed),
            cache=CheckpointCache(cache_dir), progress=False)
        entry = {"runtime_s": info["wall_time_s"], "history": info.get("history", []),
                 "config": {"recipe": recipe_spec(settings["recipe"]), "seed": MODEL_SEED,
                            "n_retain": len(splits.retain), "cached": info["cached"]}}
    else:
        model, _ = original_model(data, cache_dir)
        rule_epochs = default_epochs(len(batches["retain"]), len(batches["forget"]))
        result = unlearn(model, batches["forget"], batches["retain"], batches["val"], alpha0=cell.alpha0,
                         epochs=min(rule_epochs, cell.max_epochs), train_mode=cell.train_mode, seed=MODEL_SEED,
                         progress=False)
        entry = {"runtime_s": result.wall_time_s, "history": result.history,
                 "config": {**result.config, "rule_epochs": rule_epochs, "max_epochs": cell.max_epochs,
                            "rule_alpha0": rule_alpha0(cell.fraction)}}
    metrics = evaluate(model, evaluated, seed=MODEL_SEED)
    entry = {**metrics, **entry}
    if cell.kind == "retrain":
        entry.update(check_reference(entry, data, cache_dir, evaluated["test"]))
    entry["cell_wall_s"] = time.perf_counter() - start
    return save_results(output_dir, NOTEBOOK, config=cell.config(), models={cell.kind: entry})


def check_reference(retrained: dict[str, Any], data: SweepData, cache_dir: str | os.PathLike,
                    test_loader: Iterable) -> dict[str, Any]:
    """A retrain cell's model checked against the original before any cell is compared with it.

    The removal notebooks' check (:func:`nablatau.runner.reference_problems`: test accuracy more than 5 points
    below the original's, or a final training loss far above it), with the original measured on this
    cell's test half. Returns the original's test accuracy and final training loss, and the problems found
    (empty when the retrained model is a sound reference); the cell's results file records them and the
    sweep's verdicts do not judge a fraction against an unsound reference.
    """
    original, info = original_model(data, cache_dir)
    logits, targets = predict(original, test_loader)
    history = info.get("history") or []
    measured = {"test_acc": accuracy(logits, targets), "history": history}
    return {"original_test_acc": measured["test_acc"],
            "original_final_loss": history[-1]["loss"] if history else None,
            "reference_problems": reference_problems(measured, retrained)}


def _original_info(data: SweepData, cache_dir: str) -> dict[str, Any]:
    # The task that trains (or finds) the original returns only how: the weights stay in the cache.
    _, info = original_model(data, cache_dir)
    return {key: info[key] for key in ("cached", "path", "wall_time_s")}


#: ``(cell, data, output_dir, cache_dir) -> results path``; tests inject one that fails on purpose.
CellFunction = Callable[[Cell, SweepData, str, str], Path]


# --- Running on Ray ------------------------------------------------------------------------------------


class SweepError(NablatauError):
    """Some cells of a sweep failed; the finished ones are saved and a rerun retries only the others."""

    def __init__(self, message: str, failed: dict[str, str]) -> None:
        super().__init__(message)
        self.failed = failed


@dataclass
class SweepRun:
    """What :func:`run_sweep` did: cells found done, cells run now, and the wall times."""

    grid: SweepGrid
    output_dir: Path
    done_before: list[Cell] = field(default_factory=list)
    ran: list[Cell] = field(default_factory=list)
    wall_s: float = 0.0  # the whole call, Ray's start included
    compute_s: float = 0.0  # first task submitted to last task finished

    @property
    def paths(self) -> list[Path]:
        """The results file of every cell of the grid (all exist after a successful run)."""
        return [results_path(self.output_dir, NOTEBOOK, cell.config())
                for cell in [*self.grid.retrain_cells, *self.grid.cells]]

    def __str__(self) -> str:
        return (f"{len(self.ran)} cells run, {len(self.done_before)} already done, in {self.wall_s:.0f} s "
                f"({self.compute_s:.0f} s of tasks)")


PREREQUISITES = ("loading the data", "the original model")  # the tasks that cells wait for, by label


def _in_worker(function: Callable[..., Any], threads: int, *args: Any) -> Any:
    # Every task uses as many torch threads as the CPUs it declared, so tasks do not oversubscribe a node.
    torch.set_num_threads(threads)
    return function(*args)


def run_sweep(grid: SweepGrid, *, output_dir: str | os.PathLike, address: str | None = None,
              cpus_per_cell: int = 1, gpus_per_cell: float | None = None, local_cpus: int | None = None,
              cache_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
              cell_function: CellFunction = run_cell, progress: bool = True) -> SweepRun:
    """Run the grid's missing cells as Ray tasks; each writes ``<output_dir>/alpha_split_sweep/<run-id>.json``.

    Cells whose results file exists are skipped, so a rerun after a kill or a failure continues where
    it stopped. One task loads the profile's data and puts it in Ray's object store, one trains the
    original model (or finds it in the cache); every cell starts once both are there. A failed cell does
    not stop the others.

    Args:
        grid: from :func:`sweep_grid`.
        output_dir: results folder (e.g. ``results``); on a cluster, storage every node writes to.
        address: a Ray cluster (``"auto"``, ``"<head>:6379"``, ``"ray://<head>:10001"``); None (default)
            follows Ray's ``$RAY_ADDRESS``; empty, or None with ``$RAY_ADDRESS`` unset, starts Ray on this
            machine with ``local_cpus`` CPUs (default all); see :mod:`nablatau.cluster`. Ray already
            initialised is used as it is.
        cpus_per_cell: CPUs each task declares; it also sets the task's torch threads.
        gpus_per_cell: GPU fraction each task declares (0.25 = four cells per GPU); ``None`` = 0.25
            when the cluster has GPUs, else 0.
        cache_dir, data_root: checkpoint cache and data folders as the *workers* see them (default
            ``$NABLATAU_CACHE_DIR`` or ``./checkpoints``, ``$NABLATAU_DATA_DIR`` or ``./data``, made
            absolute); on a cluster both must be shared storage every node can read (and write, for the cache).
        cell_function: what a task runs (default :func:`run_cell`); a picklable top-level function.
        progress: show a bar over finished cells.

    Returns:
        A :class:`SweepRun`.

    Raises:
        ConfigError: a cluster that cannot be reached (at once, naming its address), or resources it
            cannot provide.
        SweepError: some cells failed; the message lists them, the finished ones are saved, and
            a rerun retries only the failed ones.
    """
    start = time.perf_counter()
    problems = []
    if not (is_int(cpus_per_cell) and cpus_per_cell >= 1):
        problems.append(f"cpus_per_cell must be a positive integer, got {cpus_per_cell!r}")
    if gpus_per_cell is not None and not (is_number(gpus_per_cell) and 0 <= gpus_per_cell <= 1):
        problems.append(f"gpus_per_cell must be a GPU fraction in [0, 1] (e.g. 0.25) or None, got {gpus_per_cell!r}")
    if not resolve_address(address) and local_cpus is not None and is_int(cpus_per_cell) and cpus_per_cell > local_cpus:
        problems.append(f"cpus_per_cell={cpus_per_cell} exceeds local_cpus={local_cpus}: no task could start; "
                        "lower cpus_per_cell")
    raise_if_any(problems)
    output_dir = Path(output_dir).resolve()
    cache_dir = str(Path(cache_dir or os.environ.get("NABLATAU_CACHE_DIR") or "checkpoints").resolve())
    data_root = str(data_dir(data_root).resolve())
    cells = [*grid.retrain_cells, *grid.cells]  # retraining is the longest task: start it first
    done = [cell for cell in cells if results_path(output_dir, NOTEBOOK, cell.config()).exists()]
    run = SweepRun(grid, output_dir, done_before=done)
    missing = [cell for cell in cells if cell not in set(done)]
    if not missing:
        run.wall_s = time.perf_counter() - start
        return run

    import ray

    started_here = start_ray(address, local_cpus)
    failed: dict[str, str] = {}
    pending: dict[Any, Cell | str] = {}
    try:
        resources = ray.cluster_resources()
        if gpus_per_cell is None:
            gpus_per_cell = 0.25 if resources.get("GPU", 0) > 0 else 0.0
        problems = []
        if cpus_per_cell > resources.get("CPU", 0):
            problems.append(f"cpus_per_cell={cpus_per_cell} but the Ray cluster has {resources.get('CPU', 0):g} "
                            "CPUs: no task could start; lower cpus_per_cell")
        if gpus_per_cell > 0 and resources.get("GPU", 0) == 0:
            problems.append(f"gpus_per_cell={gpus_per_cell} but the Ray cluster has no GPU; pass gpus_per_cell=0")
        raise_if_any(problems)
        task = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell)(_in_worker)
        submit_start = time.perf_counter()
        data = task.options(name="load data").remote(load_sweep_data, cpus_per_cell, grid.dataset, grid.profile,
                                                     data_root)
        pending[data] = PREREQUISITES[0]
        # Every cell needs the original: a ∇τ cell unlearns it, a retrain cell checks itself against it. One
        # task trains it; the cells receive its info only to wait for it (Ray starts a task once its arguments
        # exist), because the checkpoint cache has no lock and a cell finding no original would train its own.
        original = task.options(name="original model").remote(_original_info, cpus_per_cell, data, cache_dir)
        pending[original] = PREREQUISITES[1]
        for cell in missing:
            ref = task.options(name=cell.label).remote(_run_after, cpus_per_cell, cell_function, cell, data,
                                                       str(output_dir), cache_dir, original)
            pending[ref] = cell
        with progress_bar(total=len(cells), initial=len(done), desc=f"α₀ × fraction sweep ({grid.profile})",
                          unit="cell", enabled=progress) as bar:
            bar.set_postfix_str("loading the data and the original model first")
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                what = pending.pop(ready)
                name = what.label if isinstance(what, Cell) else what
                try:
                    ray.get(ready)
                    if isinstance(what, Cell):
                        run.ran.append(what)
                except Exception as error:  # noqa: BLE001 - every failure is reported at the end
                    failed[name] = error_line(error)
                if isinstance(what, Cell):
                    bar.update(1)
                state = "failed" if name in failed else "done"
                bar.set_postfix_str(f"{state}: {name}"[:60] + (f"; {len(failed)} failed" if failed else ""))
        run.compute_s = time.perf_counter() - submit_start
    finally:
        for ref in pending:  # interrupted (e.g. Ctrl-C): stop what has not finished, keep what has
            ray.cancel(ref)
        if started_here:
            ray.shutdown()
    run.wall_s = time.perf_counter() - start
    if failed:
        # Cells waiting on a failed prerequisite (data, original) fail with its error: name each error once.
        by_error: dict[str, list[str]] = {}
        for name, why in failed.items():
            by_error.setdefault(why, []).append(name)
        lines = [f"- {names[0]}: {why}" + (f" (and {len(names) - 1} more tasks with this error)" if names[1:] else "")
                 for why, names in by_error.items()]
        lines = "\n".join(lines)
        raise SweepError(
            f"{len(failed)} of the sweep's tasks failed ({len(run.ran)} cells finished now, "
            f"{len(done)} were done before; their results are saved under {output_dir / NOTEBOOK}):\n{lines}\n"
            "Fix the cause and rerun to retry only them: finished cells are skipped.", failed)
    return run


def _run_after(function: CellFunction, cell: Cell, data: SweepData, output_dir: str, cache_dir: str,
               *prerequisites: Any) -> Path:
    return function(cell, data, output_dir, cache_dir)
