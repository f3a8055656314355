"""benchmarks/plan_cluster.py: the list scheduler on small graphs with known answers, and the paper grid's tasks.

No training: the script reads the committed results and the Makefile, and schedules.
"""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

from nablatau.profiles import IMAGE_METHODS, TEXT_METHODS
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


def expected_counts(grid: dict, retrains: int, sweep_retrains: int, sweep_datasets: tuple) -> Counter:
    """Tasks per (part, kind), from the Makefile's grid and the library's lists."""
    seeds, image_settings = len(grid["seeds"]), len(grid["fractions"]) + 1  # class removal: one run
    counts = Counter()
    for part, comparisons, methods in (("image", 2 * seeds * image_settings, IMAGE_METHODS),
                                       ("text", seeds * len(grid["text_fractions"]), TEXT_METHODS)):
        counts[part, "original"] = comparisons // (image_settings if part == "image" else len(grid["text_fractions"]))
        counts[part, "retrain"] = comparisons * retrains
        counts[part, "measure"] = comparisons * (1 + retrains + len(methods))
        for method in methods:
            counts[part, method] = comparisons
    for dataset in sweep_datasets:
        sweep = sweep_grid("paper", dataset=dataset)
        counts["sweep", "original"] += 1
        counts["sweep", "retrain"] += len(sweep.retrain_cells) * sweep_retrains
        counts["sweep", "measure"] += len(sweep.retrain_cells) * sweep_retrains
        counts["sweep", "sweep_cell"] += len(sweep.cells)
    return counts


@pytest.mark.parametrize("retrains, sweep_retrains, sweep_datasets",
                         [(2, 1, ("cifar10",)), (1, 2, ("cifar10", "cifar100"))])
def test_the_paper_grid_has_the_expected_tasks(durations, grid, retrains, sweep_retrains, sweep_datasets):
    tasks = plan.paper_tasks(durations, grid, retrains, sweep_retrains, sweep_datasets)
    assert Counter((task.part, task.kind) for task in tasks) == expected_counts(grid, retrains, sweep_retrains,
                                                                               sweep_datasets)
    assert all(task.seconds > 0 for task in tasks)
    plan.topological(tasks)  # names unique, dependencies known, no cycle


def test_the_paper_grid_dependencies(durations, grid):
    tasks = plan.paper_tasks(durations, grid, retrains=2)
    by_name = {task.name: task for task in tasks}
    for task in tasks:
        deps = [by_name[dep] for dep in task.deps]
        if task.kind in ("original", "retrain"):
            assert not deps  # a retraining starts from scratch: it needs no original
        elif task.kind == "measure" and task.part != "sweep":  # the model, the original and both references
            assert Counter(dep.kind for dep in deps)["retrain"] == 2
            assert sum(dep.kind == "original" for dep in deps) == 1
        else:  # a method, a sweep cell, a sweep retraining's check: after the original
            assert any(dep.kind == "original" for dep in deps)
        assert all(dep.part == task.part for dep in deps)
    assert by_name["image cifar10 s1 forget 0.15 nablatau"].deps == ("image cifar10 s1 original",)


def test_the_paper_point_sets_its_own_ratios(durations):
    point = plan.load_results(REPO / "results" / "subset_removal" / "c7ede870cc9e.json")["models"]
    ratio, source = durations.ratio("image", "nablatau", 0.15)
    assert source == "P" and ratio == pytest.approx(point["nablatau"]["runtime_s"] / point["retrain"]["runtime_s"])
    assert durations.ratio("image", "scrub", 0.15)[1] == "Q"  # not at the paper point: quick, calibrated
    assert durations.ratio("image", "scrub", 0.01)[1] == "Q0.03"  # CIFAR-100's class: the nearest fraction
    assert 0 < durations.forward_cost < 1 and 0 < durations.step_cost < 2


def test_without_results_every_duration_is_a_stated_estimate(tmp_path, grid):
    durations = plan.Durations(tmp_path, 5.0, 1.6, 10.0, 10.0)
    assert durations.ratio("text", "scrub", 0.15) == (plan.FALLBACKS["METHOD_RATIO"][0], "E")
    assert durations.forward_cost == plan.FALLBACKS["FORWARD_COST"][0]
    tasks = plan.paper_tasks(durations, grid)
    assert all(task.seconds > 0 for task in tasks)


def test_the_script_prints_the_table(capsys):
    plan.main(["--gpus", "1", "64", "--train-minutes", "20"])
    out = capsys.readouterr().out
    assert "| 1 |" in out and "| 64 |" in out and "GPU-hours" in out
    assert "`TRAIN_MINUTES` = 20" in out
