"""Plan the paper's full grid on a GPU cluster: its task graph, GPU-hours and makespan on 1, 4, 16 and 64 GPUs.

The graph is the library's own: the specs of every notebook ``make reproduce PROFILE=paper`` runs
(:func:`nablatau.grid.notebook_grid` with the Makefile's FRACTIONS, FORGET_CLASSES, SEEDS_paper and
TEXT_FRACTIONS, on CIFAR-10 and CIFAR-100), plus the α₀ sweep on each other data set of ``--sweep-datasets``,
turned into tasks by :func:`nablatau.grid.task_graph` as :func:`nablatau.grid.run_specs` would run them:

* a ``train`` task per trained model (an original, each retrained reference), once however many specs share it;
* a ``measure`` task per spec, after the trainings it needs (:attr:`nablatau.spec.Spec.needs`): a reference
  model is measured; a method runs and is measured; a sweep cell runs ∇τ and is measured.

No Ray, no training: the graph is built against an empty output folder, so every spec is missing, and then
list-scheduled with a duration per task in GPU-seconds. No GPU run is committed, so each absolute time rests
on the estimate of one training (``--train-minutes``, ``--text-train-minutes``, the constants below, each with
its reason). Everything else is scaled from those by ratios measured in the committed results (``results/``),
which carry over between machines where seconds do not: a retraining costs the original times its share of
the training set; a method costs its measured ratio to retraining (the paper-profile point where it was
measured, otherwise the quick results calibrated by the paper point); a further retrained reference
(``retrain_2``, ...) costs what the first does, the same retain set and recipe under another seed, and is
measured as it is; a ∇τ sweep cell costs its steps and validation passes, counted with the library's epoch rule,
at the paper point's measured cost per image; a measurement costs forward passes at the cost the paper point's
per-epoch measurements took.

Scheduling: greedy list scheduling, one task per GPU, a task starts once its dependencies have finished, and
among ready tasks the one with the longest remaining path (its duration plus its longest chain of dependants)
starts first. Prints markdown.

    .venv/bin/python benchmarks/plan_cluster.py
    .venv/bin/python benchmarks/plan_cluster.py --train-minutes 20 --gpus 8 32
"""

from __future__ import annotations

import argparse
import heapq
import inspect
import math
import re
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from nablatau.data import GOEMOTIONS_TRAIN_SIZE, forget_size, image_dataset_size
from nablatau.grid import Task as SpecTask
from nablatau.grid import notebook_grid, task_graph
from nablatau.nabla_tau import default_epochs, refreshes_target_loss, unlearn
from nablatau.profiles import IMAGE_METHODS, PROFILES, TEXT_METHODS, TEXT_PROFILES, resolve_profile
from nablatau.references import reference_index
from nablatau.results import load_results
from nablatau.runner import is_tracked_epoch
from nablatau.spec import Spec
from nablatau.sweep import sweep_grid

REPO = Path(__file__).resolve().parents[1]

# --- Estimates: no GPU run is committed, so these set every absolute GPU time ---------------------------------
ESTIMATES = {  # name: (default, command-line flag, reason)
    "TRAIN_MINUTES": (5.0, "--train-minutes", "the paper's CIFAR-10 original (50 epochs of 50,000 augmented images, "
                      "batch 256) on one A100/H100-class GPU. nablatau.models.resnet18 is torchvision's ImageNet "
                      "ResNet-18, whose stem shrinks a 32x32 image to 8x8: 37 M multiply-adds a forward pass, 1/15 "
                      "of the CIFAR-style ResNet-18 behind estimates like '15-25 min for 50 epochs'. In bf16 with "
                      "data and augmentation on the GPU a step is bound by kernel launches; 5 min is 8,300 images/s, "
                      "7x the 1,158 images/s two AVX-512 cores measured (docs/reproducing.md) - deliberately on the slow side"),
    "CIFAR100_TRAIN_FACTOR": (1.6, "--cifar100-factor", "CIFAR-100 trains the same images and epochs at batch 128 "
                              "(PAPER['batch_size_by_dataset']): twice the steps, which cost nearly as much as "
                              "steps of 256 where launches bind. Unlearning (batch 256 on both) is not scaled"),
    "TEXT_TRAIN_MINUTES": (10.0, "--text-train-minutes", "RoBERTa-base on GoEmotions (43,410 comments of 40 tokens, "
                           "10 epochs at batch 128): <=30 GFLOP a comment, 13 PFLOP, 4-7 min at 30-50 TFLOP/s "
                           "sustained in bf16; doubled for per-step overheads"),
    "TASK_OVERHEAD_S": (10.0, "--overhead-s", "added to every task: Ray reuses workers, so torch's import and CUDA's "
                        "start are paid about once per GPU, but each task still loads its data, a checkpoint, and "
                        "runs the CPU-side parts (the attack's logistic regression) that no GPU shortens"),
}
FALLBACKS = {  # used only where the results folder holds no measurement
    "METHOD_RATIO": (0.15, "a method's time over retraining's (the paper point measured 0.11 for ∇τ)"),
    "FORWARD_COST": (1 / 3, "a measuring forward pass over a training step, per image (a step ≈ 3 forwards)"),
    "STEP_COST": (1.0, "a ∇τ step over a training step, per image"),
}
CIFAR_HELDOUT = 10_000  # both CIFARs' test sets, halved into validation and test (nablatau.data.split_heldout)
GOEMOTIONS_TEST = 5_427  # the test split (nablatau.profiles.TEXT_PAPER)
REFRESH_EVERY = inspect.signature(unlearn).parameters["refresh_every"].default
GPU_COUNTS = (1, 4, 16, 64)
PARTS = {"removal": "image", "quickstart": "image", "original": "image", "text": "text", "sweep": "sweep"}
PART_ORDER = ("image", "text", "sweep")


@dataclass(frozen=True)
class Task:
    name: str  # the library's task key
    kind: str  # the library's kind: train | measure
    seconds: float
    deps: tuple[str, ...] = ()
    part: str = ""  # image | text | sweep
    model: str = ""  # original | retrain | retrain_2, ... (further references) | a method's name
    label: str = ""  # for the report; the name where empty

    @property
    def title(self) -> str:
        return self.label or self.name


# --- Scheduling -----------------------------------------------------------------------------------------------


def children_of(tasks: list[Task]) -> dict[str, list[str]]:
    """Per task name, the tasks that depend on it."""
    children = defaultdict(list)
    for task in tasks:
        for dep in set(task.deps):
            children[dep].append(task.name)
    return children


def topological(tasks: list[Task]) -> list[Task]:
    """``tasks`` with every task after its dependencies; a ValueError for unknown names, repeats or cycles."""
    by_name = {task.name: task for task in tasks}
    if len(by_name) != len(tasks):
        raise ValueError("task names repeat")
    missing = sorted({dep for task in tasks for dep in task.deps} - set(by_name))
    if missing:
        raise ValueError(f"unknown dependencies {missing[:5]}")
    if any(not task.seconds > 0 for task in tasks):
        raise ValueError("every task must take a positive time")
    waiting = {task.name: len(set(task.deps)) for task in tasks}
    children = children_of(tasks)
    ready = [name for name, count in waiting.items() if count == 0]
    order = []
    while ready:
        order.append(by_name[ready.pop()])
        for child in children[order[-1].name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) != len(tasks):
        raise ValueError("the dependencies have a cycle")
    return order


def remaining_path(tasks: list[Task]) -> dict[str, float]:
    """Per task: its duration plus the longest chain of tasks that depend on it (the scheduling priority)."""
    children = children_of(tasks)
    level: dict[str, float] = {}
    for task in reversed(topological(tasks)):
        level[task.name] = task.seconds + max((level[child] for child in children[task.name]), default=0.0)
    return level


def critical_path(tasks: list[Task]) -> tuple[float, list[Task]]:
    """The longest dependency chain, by duration: no number of GPUs finishes sooner."""
    end: dict[str, float] = {}
    before: dict[str, str | None] = {}
    for task in topological(tasks):
        previous = max(task.deps, key=lambda dep: (end[dep], dep), default=None)
        end[task.name] = task.seconds + (end[previous] if previous else 0.0)
        before[task.name] = previous
    by_name = {task.name: task for task in tasks}
    name: str | None = max(end, key=lambda n: (end[n], n)) if end else None
    chain = []
    while name is not None:
        chain.append(by_name[name])
        name = before[name]
    return (end[chain[0].name] if chain else 0.0), chain[::-1]


@dataclass
class Schedule:
    gpus: int
    start: dict[str, float]
    finish: dict[str, float]
    chain: list[tuple[str, str]]  # what ended last, traced back: (task, "first" | "dependency" | "free GPU")

    @property
    def makespan(self) -> float:
        return max(self.finish.values(), default=0.0)


def schedule(tasks: list[Task], gpus: int) -> Schedule:
    """Greedy list scheduling: whenever a GPU is free, the ready task with the longest remaining path starts."""
    if gpus < 1:
        raise ValueError("gpus must be at least 1")
    by_name = {task.name: task for task in tasks}
    level = remaining_path(tasks)
    waiting = {task.name: len(set(task.deps)) for task in tasks}
    children = children_of(tasks)
    ready = [(-level[name], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    now = 0.0
    while ready or running:
        while ready and len(running) < gpus:
            _, name = heapq.heappop(ready)
            start[name], finish[name] = now, now + by_name[name].seconds
            heapq.heappush(running, (finish[name], name))
        now = running[0][0]
        while running and running[0][0] == now:
            _, done = heapq.heappop(running)
            for child in children[done]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, (-level[child], child))
    return Schedule(gpus, start, finish, trace(by_name, start, finish))


def trace(by_name: dict[str, Task], start: dict[str, float], finish: dict[str, float]) -> list[tuple[str, str]]:
    """Back from the last task to finish: a task started when a dependency finished, or when a GPU came free."""
    if not finish:
        return []
    ended_at = defaultdict(list)
    for name, time in finish.items():
        ended_at[time].append(name)
    name = max(finish, key=lambda n: (finish[n], n))
    chain = []
    while True:
        deps = by_name[name].deps
        last_dep = max(deps, key=lambda dep: (finish[dep], dep), default=None)
        if start[name] == 0.0:
            chain.append((name, "first"))
            break
        if last_dep is not None and finish[last_dep] == start[name]:
            chain.append((name, "dependency"))
            name = last_dep
        else:  # all GPUs were busy from the moment it was ready: one came free when a task ended
            chain.append((name, "free GPU"))
            name = min(ended_at[start[name]])
    return chain[::-1]


# --- Durations ------------------------------------------------------------------------------------------------


def median_epoch_s(entry: dict) -> float:
    """A training's median epoch time from its history, else its runtime. Its total wall time keeps a pause or a
    busy spell; the median ignores them as long as they touch fewer than half of its epochs."""
    elapsed = [0.0] + [row["elapsed_s"] for row in entry.get("history") or [] if "elapsed_s" in row]
    if len(elapsed) < 2:
        return entry["runtime_s"]
    return statistics.median(later - earlier for earlier, later in zip(elapsed, elapsed[1:]))


def is_reference(model: str) -> bool:
    """Whether ``model`` is trained and measured as a reference: the original or any retrained reference."""
    return model == "original" or reference_index(model) is not None


def duration_model(model: str) -> str:
    """The model whose duration ``model`` takes: a further retrained reference (``retrain_2``, ...) trains on
    the same retain set with the same recipe as the first, ``retrain``, and is measured as it is."""
    return "retrain" if reference_index(model) is not None else model


def makefile_grid(path: Path) -> dict[str, list]:
    """The paper grid ``make reproduce PROFILE=paper`` runs: forget fractions, classes, seeds, text fractions."""
    text = path.read_text()

    def values(name: str) -> list[str]:
        found = re.search(rf"^{name}\s*[?:]?=\s*(.+)$", text, re.MULTILINE)
        if not found:
            raise SystemExit(f"{path} sets no {name}: the grid of make reproduce PROFILE=paper is read from there")
        return found.group(1).split()

    return {"fractions": [float(v) for v in values("FRACTIONS")],
            "classes": [int(v) for v in values("FORGET_CLASSES")], "seeds": [int(v) for v in values("SEEDS_paper")],
            "text_fractions": [float(v) for v in values("TEXT_FRACTIONS")]}


class Durations:
    """GPU-seconds per task: the estimates above, scaled by ratios measured in the committed results."""

    def __init__(self, results_dir: Path, train_minutes: float, cifar100_factor: float, text_train_minutes: float,
                 overhead_s: float) -> None:
        self.overhead_s = overhead_s
        self.epochs = {"image": resolve_profile("paper")["recipe"].epochs,
                       "text": resolve_profile("paper", "text")["recipe"].epochs}
        quick_epochs = {"image": PROFILES["quick"]["recipe"].epochs, "text": TEXT_PROFILES["quick"]["recipe"].epochs}
        self.train_s = {"cifar10": train_minutes * 60, "cifar100": train_minutes * 60 * cifar100_factor,
                        "goemotions": text_train_minutes * 60}
        self.n_train = {"cifar10": image_dataset_size("cifar10")[1], "cifar100": image_dataset_size("cifar100")[1],
                        "goemotions": GOEMOTIONS_TRAIN_SIZE}
        # GPU-seconds a training step spends per image; unlearning runs at batch 256 on both CIFARs, so CIFAR-10's.
        self.per_image = {"image": self.train_s["cifar10"] / (self.epochs["image"] * self.n_train["cifar10"]),
                          "text": self.train_s["goemotions"] / (self.epochs["text"] * self.n_train["goemotions"])}
        self.quick: dict[tuple[str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.point = None
        removal = [path for notebook in ("subset_removal", "class_removal", "text_removal")
                   for path in sorted((results_dir / notebook).glob("*.json"))]
        for path in removal:
            notebook, run = path.parent.name, load_results(path)
            config, models = run["config"], run["models"]
            retrain = models.get("retrain", {}).get("runtime_s")
            if not retrain or config.get("shortened_training"):  # a shortened training skews the ratios
                continue
            experiment = "text" if notebook == "text_removal" else "image"
            fraction = config["forget_fraction"] or \
                len(config["forget_classes"]) / image_dataset_size(config["dataset"])[0]
            ratios = {name: entry["runtime_s"] / retrain for name, entry in models.items()
                      if not is_reference(name) and entry.get("runtime_s")}
            if config["profile"] == "quick":
                for name, ratio in ratios.items():
                    self.quick[experiment, fraction][name].append(ratio)
            elif config["profile"] == "paper" and experiment == "image" and "nablatau" in models:
                self.point = {"file": f"{notebook}/{path.name}", "fraction": fraction, "ratios": ratios,
                              "models": models, "batch": config["settings"]["unlearn_batch_size"]}
        # Quick results → paper profile: per method, paper point ratio / quick ratio at the point's fraction.
        self.calibration = {"text": (quick_epochs["text"] / self.epochs["text"],
                                     f"quick/paper training epochs {quick_epochs['text']}/{self.epochs['text']}")}
        self.per_method = {}
        if self.point:
            quick = self.quick.get(("image", self.point["fraction"]), {})
            self.per_method = {name: ratio / statistics.mean(quick[name])
                               for name, ratio in self.point["ratios"].items() if quick.get(name)}
        if self.per_method:
            self.calibration["image"] = (statistics.mean(self.per_method.values()),
                                         f"mean of the paper point's {len(self.per_method)} methods")
        else:
            self.calibration["image"] = (quick_epochs["image"] / self.epochs["image"],
                                         f"quick/paper training epochs {quick_epochs['image']}/{self.epochs['image']}")
        self.forward_cost, self.step_cost = FALLBACKS["FORWARD_COST"][0], FALLBACKS["STEP_COST"][0]
        self.point_source = "fallback estimates (no paper point in the results)"
        if self.point:  # ∇τ at the paper point: its per-epoch measurements and its own steps, per image
            models = self.point["models"]
            config, retrain = models["nablatau"]["config"], models["retrain"]
            per_image = retrain["runtime_s"] / (self.epochs["image"] * config["n_retain"])  # measured, CPU
            tracked = sum(is_tracked_epoch(epoch) for epoch in range(config["epochs"]))
            self.forward_cost = config["callback_s"] / tracked / (config["n_forget"] + config["n_val"]) / per_image
            _, work = self.nablatau_work(config["n_forget"], config["n_retain"], self.point["batch"], config["epochs"],
                                         config["n_val"])
            self.step_cost = (models["nablatau"]["runtime_s"] - config["callback_s"]) / work / per_image
            self.point_source = f"paper point {self.point['file']}"

    def nablatau_work(self, n_forget: int, n_retain: int, batch: int, epochs: int, n_val: int) -> tuple[int, float]:
        """∇τ's steps, and the images it processes in training-step equivalents (steps, validation passes)."""
        steps = epochs * math.ceil(n_forget / batch)
        refreshes = sum(refreshes_target_loss(epoch, REFRESH_EVERY) for epoch in range(epochs))
        return steps, 2 * batch * steps + refreshes * n_val * self.forward_cost

    def seconds(self, task: SpecTask) -> float:
        """A library task's GPU-seconds: the task overhead, plus a training (``train``); or a measurement,
        after the method's run for a method and after ∇τ's for a sweep cell (``measure``)."""
        spec, model = task.spec, duration_model(task.spec.model)
        experiment, n_forget = ("text" if spec.experiment == "text" else "image"), self.forgotten(spec)
        if task.kind == "train":
            work = self.train(spec.dataset, n_forget if model == "retrain" else 0)
        elif is_reference(model):
            work = self.measure(experiment, spec.dataset)
        elif spec.experiment == "sweep":
            work = self.sweep_cell(spec.dataset, spec.forget_fraction, dict(spec.method_settings)["max_epochs"])
        else:
            work = (self.method(experiment, spec.dataset, spec.model, forget_share(spec), n_forget)
                    + self.measure(experiment, spec.dataset))
        return self.overhead_s + work

    def forgotten(self, spec: Spec) -> int:
        """The samples ``spec``'s forget set holds (the CIFARs' classes are balanced)."""
        n = self.n_train[spec.dataset]
        if spec.forget_classes is not None:
            return n // image_dataset_size(spec.dataset)[0] * len(spec.forget_classes)
        return forget_size(n, spec.forget_fraction) if spec.forget_fraction is not None else 0

    def train(self, dataset: str, n_forget: int = 0) -> float:
        """The original (``n_forget`` 0) or a retraining: the training estimate times the retained share."""
        return self.train_s[dataset] * (1 - n_forget / self.n_train[dataset])

    def measure(self, experiment: str, dataset: str) -> float:
        images = self.n_train[dataset] + (GOEMOTIONS_TEST if experiment == "text" else CIFAR_HELDOUT // 2)
        return self.forward_cost * images * self.per_image[experiment]

    def ratio(self, experiment: str, method: str, fraction: float) -> tuple[float, str]:
        """A method's time over retraining's at ``fraction``, and where it comes from."""
        if experiment == "image" and self.point and math.isclose(fraction, self.point["fraction"]) \
                and method in self.point["ratios"]:
            return self.point["ratios"][method], "P"
        measured = [f for (e, f), methods in self.quick.items() if e == experiment and methods.get(method)]
        if not measured:
            return FALLBACKS["METHOD_RATIO"][0], "E"
        nearest = min(measured, key=lambda f: (abs(math.log(f / fraction)), f))
        factor = self.per_method.get(method, self.calibration[experiment][0]) if experiment == "image" \
            else self.calibration["text"][0]
        tag = "Q" if math.isclose(nearest, fraction) else f"Q{nearest:g}"
        return statistics.mean(self.quick[experiment, nearest][method]) * factor, tag

    def method(self, experiment: str, dataset: str, method: str, fraction: float, n_forget: int) -> float:
        base = "cifar10" if experiment == "image" else dataset  # unlearning is not scaled for CIFAR-100
        retrain = self.train_s[base] * (1 - n_forget / self.n_train[dataset])
        return self.ratio(experiment, method, fraction)[0] * retrain

    def sweep_cell(self, dataset: str, fraction: float, max_epochs: int) -> float:
        batch, n = resolve_profile("paper", dataset=dataset)["unlearn_batch_size"], self.n_train[dataset]
        n_forget = forget_size(n, fraction)
        epochs = min(default_epochs(math.ceil((n - n_forget) / batch), math.ceil(n_forget / batch)), max_epochs)
        _, work = self.nablatau_work(n_forget, n - n_forget, batch, epochs, CIFAR_HELDOUT // 2)
        return self.step_cost * work * self.per_image["image"] + self.measure("image", dataset)


# --- The paper grid -------------------------------------------------------------------------------------------


def forget_share(spec: Spec) -> float:
    """The share of the training set ``spec`` forgets: its fraction, or its classes' share."""
    if spec.forget_classes is not None:
        return len(spec.forget_classes) / image_dataset_size(spec.dataset)[0]
    return spec.forget_fraction


def paper_specs(grid: dict[str, list], sweep_datasets: tuple[str, ...] = ("cifar10",)) -> list[Spec]:
    """The specs of ``make reproduce PROFILE=paper`` on both CIFARs (whose α₀ sweep is CIFAR-10's), plus the
    sweep of every other data set of ``sweep_datasets``."""
    specs = notebook_grid("paper", seeds=grid["seeds"], datasets=("cifar10", "cifar100"), fractions=grid["fractions"],
                          forget_classes=grid["classes"], text_fractions=grid["text_fractions"],
                          sweep="cifar10" in sweep_datasets)
    for dataset in dict.fromkeys(sweep_datasets):
        if dataset != "cifar10":
            specs += sweep_grid("paper", dataset=dataset, split_seeds=grid["seeds"]).specs
    return specs


def training_label(spec: Spec) -> str:
    """A training by what determines its weights (a further reference: its own training seed); the library labels
    it by whichever spec first needed it."""
    label = f"train {spec.model} {spec.dataset} seed {spec.training_seed}"
    if reference_index(spec.model) is not None:
        label += (f" classes {list(spec.forget_classes)}" if spec.forget_classes is not None
                  else f" forget {spec.forget_fraction:g} split {spec.split_seed}")
    return label


def paper_tasks(durations: Durations, specs: list[Spec]) -> list[Task]:
    """``specs`` as the tasks :func:`nablatau.grid.run_specs` would run, each with its duration."""
    with tempfile.TemporaryDirectory(prefix="plan-cluster-") as empty:  # nothing done: every spec is a task
        graph, _ = task_graph(specs, empty)
    return [Task(key, task.kind, durations.seconds(task), tuple(task.after), PARTS[task.spec.experiment],
                 task.spec.model, training_label(task.spec) if task.kind == "train" else f"measure {task.spec.label}")
            for key, task in graph.items()]


# --- Report ---------------------------------------------------------------------------------------------------


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def chain_text(plan: Schedule, by_name: dict[str, Task]) -> str:
    """What set the makespan: GPUs busy up to some point, then a chain of dependencies."""
    links = [link for _, link in plan.chain]
    cut = max((i for i, link in enumerate(links) if link == "free GPU"), default=0)
    tail = " → ".join(minutes(by_name[name]) for name, _ in plan.chain[cut:])
    if cut == 0:
        return f"dependencies only: {tail}"
    return (f"every GPU busy until {hours(plan.start[plan.chain[cut][0]])} ({cut + 1} tasks chained by a free GPU), "
            f"then {tail}")


def minutes(task: Task) -> str:
    return f"{task.title} ({task.seconds / 60:.1f} min)"


def report(tasks: list[Task], durations: Durations, grid: dict[str, list], gpu_counts: list[int],
           args: argparse.Namespace) -> str:
    by_name = {task.name: task for task in tasks}
    total = sum(task.seconds for task in tasks)
    length, path = critical_path(tasks)
    trainings = sum(task.kind == "train" for task in tasks)
    lines = [f"{len(tasks)} tasks ({trainings} train, {len(tasks) - trainings} measure), **{total / 3600:.1f} "
             f"GPU-hours**; the longest dependency chain takes {length / 60:.1f} min. Greedy list scheduling, "
             "longest remaining path first, one task per GPU.", "",
             "| GPUs | makespan | lower bound | GPUs busy | what sets the end (traced back from the last task) |",
             "|---:|---:|---:|---:|---|"]
    for gpus in gpu_counts:
        plan = schedule(tasks, gpus)
        lines.append(f"| {gpus} | {hours(plan.makespan)} | {hours(max(length, total / gpus))} | "
                     f"{total / (gpus * plan.makespan):.0%} | {chain_text(plan, by_name)} |")
    lines += ["", "Lower bound: the longest dependency chain or GPU-hours / GPUs, whichever is longer. "
              "Critical path (the longest dependency chain): " + " → ".join(map(minutes, path)), ""]
    retrain_note = "estimate: cost ∝ samples trained on"
    if durations.point:
        models = durations.point["models"]
        measured = median_epoch_s(models["retrain"]) / median_epoch_s(models["original"])
        retrain_note += (f"; the paper point: {measured:.3f} at {1 - durations.point['fraction']:.0%} retained, "
                         "median epoch times")
    measurement = (f"forward passes over training + test images at {durations.forward_cost:.2f} of a training step "
                   f"per image ({durations.point_source}: ∇τ's per-epoch measurements)")
    sources = {("image", "train", "original"): "estimate: `--train-minutes` (CIFAR-100: × `--cifar100-factor`)",
               ("sweep", "train", "original"): "estimate: `--train-minutes`",
               ("text", "train", "original"): "estimate: `--text-train-minutes`",
               ("train", "retrain"): f"the original × the retained share ({retrain_note})",
               ("sweep", "measure", "nablatau"): f"∇τ's steps and validation passes (epoch rule, capped at 80) at "
                                                 f"{durations.step_cost:.2f} of a training step per image "
                                                 f"({durations.point_source}), + its measurement",
               "reference": f"a measurement: {measurement}",
               "method": "retraining × the method's ratio (table below), + a measurement"}
    groups = defaultdict(list)
    for task in tasks:
        groups[task.part, task.kind, task.model].append(task.seconds)
    methods = list(dict.fromkeys([*IMAGE_METHODS, *TEXT_METHODS]))

    def row_order(model: str) -> tuple[int, int]:  # the original, the references in turn, the methods
        index = reference_index(model)
        return (0, 0) if model == "original" else (1, index) if index is not None else (2, methods.index(model))

    lines += ["| part | task | tasks | minutes each (mean) | GPU-hours | duration from |",
              "|---|---|---:|---:|---:|---|"]
    for (part, kind, model), seconds in sorted(groups.items(), key=lambda item: (
            PART_ORDER.index(item[0][0]), item[0][1] != "train", row_order(item[0][2]))):
        same = duration_model(model)  # a further reference is estimated as the first
        source = (sources.get((part, kind, same)) or sources.get((kind, same))
                  or sources["reference" if is_reference(same) else "method"])
        lines.append(f"| {part} | {kind} {model} | {len(seconds)} | {statistics.mean(seconds) / 60:.1f} | "
                     f"{sum(seconds) / 3600:.2f} | {source} |")
    columns = [("image", f, f"image {f:.0%}") for f in grid["fractions"]]
    classes = "+".join(map(str, grid["classes"]))
    for dataset in ("cifar10", "cifar100"):
        share = len(grid["classes"]) / image_dataset_size(dataset)[0]
        columns.append(("image", share, f"class {classes} {dataset} ({share:.0%})"))
    columns += [("text", f, f"text {f:.0%}") for f in grid["text_fractions"]]
    lines += ["", "Method time / retraining time (P: the paper point; Q: quick results at this forget fraction, "
              "Qf: at the nearest measured one, f; E: fallback estimate):", "",
              "| method | " + " | ".join(label for *_, label in columns) + " |", "|---|" + "---:|" * len(columns)]
    for method in dict.fromkeys([*IMAGE_METHODS, *TEXT_METHODS]):
        runs = {"image": method in IMAGE_METHODS, "text": method in TEXT_METHODS}
        cells = ["{:.3f} {}".format(*durations.ratio(experiment, method, fraction)) if runs[experiment] else ""
                 for experiment, fraction, _ in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    image_factor, image_why = durations.calibration["image"]
    per_method = ", ".join(f"{m} {c:.2f}" for m, c in durations.per_method.items()) or "none"
    text_factor, text_why = durations.calibration["text"]
    lines += ["", f"Quick → paper: an image ratio × the paper point's ratio / the quick one at the point's fraction "
              f"({per_method}; other methods {image_factor:.2f}, {image_why}); a text ratio × {text_factor:.2f} "
              f"({text_why}; no paper text point).", "", "Estimates (no GPU run is committed):", ""]
    lines += [f"- `{name}` = {getattr(args, flag[2:].replace('-', '_')):g} (`{flag}`): {why}."
              for name, (_, flag, why) in ESTIMATES.items()]
    lines.append(f"- The α₀ sweep on {', '.join(dict.fromkeys(args.sweep_datasets))} (`--sweep-datasets`).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "results", help="results folder (default: %(default)s)")
    for name, (default, flag, why) in ESTIMATES.items():
        parser.add_argument(flag, type=float, default=default, help=f"{why} (default {default:g})")
    parser.add_argument("--sweep-datasets", nargs="+", default=["cifar10"], choices=["cifar10", "cifar100"],
                        help="the α₀ sweep's data sets (make reproduce: cifar10)")
    parser.add_argument("--gpus", type=int, nargs="+", default=list(GPU_COUNTS))
    args = parser.parse_args(argv)
    if min(args.gpus) < 1:
        parser.error("--gpus takes positive integers")
    if not args.results.is_dir():
        parser.error(f"--results {args.results} is not a folder (an empty one plans on the fallback estimates)")
    durations = Durations(args.results, args.train_minutes, args.cifar100_factor, args.text_train_minutes,
                          args.overhead_s)
    grid = makefile_grid(REPO / "Makefile")
    tasks = paper_tasks(durations, paper_specs(grid, tuple(args.sweep_datasets)))
    print(report(tasks, durations, grid, args.gpus, args))


if __name__ == "__main__":
    main()
