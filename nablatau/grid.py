"""A grid of specs as Ray tasks: Ray schedules, the library computes.

:func:`run_specs` turns specs (:mod:`nablatau.spec`) into a task graph and runs it on the cluster that
:mod:`nablatau.cluster` picks (``$RAY_ADDRESS``, else this machine):

- a **training** task per trained model (an original, a retrained reference), each once however many
  experiments share it, declaring a GPU on a GPU cluster; it leaves the weights in the checkpoint cache,
  which every worker reads (shared storage on a cluster);
- a **measuring** task per spec, after the trainings of the models it uses (:attr:`~nablatau.spec.Spec.needs`):
  it runs the method where there is one and measures (:func:`nablatau.runner.run_spec`), and returns the
  measured model to this process, which writes it into its results file (:func:`nablatau.runner.record`)
  as it arrives. One writer per file, and every finished spec is kept whatever fails later.

A spec whose model its results file already holds is done: a rerun runs only what is missing. A task
that fails does not stop the others; :class:`GridError` lists each failure with its spec and the worker's
traceback, and a rerun retries only them. :func:`notebook_grid` lists the specs of every notebook of
``make reproduce``; ``python -m nablatau.grid`` runs them (``RAY_ADDRESS=<head>:6379 make reproduce``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import is_int, is_number
from .cluster import error_line, resolve_address, start_ray
from .errors import NablatauError, raise_if_any
from .progress import progress_bar
from .results import load_results
from .spec import Spec

#: ``(spec, kind) -> result`` run in a worker (kind ``"train"`` or ``"measure"``); tests inject failing ones.
SpecFunction = Callable[[Spec, str], Any]

_CONTEXT: dict[tuple[str, ...], Any] = {}  # a worker's last experiment context: its next task often shares it


def compute(spec: Spec, kind: str) -> Any:
    """What a task computes: train ``spec``'s model (``kind="train"``), or run and measure it (``"measure"``:
    returns ``{"entry": the measured model, "environment": this worker's}``).

    The data comes from ``$NABLATAU_DATA_DIR`` and the models from ``$NABLATAU_CACHE_DIR``, which the task
    wrapper sets from the driver's folders. A worker keeps its last experiment's context, so a measuring task
    after a training of the same experiment reuses its data and models.
    """
    from .results import environment
    from .runner import Context, run_spec, train_spec
    from .setups import setup_of
    from .train import CheckpointCache

    key = (os.environ.get("NABLATAU_CACHE_DIR", ""), os.environ.get("NABLATAU_DATA_DIR", ""), spec.notebook,
           spec.run_id if spec.saves else spec.id)
    if key not in _CONTEXT:
        _CONTEXT.clear()
        _CONTEXT[key] = Context(setup_of(spec, cache=CheckpointCache(), progress=False))
    if kind == "train":
        return train_spec(spec, context=_CONTEXT[key])
    # The worker's environment goes into the results file: the models were computed here, not in the driver.
    return {"entry": run_spec(spec, context=_CONTEXT[key]), "environment": environment()}


def _in_worker(function: SpecFunction, spec: Spec, kind: str, threads: int, folders: dict[str, str],
               *after: Any) -> Any:
    # As many torch threads as the CPUs the task declared, so tasks do not oversubscribe a node; the folders
    # as the driver resolved them, so every worker reads the same data and cache.
    import torch

    torch.set_num_threads(threads)
    os.environ.update(folders)
    return function(spec, kind)


def done(spec: Spec, output_dir: str | Path) -> bool:
    """Whether ``spec``'s results file already holds its model (a spec that only trains is never done)."""
    path = spec.path(output_dir)
    return spec.saves and path.exists() and spec.model in load_results(path)["models"]


@dataclass
class Task:
    """One node of the graph: a spec's training or measurement, and the trainings it waits for."""

    kind: str  # "train" | "measure"
    spec: Spec
    after: list[str] = field(default_factory=list)  # keys of trainings

    @property
    def label(self) -> str:
        return self.spec.training_label if self.kind == "train" else self.spec.label


def task_graph(specs: Sequence[Spec], output_dir: str | Path) -> tuple[dict[str, Task], list[Spec]]:
    """The tasks that compute ``specs``' missing models, keyed (trainings by :attr:`Spec.training`), and the
    specs found done. Every model a missing spec uses gets a training task, which finds it in the cache
    where it was trained before: a task never trains a model that another task may be training."""
    tasks: dict[str, Task] = {}
    finished = []

    def training(spec: Spec) -> str:
        key = f"train {spec.training}"
        tasks.setdefault(key, Task("train", spec))
        return key

    for spec in dict.fromkeys(specs):
        if done(spec, output_dir):
            finished.append(spec)
            continue
        after = [training(need) for need in spec.needs]
        if spec.trains:
            after.insert(0, training(spec))
        if spec.saves:
            tasks[spec.id] = Task("measure", spec, after)
    return tasks, finished


class GridError(NablatauError):
    """Some tasks failed; every finished spec is saved and a rerun retries only the others."""

    def __init__(self, message: str, failed: dict[str, str]) -> None:
        super().__init__(message)
        self.failed = failed


@dataclass
class GridRun:
    """What :func:`run_specs` did: specs found done, specs measured now, tasks run, and the wall times."""

    done_before: list[Spec] = field(default_factory=list)
    ran: list[Spec] = field(default_factory=list)
    tasks: int = 0
    wall_s: float = 0.0  # the whole call, Ray's start included
    compute_s: float = 0.0  # first task submitted to last task finished

    def __str__(self) -> str:
        return (f"{len(self.ran)} specs measured in {self.tasks} tasks, {len(self.done_before)} already done, in "
                f"{self.wall_s:.0f} s ({self.compute_s:.0f} s of tasks)")


def run_specs(specs: Sequence[Spec], *, output_dir: str | os.PathLike, address: str | None = None,
              cpus_per_task: int = 1, gpus_per_training: float | None = None, local_cpus: int | None = None,
              cache_dir: str | os.PathLike | None = None, data_root: str | os.PathLike | None = None,
              function: SpecFunction = compute, progress: bool = True, desc: str = "specs") -> GridRun:
    """Compute every missing spec of ``specs`` as Ray tasks and write each into its results file as it finishes.

    Args:
        specs: any specs (:func:`notebook_grid`, :func:`nablatau.sweep.SweepGrid.specs`, ...).
        output_dir: root folder of the results files; written by this process only.
        address: a Ray cluster (``"auto"``, ``"<head>:6379"``, ``"ray://<head>:10001"``); None (default)
            follows ``$RAY_ADDRESS``; ``""``, or None with it unset, starts Ray here with ``local_cpus`` CPUs
            (default all); see :mod:`nablatau.cluster`. Ray already initialised is used as it is.
        cpus_per_task: CPUs every task declares; it also sets the task's torch threads.
        gpus_per_training: GPUs a training task declares; None = 1 on a cluster with GPUs, else 0. Measuring
            tasks (a method's run and the metrics) declare a quarter of that.
        cache_dir, data_root: checkpoint cache and data folders as the *workers* see them (default
            ``$NABLATAU_CACHE_DIR`` or ``./checkpoints``, ``$NABLATAU_DATA_DIR`` or ``./data``, made absolute);
            on a cluster, storage every node reads (and writes, for the cache).
        function: what a task runs (default :func:`compute`); a picklable top-level function.
        progress: show a bar over finished tasks.
        desc: the bar's title.

    Raises:
        ConfigError: a cluster that cannot be reached (at once, naming its address), or resources it lacks.
        GridError: some tasks failed; each is named with its spec and the worker's traceback.
    """
    start = time.perf_counter()
    problems = []
    if not (is_int(cpus_per_task) and cpus_per_task >= 1):
        problems.append(f"cpus_per_task must be a positive integer, got {cpus_per_task!r}")
    if gpus_per_training is not None and not (is_number(gpus_per_training) and 0 <= gpus_per_training <= 1):
        problems.append(f"gpus_per_training must be in [0, 1] (a training uses one GPU at most; 0.5 runs two on one) "
                        f"or None, got {gpus_per_training!r}")
    if not resolve_address(address) and local_cpus is not None and is_int(cpus_per_task) and cpus_per_task > local_cpus:
        problems.append(f"cpus_per_task={cpus_per_task} exceeds local_cpus={local_cpus}: no task could start; "
                        "lower cpus_per_task")
    raise_if_any(problems)
    from .data import data_dir

    output_dir = Path(output_dir).resolve()
    folders = {"NABLATAU_CACHE_DIR": str(Path(cache_dir or os.environ.get("NABLATAU_CACHE_DIR") or "checkpoints")
                                         .resolve()),
               "NABLATAU_DATA_DIR": str(data_dir(data_root).resolve())}
    tasks, finished = task_graph(specs, output_dir)
    run = GridRun(done_before=finished)
    if not tasks:
        run.wall_s = time.perf_counter() - start
        return run

    import ray

    from .runner import record

    started_here = start_ray(address, local_cpus)
    failed: dict[str, str] = {}
    pending: dict[Any, Task] = {}
    try:
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        gpus_per_training = (1.0 if gpus else 0.0) if gpus_per_training is None else gpus_per_training
        problems = []
        if cpus_per_task > resources.get("CPU", 0):
            problems.append(f"cpus_per_task={cpus_per_task} but the Ray cluster has {resources.get('CPU', 0):g} CPUs: "
                            "no task could start; lower cpus_per_task")
        if gpus_per_training > 0 and gpus == 0:
            problems.append(f"gpus_per_training={gpus_per_training} but the Ray cluster has no GPU; pass 0")
        raise_if_any(problems)
        remote = ray.remote(_in_worker)
        submit_start = time.perf_counter()
        refs: dict[str, Any] = {}
        # Trainings first (the longest tasks), then the measurements that wait for them.
        for key, task in sorted(tasks.items(), key=lambda item: item[1].kind != "train"):
            options = dict(num_cpus=cpus_per_task, name=task.label[:100],
                           num_gpus=gpus_per_training if task.kind == "train" else gpus_per_training / 4)
            refs[key] = remote.options(**options).remote(function, task.spec, task.kind, cpus_per_task, folders,
                                                         *(refs[after] for after in task.after))
            pending[refs[key]] = task
        run.tasks = len(tasks)
        with progress_bar(total=len(tasks), desc=desc, unit="task", enabled=progress) as bar:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(ready)
                try:
                    result = ray.get(ready)
                    if task.kind == "measure":
                        record(task.spec, result["entry"], output_dir, result.get("environment"))
                        run.ran.append(task.spec)
                except Exception as error:  # noqa: BLE001 - every failure is reported at the end
                    # A task whose training failed never ran (its trainings have all finished once it has): it
                    # is named once, under that training's error.
                    stopped = [tasks[key].label for key in task.after if _raises(refs[key])]
                    failed[task.label] = f"did not run: {stopped[0]} failed" if stopped else _worker_error(error)
                bar.update(1)
                bar.set_postfix_str(f"{'failed' if task.label in failed else 'done'}: {task.label}"[:60]
                                    + (f"; {len(failed)} failed" if failed else ""))
        run.compute_s = time.perf_counter() - submit_start
    finally:
        for ref in pending:  # interrupted (e.g. Ctrl-C): stop what has not finished, keep what has
            ray.cancel(ref)
        if started_here:
            ray.shutdown()
    run.wall_s = time.perf_counter() - start
    if failed:
        raise GridError(_failure_report(failed, run, output_dir), failed)
    return run


def _raises(ref: Any) -> bool:
    """Whether the finished task behind ``ref`` failed."""
    import ray

    try:
        ray.get(ref)
    except Exception:  # noqa: BLE001 - any failure counts
        return True
    return False


def _worker_error(error: BaseException) -> str:
    """The worker's traceback where Ray carried one (a ``RayTaskError``), else one line.

    Ray's first line names the worker process (pid, ip); without it, tasks failing alike read alike.
    """
    import ray

    if not isinstance(error, ray.exceptions.RayTaskError):
        return error_line(error)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("ray::") else lines)


def _failure_report(failed: dict[str, str], run: GridRun, output_dir: Path) -> str:
    # A bug fails every task alike: each error is shown once, with the tasks it stopped.
    by_error: dict[str, list[str]] = {}
    for label, why in failed.items():
        by_error.setdefault(why, []).append(label)
    lines = []
    for why, labels in by_error.items():
        more = (f" (and {len(labels) - 1} more tasks with this error: {', '.join(labels[1:4])}"
                f"{', ...' if len(labels) > 4 else ''})" if labels[1:] else "")
        detail = f": {why}" if why.startswith("did not run") else "\n  worker traceback:\n    " + why.replace("\n", "\n    ")
        lines.append(f"- {labels[0]}{more}{detail}")
    return (f"{len(failed)} of the grid's tasks failed ({len(run.ran)} specs finished now, {len(run.done_before)} were "
            f"done before; every finished one is saved under {output_dir}):\n" + "\n".join(lines)
            + "\nFix the cause and rerun to retry only them: finished specs are skipped.")


# --- The notebooks' grid ---------------------------------------------------------------------------

#: ``make reproduce``'s defaults (the Makefile passes its FRACTIONS, FORGET_CLASSES, TEXT_FRACTIONS and SEEDS).
FRACTIONS = (0.03, 0.15, 0.30)
FORGET_CLASSES = (0,)
TEXT_FRACTIONS = (0.15, 0.30)
#: The quickstart notebook's defaults, which ``make reproduce`` does not change.
QUICKSTART = {"forget_fraction": 0.15, "seeds": (1,)}


def notebook_grid(profile: str = "quick", *, seeds: Sequence[int] = (1,), split_seeds: Sequence[int] | None = None,
                  datasets: Sequence[str] = ("cifar10",), fractions: Sequence[float] = FRACTIONS,
                  forget_classes: Sequence[int] = FORGET_CLASSES, text_fractions: Sequence[float] = TEXT_FRACTIONS,
                  image_methods: Sequence[str] | None = None, text_methods: Sequence[str] | None = None,
                  sweep: bool = True) -> list[Spec]:
    """The specs of every notebook ``make reproduce`` runs, with its parameters: on each of ``datasets`` the
    original per seed (``train_original``), subset removal at every fraction and class removal per seed;
    the quickstart (CIFAR-10); the text comparison at every text fraction per seed; the α₀ sweep's grid of
    ``profile`` (CIFAR-10) with ``split_seeds`` as its forget-set seeds (default: ``seeds``, as ``make
    reproduce`` passes its SEEDS to both). ``seeds`` are model seeds, as the notebooks' ``seeds`` parameter.
    The methods default to every method of the paper's tables.
    Every spec is checked as it is made: a bad value raises before anything runs."""
    from .profiles import IMAGE_METHODS, TEXT_METHODS
    from .spec import experiment_specs
    from .sweep import sweep_grid

    image_methods = IMAGE_METHODS if image_methods is None else image_methods
    text_methods = TEXT_METHODS if text_methods is None else text_methods
    specs = [spec for seed in QUICKSTART["seeds"] for spec in experiment_specs(
        "quickstart", ["nablatau"], profile=profile, forget_fraction=QUICKSTART["forget_fraction"], seed=seed)]
    for dataset in datasets:
        common = dict(dataset=dataset, profile=profile)
        for seed in seeds:
            specs += experiment_specs("original", seed=seed, **common)
            for fraction in fractions:
                specs += experiment_specs("removal", image_methods, notebook="subset_removal", forget_fraction=fraction,
                                          seed=seed, **common)
            specs += experiment_specs("removal", image_methods, notebook="class_removal",
                                      forget_classes=tuple(forget_classes), seed=seed, **common)
    for fraction in text_fractions:
        for seed in seeds:
            specs += experiment_specs("text", text_methods, profile=profile, forget_fraction=fraction, seed=seed)
    if sweep:
        specs += sweep_grid(profile, split_seeds=seeds if split_seeds is None else split_seeds).specs
    return specs


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m nablatau.grid``: compute the notebooks' grid on the cluster ``$RAY_ADDRESS`` names (else here)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nablatau.grid", description=main.__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="model seeds (the notebooks' seeds)")
    parser.add_argument("--split-seeds", type=int, nargs="+", default=None,
                        help="the α₀ sweep's forget-set seeds (default: --seeds)")
    parser.add_argument("--datasets", nargs="+", default=["cifar10"])
    parser.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    parser.add_argument("--forget-classes", type=int, nargs="+", default=list(FORGET_CLASSES))
    parser.add_argument("--text-fractions", type=float, nargs="+", default=list(TEXT_FRACTIONS))
    parser.add_argument("--output", default="results", help="root folder of the results files")
    parser.add_argument("--cpus-per-task", type=int, default=1)
    parser.add_argument("--gpus-per-training", type=float, default=None)
    args = parser.parse_args(argv)
    specs = notebook_grid(args.profile, seeds=args.seeds, split_seeds=args.split_seeds, datasets=args.datasets,
                          fractions=args.fractions, forget_classes=args.forget_classes,
                          text_fractions=args.text_fractions)
    run = run_specs(specs, output_dir=args.output, cpus_per_task=args.cpus_per_task,
                    gpus_per_training=args.gpus_per_training, desc=f"notebook grid ({args.profile})")
    print(f"{len(specs)} specs: {run}")


if __name__ == "__main__":
    main()
