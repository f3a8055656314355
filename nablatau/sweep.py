"""The α₀ × forget-fraction sweep behind the paper's "no hyperparameter tuning" claim, run on Ray.

Trippa et al. (2024, arXiv:2403.14339, Sec. 4) swept α₀ and the forget fraction (12 × 12 values,
3 seeds) and found that α₀ = 5/3 · fraction (:func:`nablatau.nabla_tau.default_alpha0`) works from 1 %
to 50 % forgotten. This module reruns that grid so that it fills one laptop, one GPU box or a cluster:

* every grid cell is a :class:`~nablatau.spec.Spec` whose method is ∇τ at one (fraction, α₀, split seed), with
  a results file of its own; one more spec per (fraction, split seed) retrains from scratch, the gold standard the
  cells are compared with. :func:`run_sweep` runs them as Ray tasks after the original's training
  (:func:`nablatau.grid.run_specs`), measured as every removal run measures (:func:`nablatau.runner.run_spec`);
* a cell whose file exists is done: a rerun after a kill or a failure runs only the missing cells;
* :mod:`nablatau.sweep_figures` reads the files back (:func:`~nablatau.sweep_figures.load_sweep`) and turns
  them into heatmaps and the rule-vs-best-α₀ plot, without importing this module (no torch, no Ray).

Seeds: the cell's ``split_seed`` draws the forget set (``make_splits(..., seed=split_seed)``), as in the
reference sweep (Unlearning_main_experiments_split_and_alpha.ipynb); the grid's ``split_seeds`` are these
forget-set seeds, not model seeds. The validation/test halves of the held-out set are drawn once, with the
reference sweep's seed 1337 (:data:`HELDOUT_SEED`), and stay fixed across cells. The original model, its
initialisation, the loaders' order, ∇τ's own seed, the retrained model's initialisation and the attack use
seed 0 (:data:`MODEL_SEED`), so one cached original serves every cell and split seeds differ only in what is
forgotten.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .checks import as_list, forget_fraction_problems, is_int, is_number
from .errors import ConfigError, raise_if_any
from .grid import SpecFunction, compute, run_specs
from .profiles import resolve_profile
from .results import results_path
from .spec import SWEEP_HELDOUT_SEED, SWEEP_MODEL_SEED, Spec, reference_names
from .sweep_rule import NOTEBOOK, rule_alpha0

MODEL_SEED = SWEEP_MODEL_SEED  # original, loaders, ∇τ, retrained model, attack; the split seed draws the forget set
HELDOUT_SEED = SWEEP_HELDOUT_SEED  # the reference sweep's SEED: one validation/test split for every cell
TRAIN_MODE = True  # the reference sweep's net.train() during ∇τ's steps
DATASETS = ("cifar10", "cifar100")

#: The reference's grid: the same 12 values for the forget fraction and for α₀.
REFERENCE_VALUES = (0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50)

#: Grids per profile; each builds on the image profile of the same name (``resolve_profile``).
#: ``max_epochs`` caps ∇τ's epoch rule as the reference sweep did (``min(rule, 80)``).
SWEEP_PROFILES: dict[str, dict[str, Any]] = {
    # The reference's 12 × 12 × 3 = 432 cells, 30 more for the rule's α₀ where it is not a grid value,
    # and 36 retrainings, on full CIFAR: days on one GPU, hours on a cluster.
    "paper": {"fractions": REFERENCE_VALUES, "alphas": REFERENCE_VALUES, "split_seeds": (1, 2, 3), "max_epochs": 80},
    # The quick image profile (3,500 images, the SGD recipe): 2 fractions × (3 α₀ + the rule's 0.167 and
    # 0.5, each bracketed by grid values) × the reference's 3 seeds = 24 cells, 6 retrainings and the
    # original: two fractions, because each cell runs the recipe's 40-epoch original and retrainings.
    "quick": {"fractions": (0.10, 0.30), "alphas": (0.05, 0.25, 0.75), "split_seeds": (1, 2, 3), "max_epochs": 80},
    # 400 images, 2 training epochs: a 2 × 2 grid whose rule values (0.1, 0.5) are grid values, so the
    # smallest grid that still has a rule cell and a cell beside it at each fraction.
    "smoke": {"fractions": (0.06, 0.30), "alphas": (0.10, 0.50), "split_seeds": (1,), "max_epochs": 80},
}


# --- The grid ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A sweep task: ∇τ at (fraction, α₀, split seed), or (``kind="retrain"``, ``"retrain_2"``, ...) a retrained
    reference at (fraction, split seed)."""

    kind: str  # "nablatau" | "retrain" | "retrain_2" | ...
    dataset: str
    profile: str
    fraction: float
    split_seed: int  # draws the forget set; the models all use MODEL_SEED
    alpha0: float | None = None  # None for retrain cells
    is_rule: bool = False  # α₀ is the rule's 5/3 · fraction
    max_epochs: int | None = None  # ∇τ runs min(epoch rule, max_epochs) epochs
    train_mode: bool = TRAIN_MODE  # ∇τ's steps in train mode (the reference sweep) or eval mode

    @property
    def label(self) -> str:
        """For progress bars and errors, e.g. ``nablatau cifar10/quick fraction=0.15 alpha0=0.5 split_seed=1``."""
        alpha = f" alpha0={self.alpha0:g}{' (rule)' if self.is_rule else ''}" if self.kind == "nablatau" else ""
        return (f"{self.kind} {self.dataset}/{self.profile} fraction={self.fraction:g}{alpha} "
                f"split_seed={self.split_seed}")

    @property
    def spec(self) -> Spec:
        """The cell as a spec: ∇τ with this α₀ (capped epochs, the cell's mode), or the retraining."""
        settings = ({"alpha0": self.alpha0, "max_epochs": self.max_epochs, "train_mode": self.train_mode}
                    if self.kind == "nablatau" else {})
        return Spec("sweep", self.kind, dataset=self.dataset, profile=self.profile, forget_fraction=self.fraction,
                    seed=MODEL_SEED, split_seed=self.split_seed, heldout_seed=HELDOUT_SEED, method_settings=settings)

    def config(self) -> dict[str, Any]:
        """Everything that determines this cell's result; its hash names the results file.

        ``is_rule`` is left out: it says how the cell entered a grid, not what it computes, so the
        same cell found through another grid is the same file.
        """
        return self.spec.config


@dataclass(frozen=True)
class SweepGrid:
    """The validated grid of a sweep; build it with :func:`sweep_grid`."""

    dataset: str
    profile: str
    fractions: tuple[float, ...]
    alphas: tuple[float, ...]
    split_seeds: tuple[int, ...]  # forget-set seeds
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
        """The ∇τ cells, by fraction, α₀, split seed."""
        return [Cell("nablatau", self.dataset, self.profile, fraction, seed, alpha, is_rule, self.max_epochs,
                     self.train_mode)
                for fraction in self.fractions for alpha, is_rule in self.alphas_at(fraction)
                for seed in self.split_seeds]

    @property
    def retrain_cells(self) -> list[Cell]:
        """The profile's retrained references per (fraction, split seed) (:func:`nablatau.spec.reference_names`: the
        gold standard and the retrainings that measure its own spread), or none when ``retrain`` is off."""
        if not self.retrain:
            return []
        kinds = reference_names(resolve_profile(self.profile, dataset=self.dataset)["references"])
        return [Cell(kind, self.dataset, self.profile, fraction, seed)
                for fraction in self.fractions for seed in self.split_seeds for kind in kinds]

    @property
    def specs(self) -> list[Spec]:
        """Every cell as a spec: the retrainings first (the longest tasks), then the ∇τ cells."""
        return [cell.spec for cell in [*self.retrain_cells, *self.cells]]

    def table(self) -> pd.DataFrame:
        """One row per fraction: the α₀ values run there (the rule's marked ``*``) and the split seeds."""
        return pd.DataFrame([{"fraction": f, "rule α₀": rule_alpha0(f),
                              "α₀ run": ", ".join(f"{a:g}{'*' if r else ''}" for a, r in self.alphas_at(f)),
                              "split seeds": ", ".join(map(str, self.split_seeds))}
                             for f in self.fractions]).set_index("fraction")


def sweep_grid(profile: str = "smoke", *, dataset: str = "cifar10", fractions: Sequence[float] | None = None,
               alphas: Sequence[float] | None = None, split_seeds: Sequence[int] | None = None,
               max_epochs: int | None = None, retrain: bool = True, train_mode: bool = TRAIN_MODE,
               **unknown: Any) -> SweepGrid:
    """The grid of ``profile`` (:data:`SWEEP_PROFILES`), with any of its values replaced.

    Args:
        profile: ``smoke``, ``quick`` or ``paper``; also picks the image profile (data size, recipe).
        dataset: ``cifar10`` or ``cifar100``.
        fractions: forget fractions in (0, 1); the rule's α₀ must stay ≤ 1, so at most 0.6.
        alphas: α₀ values in [0, 1]; the rule's value 5/3 · fraction is added at each fraction.
        split_seeds: forget-set seeds (non-negative integers); the models all start from :data:`MODEL_SEED`.
        max_epochs: cap on ∇τ's epoch rule (the reference: 80).
        retrain: also retrain from scratch per (fraction, split seed), the reference the MIA gap uses.
        train_mode: ∇τ's steps in train mode, as the reference sweep (default), or in eval mode, as
            the reference's main image notebooks.

    Raises:
        ConfigError: listing every problem at once (unknown profile or dataset, empty lists, values
            out of range, forget sets with no sample); ``seeds=`` or ``seed=``, naming ``split_seeds``.
        TypeError: any other keyword the function does not take.
    """
    # The removal notebooks' seeds are model seeds; here they would silently mean forget sets.
    if {"seeds", "seed"} & set(unknown):
        name = "seeds" if "seeds" in unknown else "seed"
        raise ConfigError(f"sweep_grid takes no {name}: its forget-set seeds are split_seeds (e.g. "
                          f"split_seeds=[1, 2, 3]), and its models all start from seed {MODEL_SEED}")
    if unknown:
        raise TypeError(f"sweep_grid() got an unexpected keyword argument {next(iter(unknown))!r}")
    if profile not in SWEEP_PROFILES:
        raise ConfigError(f"profile must be one of {sorted(SWEEP_PROFILES)}, got {profile!r}")
    defaults = SWEEP_PROFILES[profile]
    fractions = defaults["fractions"] if fractions is None else fractions
    alphas = defaults["alphas"] if alphas is None else alphas
    split_seeds = defaults["split_seeds"] if split_seeds is None else split_seeds
    max_epochs = defaults["max_epochs"] if max_epochs is None else max_epochs
    n_train = resolve_profile(profile)["n_train"] or 50_000  # both CIFARs have 50,000 training images

    problems = []
    if dataset not in DATASETS:
        problems.append(f"dataset must be one of {DATASETS}, got {dataset!r}")
    for name, values in (("fractions", fractions), ("alphas", alphas), ("split_seeds", split_seeds)):
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
    problems += [f"split seed {s!r} is not a non-negative integer; pass e.g. split_seeds=[1, 2, 3]"
                 for s in as_list(split_seeds) if not (is_int(s) and s >= 0)]
    if not (is_int(max_epochs) and max_epochs >= 1):
        problems.append(f"max_epochs must be a positive integer (the reference caps at 80), got {max_epochs!r}")
    if not isinstance(train_mode, bool):
        problems.append(f"train_mode must be True (the reference sweep) or False, got {train_mode!r}")
    raise_if_any(problems)
    return SweepGrid(dataset, profile, tuple(sorted({float(f) for f in fractions})),
                     tuple(sorted({float(a) for a in alphas})), tuple(sorted({int(s) for s in split_seeds})),
                     int(max_epochs), bool(retrain), train_mode)


# --- Running on Ray ------------------------------------------------------------------------------------


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


def run_sweep(grid: SweepGrid, *, output_dir: str | os.PathLike, address: str | None = None,
              cpus_per_task: int = 1, gpus_per_training: float | None = None, local_cpus: int | None = None,
              cache_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
              function: SpecFunction = compute, progress: bool = True) -> SweepRun:
    """Run the grid's missing cells as Ray tasks (:func:`nablatau.grid.run_specs`); each writes
    ``<output_dir>/alpha_split_sweep/<run-id>.json``.

    Cells whose results file exists are skipped, so a rerun after a kill or a failure continues where it
    stopped. One task trains the original model (or finds it in the cache), one per (fraction, split seed) the
    retrained reference; every cell starts once the original is there. A failed cell does not stop the others.

    Args:
        grid: from :func:`sweep_grid`.
        output_dir: results folder (e.g. ``results``).
        address: a Ray cluster, or None to follow ``$RAY_ADDRESS`` (unset: this machine with ``local_cpus``
            CPUs); see :mod:`nablatau.cluster`.
        cpus_per_task: CPUs each task declares; it also sets the task's torch threads.
        gpus_per_training: GPUs a training declares (a cell a quarter of it); None = 1 with GPUs, else 0.
        cache_dir, data_root: checkpoint cache and data folders as the workers see them (shared storage
            on a cluster); default ``$NABLATAU_CACHE_DIR`` or ``./checkpoints``, ``$NABLATAU_DATA_DIR`` or ``./data``.
        function: what a task runs (default :func:`nablatau.grid.compute`); tests inject failing ones.
        progress: show a bar over finished tasks.

    Returns:
        A :class:`SweepRun`.

    Raises:
        ConfigError: a cluster that cannot be reached (at once, naming its address), or resources it lacks.
        GridError: some tasks failed; the message names each with the worker's traceback, the finished
            cells are saved, and a rerun retries only the failed ones.
    """
    start = time.perf_counter()
    cells = [*grid.retrain_cells, *grid.cells]
    by_spec = {cell.spec: cell for cell in cells}
    run = run_specs(list(by_spec), output_dir=output_dir, address=address, cpus_per_task=cpus_per_task,
                    gpus_per_training=gpus_per_training, local_cpus=local_cpus, cache_dir=cache_dir, data_root=data_root,
                    function=function, progress=progress, desc=f"α₀ × fraction sweep ({grid.profile})")
    return SweepRun(grid, Path(output_dir).resolve(), done_before=[by_spec[spec] for spec in run.done_before],
                    ran=[by_spec[spec] for spec in run.ran], wall_s=time.perf_counter() - start,
                    compute_s=run.compute_s)
