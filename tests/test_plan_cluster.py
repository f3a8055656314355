"""benchmarks/plan_cluster.py: the list scheduler on small graphs with known answers, and the paper grid's tasks.

No training: the script reads the committed results and the Makefile, builds the library's task graph of the
paper grid, and schedules.
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

import pytest

from nablatau import grid as library
from nablatau.profiles import resolve_profile
from nablatau.references import reference_index, reference_names
from nablatau.sweep import sweep_grid

REPO = Path(__file__).resolve().parents[1]


def _load_plan():
    spec = importlib.util.spec_from_file_location("plan_cluster", REPO / "benchmarks" / "plan_cluster.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


plan = _load_plan()
Task = plan.Task


def chain(*seconds: float) -> list:
    return [Task(f"t{i}", "x", s, (f"t{i - 1}",) if i else ()) for i, s in enumerate(seconds)]


def random_graph(seed: int, n: int = 40) -> list:
    rng = random.Random(seed)
    return [Task(f"t{i}", "x", rng.uniform(0.5, 10), tuple(f"t{j}" for j in range(i) if rng.random() < 0.08))
            for i in range(n)]


def check_valid(tasks: list, result) -> None:
    """Every task ran once, after its dependencies, for its duration, with at most ``gpus`` at a time."""
    assert set(result.start) == {task.name for task in tasks}
    for task in tasks:
        assert result.finish[task.name] == pytest.approx(result.start[task.name] + task.seconds)
        for dep in task.deps:
            assert result.start[task.name] >= result.finish[dep]
    for moment in result.start.values():  # the number running only rises when a task starts
        running = sum(result.start[name] <= moment < result.finish[name] for name in result.start)
        assert running <= result.gpus


@pytest.mark.parametrize("gpus", [1, 2, 5, 64])
def test_a_chain_takes_its_sum_on_any_number_of_gpus(gpus):
    tasks = chain(3, 1, 4, 1, 5)
    result = plan.schedule(tasks, gpus)
    check_valid(tasks, result)
    assert result.makespan == pytest.approx(14)
    assert plan.critical_path(tasks)[0] == pytest.approx(14)
    assert [name for name, _ in result.chain] == [task.name for task in tasks]
    assert [link for _, link in result.chain] == ["first"] + ["dependency"] * 4


@pytest.mark.parametrize("gpus", [1, 2, 3, 4, 8, 16])
def test_independent_equal_tasks_fill_the_gpus_in_rounds(gpus):
    tasks = [Task(f"t{i}", "x", 10.0) for i in range(8)]
    result = plan.schedule(tasks, gpus)
    check_valid(tasks, result)
    assert result.makespan == pytest.approx(10 * math.ceil(8 / gpus))


def test_the_longest_remaining_path_starts_first():
    # Two GPUs: starting c1 (its chain is 6 s long) with one short task gives 6 s; two short tasks first, 7 s.
    tasks = [Task("x1", "x", 1), Task("x2", "x", 1), Task("c1", "x", 1), Task("c2", "x", 5, ("c1",))]
    result = plan.schedule(tasks, 2)
    assert result.start["c1"] == 0
    assert result.makespan == pytest.approx(6)
    assert plan.remaining_path(tasks)["c1"] == pytest.approx(6)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("gpus", [1, 3, 16])
def test_makespan_between_the_lower_bounds_and_grahams_bound(seed, gpus):
    tasks = random_graph(seed)
    result = plan.schedule(tasks, gpus)
    check_valid(tasks, result)
    total, path = sum(task.seconds for task in tasks), plan.critical_path(tasks)[0]
    assert result.makespan >= max(path, total / gpus) - 1e-9
    assert result.makespan <= total / gpus + path * (1 - 1 / gpus) + 1e-9  # any list schedule (Graham 1966)
    if gpus == 1:
        assert result.makespan == pytest.approx(total)
    # The traced chain runs back from the last task to one that started at 0, each link a dependency or a free GPU.
    names = [name for name, _ in result.chain]
    assert result.finish[names[-1]] == result.makespan and result.start[names[0]] == 0
    for (before, _), (after, link) in zip(result.chain, result.chain[1:]):
        assert result.finish[before] == result.start[after]
        assert link in ("dependency", "free GPU")
        assert (before in next(t.deps for t in tasks if t.name == after)) == (link == "dependency")


def test_the_critical_path_is_a_dependency_chain_of_that_length():
    tasks = random_graph(3)
    length, path = plan.critical_path(tasks)
    assert sum(task.seconds for task in path) == pytest.approx(length)
    assert all(before.name in after.deps for before, after in zip(path, path[1:]))
    assert not path[0].deps


@pytest.mark.parametrize("tasks, problem", [
    ([Task("a", "x", 1, ("b",)), Task("b", "x", 1, ("a",))], "cycle"),
    ([Task("a", "x", 1, ("missing",))], "unknown"),
    ([Task("a", "x", 1), Task("a", "x", 2)], "repeat"),
])
def test_bad_graphs_are_refused(tasks, problem):
    with pytest.raises(ValueError, match=problem):
        plan.schedule(tasks, 2)


# --- The paper grid -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def durations():
    return plan.Durations(REPO / "results", 5.0, 1.6, 10.0, 10.0)


@pytest.fixture(scope="module")
def grid():
    return plan.makefile_grid(REPO / "Makefile")


@pytest.fixture(scope="module")
def specs(grid):
    return plan.paper_specs(grid)


@pytest.fixture(scope="module")
def tasks(durations, specs):
    return plan.paper_tasks(durations, specs)


@pytest.fixture(scope="module")
def graph(specs, tmp_path_factory):
    """The library's tasks of the paper grid, by key (nothing done)."""
    return library.task_graph(specs, tmp_path_factory.mktemp("results"))[0]


def test_the_makefile_grid_is_the_librarys_default(grid):
    assert grid["fractions"] == list(library.FRACTIONS) and grid["classes"] == list(library.FORGET_CLASSES)
    assert grid["text_fractions"] == list(library.TEXT_FRACTIONS) and grid["seeds"] == [1, 2, 3]


def test_the_plan_is_the_graph_run_specs_runs(tmp_path, grid, tasks):
    specs = library.notebook_grid("paper", seeds=(1, 2, 3), datasets=("cifar10", "cifar100"),
                                  fractions=grid["fractions"], forget_classes=grid["classes"],
                                  text_fractions=grid["text_fractions"])
    graph, done = library.task_graph(specs, tmp_path)
    assert not done and len(tasks) == len(graph)
    assert {task.name: (task.kind, task.deps) for task in tasks} == \
        {key: (task.kind, tuple(task.after)) for key, task in graph.items()}
    assert all(task.seconds > 0 for task in tasks)
    plan.topological(tasks)  # names unique, dependencies known, no cycle
    assert len({task.title for task in tasks}) == len(tasks)  # the report tells every task apart


def test_each_model_is_trained_once(grid, specs, tasks):
    trainings = {need.training for spec in specs for need in (spec, *spec.needs) if need.trains}
    train = [task for task in tasks if task.kind == "train"]
    assert len(train) == len(trainings)
    seeds, sweep = len(grid["seeds"]), sweep_grid("paper", split_seeds=grid["seeds"])
    # Every comparison trains the profile's retrained references: the gold standard and a second one that
    # measures retraining's own spread, each with its own training seed.
    references = resolve_profile("paper")["references"]
    assert references == resolve_profile("paper", "text")["references"] == 2
    # Per seed: an original per data set and 2 references per comparison (each forget fraction and the forget
    # class); the quickstart and train_original share them: 2 × 3 × (1 + 2 × 4) = 54. Text: an original per seed
    # and 2 references per fraction, 3 × (1 + 2 × 2) = 15. The sweep: its own original (seed 0) and 2 references
    # per (fraction, seed), 1 + 2 × 12 × 3 = 73. 142 in all.
    image = 2 * seeds * (1 + references * (len(grid["fractions"]) + 1))
    text = seeds * (1 + references * len(grid["text_fractions"]))
    assert len(sweep.retrain_cells) == references * len(sweep.fractions) * seeds
    assert len(train) == image + text + 1 + len(sweep.retrain_cells) == 142
    assert {task.model for task in train} == {"original", *reference_names(references)}
    assert all(not task.deps for task in train)


def test_a_measuring_task_waits_for_the_trainings_it_needs(tasks, graph):
    by_name = {task.name: task for task in tasks}
    for task in tasks:
        if task.kind == "train":
            continue
        after = sorted(by_name[dep].model for dep in task.deps)
        assert all(by_name[dep].kind == "train" for dep in task.deps)
        if task.part == "sweep":  # a cell unlearns the original; each reference checks itself against it
            assert after == (["original"] if task.model == "nablatau" else sorted(["original", task.model]))
        elif task.model == "retrain" or graph[task.name].spec.experiment == "original":
            assert after == [task.model]
        elif reference_index(task.model):  # a further reference is measured against the first
            assert after == sorted(["retrain", task.model])
        else:  # the original and every method are compared with the first retrained model's predictions
            assert after == ["original", "retrain"]


def test_each_task_kind_has_its_duration(durations, tasks, graph):
    overhead = durations.overhead_s
    for task in tasks:
        full = overhead + durations.train_s[graph[task.name].spec.dataset]
        if task.kind == "train" and task.model == "original":
            assert task.seconds == pytest.approx(full)
        elif task.kind == "train":  # the original's time times the share it keeps
            assert overhead < task.seconds < full
    measure = {part: min(t.seconds for t in tasks if t.part == part and t.kind == "measure" and t.model == "retrain")
               for part in ("image", "text", "sweep")}
    for task in tasks:  # a method or a sweep cell runs, then is measured as a reference model is
        if task.kind == "measure" and not plan.is_reference(task.model):
            assert task.seconds > measure[task.part] > overhead


def test_a_further_reference_takes_what_the_first_takes(tasks, graph):
    # Same retain set, same recipe, another seed: a separate training that costs as much, measured alike.
    by_name = {task.name: task for task in tasks}
    further = [task for task in tasks if (reference_index(task.model) or 0) >= 2]
    assert {task.part for task in further} == {"image", "text", "sweep"}
    for task in further:
        first = graph[task.name].spec.other("retrain")
        twin = by_name[f"train {first.training}" if task.kind == "train" else first.id]
        assert twin.name != task.name and twin.kind == task.kind
        assert task.seconds == pytest.approx(twin.seconds)


def test_the_paper_grid_schedules_within_its_bounds(tasks):
    total, path = sum(task.seconds for task in tasks), plan.critical_path(tasks)[0]
    plans = [plan.schedule(tasks, gpus) for gpus in plan.GPU_COUNTS]
    check_valid(tasks, plans[1])
    assert plans[0].makespan == pytest.approx(total)
    for result in plans:
        assert result.makespan >= max(path, total / result.gpus) - 1e-6
    # Greedy list scheduling need not be monotone in general (Graham's anomalies); on this grid it is.
    assert all(more.makespan <= fewer.makespan + 1e-6 for fewer, more in zip(plans, plans[1:]))


def test_a_sweep_on_cifar100_adds_its_own_grid(durations, grid, tasks):
    both = plan.paper_tasks(durations, plan.paper_specs(grid, ("cifar10", "cifar100")))
    sweep = sweep_grid("paper", dataset="cifar100", split_seeds=grid["seeds"])
    # Its original, a training and a measurement per retrained reference (2 per (fraction, seed)), and its cells.
    assert len(both) == len(tasks) + 1 + 2 * len(sweep.retrain_cells) + len(sweep.cells)
    without = plan.paper_tasks(durations, plan.paper_specs(grid, ()))
    assert not any(task.part == "sweep" for task in without)


def test_the_paper_point_sets_its_own_ratios(durations):
    assert durations.point is not None, "the committed results hold a paper-profile CIFAR-10 point"
    point = plan.load_results(REPO / "results" / durations.point["file"])["models"]
    ratio, source = durations.ratio("image", "nablatau", 0.15)
    assert source == "P" and ratio == pytest.approx(point["nablatau"]["runtime_s"] / point["retrain"]["runtime_s"])
    assert durations.ratio("image", "scrub", 0.15)[1] == "Q"  # not at the paper point: quick, calibrated
    assert durations.ratio("image", "scrub", 0.01)[1] == "Q0.03"  # CIFAR-100's class: the nearest fraction
    assert 0 < durations.forward_cost < 1 and 0 < durations.step_cost < 2


def test_a_pause_in_one_training_does_not_set_its_epoch_time():
    steady = [{"epoch": e, "elapsed_s": 60.0 * e} for e in range(1, 51)]
    paused = [{"epoch": e, "elapsed_s": 60.0 * e + (1200.0 if e >= 4 else 0.0)} for e in range(1, 51)]
    assert plan.median_epoch_s({"history": paused, "runtime_s": paused[-1]["elapsed_s"]}) == pytest.approx(60.0)
    assert plan.median_epoch_s({"history": steady, "runtime_s": 3000.0}) == pytest.approx(60.0)
    assert plan.median_epoch_s({"runtime_s": 3000.0}) == 3000.0  # no history: the runtime is all there is


def test_without_results_every_duration_is_a_stated_estimate(tmp_path, specs):
    durations = plan.Durations(tmp_path, 5.0, 1.6, 10.0, 10.0)
    assert durations.ratio("text", "scrub", 0.15) == (plan.FALLBACKS["METHOD_RATIO"][0], "E")
    assert durations.forward_cost == plan.FALLBACKS["FORWARD_COST"][0]
    assert all(task.seconds > 0 for task in plan.paper_tasks(durations, specs))


def test_the_script_prints_the_table(capsys, tasks):
    plan.main(["--gpus", "1", "64", "--train-minutes", "20"])
    out = capsys.readouterr().out
    assert out.startswith(f"{len(tasks)} tasks (")
    assert "| 1 |" in out and "| 64 |" in out and "GPU-hours" in out
    assert "`TRAIN_MINUTES` = 20" in out
