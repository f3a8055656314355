"""The α₀ × fraction sweep: grid rules, Ray runs that resume, results table, best α₀, figures.

The Ray tests run the smoke grid on real CIFAR-10 (400 images, 2 training epochs) with Ray started
once for the module on 2 CPUs; together they take about a minute on 2 cores.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path

import pytest

from nablatau.errors import ConfigError
from nablatau.results import results_path, run_id, save_results
from nablatau.grid import GridError, compute, notebook_grid
from nablatau.sweep import MODEL_SEED, Cell, run_sweep, sweep_grid
from nablatau.figures import write_sweep_figures
from nablatau.sweep_figures import format_rule_summary, load_sweep, rule_summary, rule_verdict, rule_verdicts
from nablatau.sweep_rule import NOTEBOOK, rule_alpha0

ACCURACIES = ("retain_acc", "forget_acc", "test_acc", "mia_loss", "mia_entropy")


# --- Through Ray ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep_env(real_data_dir, tmp_path_factory):
    """Ray on 2 local CPUs for the whole module, and one checkpoint cache shared by its tests."""
    import ray  # here: the tests that need no Ray (make test-fast) do not pay for importing it

    # "local": a new Ray here, whatever RAY_ADDRESS or the last `ray start` on this machine left to connect to.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    # Workers cannot import this test module: ship its functions (the failing cell below) by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield {"cache_dir": tmp_path_factory.mktemp("checkpoints"), "data_root": real_data_dir}
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def _fail_once(spec, kind, *, markers: Path, target: str):
    """Record every measurement as a marker file, fail ``target``'s first one, otherwise compute as a task does."""
    if kind == "measure":
        markers.mkdir(parents=True, exist_ok=True)
        attempt = len(list(markers.glob(f"{spec.run_id}-*")))
        (markers / f"{spec.run_id}-{attempt}").touch()
        if spec.label == target and attempt == 0:
            raise RuntimeError(f"failing {spec.label} on purpose")
    return compute(spec, kind)


def _executions(markers: Path, cell: Cell) -> int:
    return len(list(markers.glob(f"{run_id(cell.config())}-*")))


@pytest.mark.slow  # starts Ray, trains ResNet-18s
def test_the_smoke_grid_runs_through_ray_and_writes_one_result_per_cell(sweep_env, tmp_path):
    grid = sweep_grid("smoke")
    run = run_sweep(grid, output_dir=tmp_path, progress=False, **sweep_env)

    # 2 × 2 grid, the rule's α₀ among it; two retrained references per fraction
    assert len(grid.cells) == 4 and len(grid.retrain_cells) == 2 * 2
    assert sorted((tmp_path / NOTEBOOK).glob("*.json")) == sorted(run.paths)
    assert len(run.ran) == 8 and run.done_before == []
    for cell in [*grid.cells, *grid.retrain_cells]:
        payload = json.loads(results_path(tmp_path, NOTEBOOK, cell.config()).read_text())
        assert payload["config"]["forget_fraction"] == cell.fraction and payload["config"]["seed"] == cell.split_seed
        assert payload["environment"]["cpu_threads"] == 1  # the task's declared CPU count
        (name, metrics), = payload["models"].items()
        assert name == cell.kind
        assert all(0 <= metrics[key] <= 1 for key in ACCURACIES), metrics
        assert metrics["runtime_s"] > 0 and metrics["history"]
        assert payload["config"]["heldout_seed"] == 1337  # the reference sweep's fixed held-out split
        if cell.kind == "nablatau":
            assert payload["config"]["alpha0"] == cell.alpha0
            assert metrics["config"]["alpha0"] == cell.alpha0
            # The reference sweep's net.train() during the steps, recorded where it was used.
            assert payload["config"]["train_mode"] is True and metrics["config"]["train_mode"] is True
            assert metrics["config"]["epochs"] == min(metrics["config"]["rule_epochs"], 80)
            assert len(metrics["history"]) == metrics["config"]["epochs"]
        else:  # a retraining is checked against the original before any cell is compared with it
            assert 0 <= metrics["original_test_acc"] <= 1 and metrics["original_final_loss"] > 0
            assert isinstance(metrics["reference_problems"], list)

    frame = load_sweep(tmp_path, grid=grid)
    assert len(frame) == 4 and frame["retrain_mia_loss"].notna().all()
    assert (frame["mia_gap"] - (frame["mia_loss"] - frame["retrain_mia_loss"]).abs()).abs().max() < 1e-12
    assert frame["retraining_spread"].notna().all()  # the second reference's distance to the first
    assert frame["is_rule"].tolist() == [True, False, False, True]

    # Everything is done: a rerun skips every cell and rewrites nothing.
    stamps = {path: path.stat().st_mtime_ns for path in run.paths}
    again = run_sweep(grid, output_dir=tmp_path, progress=False, **sweep_env)
    assert again.ran == [] and len(again.done_before) == 8
    assert {path: path.stat().st_mtime_ns for path in run.paths} == stamps


@pytest.mark.slow  # starts Ray, trains ResNet-18s
def test_a_failed_cell_is_reported_and_a_rerun_runs_only_the_missing_cell(sweep_env, tmp_path):
    grid = sweep_grid("smoke", fractions=[0.06])  # ∇τ at α₀ 0.1 (the rule) and 0.5, one retraining
    target = next(cell for cell in grid.cells if cell.alpha0 == 0.5)
    others = [cell for cell in [*grid.cells, *grid.retrain_cells] if cell != target]
    markers = tmp_path / "markers"
    label = target.spec.label
    flaky = functools.partial(_fail_once, markers=markers, target=label)
    output = tmp_path / "results"

    with pytest.raises(GridError, match=re.escape(label)) as failure:
        run_sweep(grid, output_dir=output, function=flaky, progress=False, **sweep_env)
    assert "rerun to retry only them" in str(failure.value)
    assert list(failure.value.failed) == [label]
    # The worker's traceback, which names the function that raised
    assert "failing" in failure.value.failed[label] and "on purpose" in failure.value.failed[label]
    assert "in _fail_once" in failure.value.failed[label] and "worker traceback" in str(failure.value)
    assert not results_path(output, NOTEBOOK, target.config()).exists()
    assert all(results_path(output, NOTEBOOK, cell.config()).exists() for cell in others)

    run = run_sweep(grid, output_dir=output, function=flaky, progress=False, **sweep_env)
    assert run.ran == [target] and sorted(run.done_before, key=str) == sorted(others, key=str)
    assert _executions(markers, target) == 2
    assert all(_executions(markers, cell) == 1 for cell in others)
    assert all(path.exists() for path in run.paths)


def _always_fail(spec, kind):
    raise RuntimeError("the same bug in every task")


@pytest.mark.slow  # starts Ray
def test_tasks_failing_alike_are_all_recorded_and_their_error_named_once(sweep_env, tmp_path):
    grid = sweep_grid("smoke", fractions=[0.06])
    with pytest.raises(GridError) as failure:
        run_sweep(grid, output_dir=tmp_path, function=_always_fail, progress=False, **sweep_env)
    # Three trainings (the original, the two retrained references) and a measurement per cell; the cells fail with
    # their trainings.
    measured = sorted(cell.spec.label for cell in [*grid.cells, *grid.retrain_cells])
    assert sorted(label for label in failure.value.failed if not label.startswith("train ")) == measured
    assert len(failure.value.failed) == len(measured) + 3
    message = str(failure.value)
    assert message.count("RuntimeError: the same bug in every task") == 1 and "(and 2 more tasks with this error" in message
    assert failure.value.failed[grid.cells[0].spec.label] == "did not run: train original cifar10/smoke seed 0 failed"
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.slow  # starts Ray
@pytest.mark.parametrize("resources, message", [
    ({"cpus_per_task": 0}, "cpus_per_task must be a positive integer"),
    ({"gpus_per_training": 2}, "gpus_per_training must be in [0, 1]"),
    ({"cpus_per_task": 3}, "the Ray cluster has 2 CPUs"),
    ({"gpus_per_training": 0.5}, "has no GPU; pass 0"),
])
def test_resources_that_no_task_could_get_are_refused_before_any_work(sweep_env, tmp_path, resources, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_sweep(sweep_grid("smoke"), output_dir=tmp_path, progress=False, **sweep_env, **resources)
    assert not (tmp_path / NOTEBOOK).exists()


# --- The grid ------------------------------------------------------------------------------------


def test_the_rules_alpha_is_added_at_every_fraction_and_marked():
    grid = sweep_grid("smoke", fractions=[0.1, 0.3], alphas=[0.2, 0.5], split_seeds=[1, 2])
    assert grid.alphas_at(0.1) == [(rule_alpha0(0.1), True), (0.2, False), (0.5, False)]
    assert rule_alpha0(0.1) == pytest.approx(5 / 3 * 0.1, abs=1e-6)
    # At 30 % the rule's α₀ is 0.5, already a grid value: the cell is marked, not repeated.
    assert grid.alphas_at(0.3) == [(0.2, False), (0.5, True)]
    assert len(grid.cells) == (3 + 2) * 2 and len(grid.retrain_cells) == 2 * 2 * 2  # two references each
    assert sum(cell.is_rule for cell in grid.cells) == 2 * 2  # one rule cell per fraction and seed


def test_the_notebooks_grid_gives_the_sweep_its_seeds_as_forget_set_seeds():
    # make reproduce passes SEEDS to the removal notebooks as model seeds and to the sweep as split_seeds.
    sweep = [spec for spec in notebook_grid("smoke", seeds=[1, 2]) if spec.notebook == NOTEBOOK]
    assert {spec.split_seed for spec in sweep} == {1, 2} and {spec.seed for spec in sweep} == {MODEL_SEED}
    assert sweep == sweep_grid("smoke", split_seeds=[1, 2]).specs
    other = [spec for spec in notebook_grid("smoke", seeds=[1, 2], split_seeds=[3]) if spec.notebook == NOTEBOOK]
    assert {spec.split_seed for spec in other} == {3}


def test_the_sweep_runs_in_train_mode_by_default_and_eval_mode_is_another_cell():
    train_cells, eval_cells = sweep_grid("smoke").cells, sweep_grid("smoke", train_mode=False).cells
    assert all(cell.train_mode for cell in train_cells) and not any(cell.train_mode for cell in eval_cells)
    for train_cell, eval_cell in zip(train_cells, eval_cells):
        assert run_id(train_cell.config()) != run_id(eval_cell.config())  # never mistaken for each other
    with pytest.raises(ConfigError, match="train_mode must be True"):
        sweep_grid("smoke", train_mode="yes")


def test_the_paper_grid_is_the_references():
    grid = sweep_grid("paper")
    assert grid.fractions == grid.alphas == (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
    assert grid.split_seeds == (1, 2, 3) and grid.max_epochs == 80
    # 12 α₀ per fraction plus the rule's, which is a grid value only at 15 % (0.25) and 30 % (0.5).
    assert len(grid.cells) == (10 * 13 + 2 * 12) * 3 and len(grid.retrain_cells) == 12 * 3 * 2  # two references


@pytest.mark.parametrize("arguments, message", [
    ({"profile": "huge"}, "profile must be one of ['paper', 'quick', 'smoke']"),
    ({"dataset": "mnist"}, "dataset must be one of"),
    ({"fractions": [0.0]}, "fraction must be in (0, 1), got 0.0"),
    ({"fractions": [1.2]}, "fraction must be in (0, 1), got 1.2"),
    ({"fractions": [0.7]}, "gives the rule's α₀ 5/3 · 0.7 = 1.167 > 1"),
    ({"fractions": [0.001]}, "forgets no image"),
    ({"fractions": []}, "fractions must be a non-empty list"),
    ({"alphas": [-0.1]}, "alpha -0.1 is not in [0, 1]"),
    ({"alphas": [1.5]}, "alpha 1.5 is not in [0, 1]"),
    ({"alphas": "0.1"}, "alphas must be a non-empty list"),
    ({"split_seeds": [-1]}, "split seed -1 is not a non-negative integer"),
    ({"split_seeds": [1.5]}, "split seed 1.5 is not a non-negative integer"),
    ({"seeds": [1, 2]}, "sweep_grid takes no seeds: its forget-set seeds are split_seeds"),
    ({"seed": 1}, "sweep_grid takes no seed: its forget-set seeds are split_seeds"),
    ({"max_epochs": 0}, "max_epochs must be a positive integer"),
])
def test_bad_grids_are_refused_with_the_fix(arguments, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        sweep_grid(**{"profile": "smoke", **arguments})


def test_every_problem_of_a_grid_is_listed_at_once():
    with pytest.raises(ValueError, match="Found 3 problems") as error:
        sweep_grid("smoke", fractions=[2.0], alphas=[-1.0], split_seeds=[])
    assert "got 2.0" in str(error.value) and "alpha -1.0" in str(error.value) and "split_seeds" in str(error.value)


# --- Results, best α₀ and figures from synthetic result files ------------------------------------------


def _save(output_dir: Path, cell: Cell, **metrics: float) -> Path:
    entry = {"retain_acc": 0.9, "forget_acc": 0.8, "test_acc": 0.5, "mia_loss": 0.5, "mia_loss_std": 0.01,
             "mia_entropy": 0.5, "runtime_s": 1.0, "history": [], "config": {"epochs": 3}, **metrics}
    return save_results(output_dir, NOTEBOOK, config=cell.config(), models={cell.kind: entry})


def _synthetic_sweep(output_dir: Path, profile: str = "smoke", retrain_seeds: tuple[int, ...] = (1,)) -> None:
    """Fraction 0.1: the rule (α₀ 0.166667) wins on the mean over seeds although seed 1 prefers 0.2.
    Fraction 0.3: the rule (0.5) loses to 0.2. Retraining (MIA 0.6) exists for ``retrain_seeds`` only."""
    grid = sweep_grid(profile, fractions=[0.1, 0.3], alphas=[0.2, 0.5], split_seeds=[1, 2])
    gaps = {(0.1, 0.2): (0.0, 0.10), (0.1, rule_alpha0(0.1)): (0.04, 0.04), (0.1, 0.5): (0.2, 0.2),
            (0.3, 0.2): (0.01, 0.03), (0.3, 0.5): (0.05, 0.07)}
    for cell in grid.cells:
        gap = gaps[cell.fraction, cell.alpha0][cell.split_seed - 1]
        _save(output_dir, cell, mia_loss=0.6 + gap, test_acc=0.5 - cell.alpha0 / 10)
    for cell in grid.retrain_cells:
        if cell.split_seed in retrain_seeds:
            _save(output_dir, cell, mia_loss=0.6)


def test_load_sweep_joins_retraining_and_falls_back_to_chance(tmp_path):
    _synthetic_sweep(tmp_path)
    frame = load_sweep(tmp_path)
    assert len(frame) == 10  # 5 (fraction, α₀) × 2 seeds; retrain files are joined, not rows
    with_retrain = frame[frame["seed"] == 1]
    assert (with_retrain["mia_reference"] == "retrain").all() and (with_retrain["retrain_mia_loss"] == 0.6).all()
    assert with_retrain["mia_gap"].round(9).tolist() == [0.04, 0.0, 0.2, 0.01, 0.05]
    without = frame[frame["seed"] == 2]
    assert (without["mia_reference"] == "chance").all() and without["retrain_mia_loss"].isna().all()
    assert without["mia_gap"].tolist() == pytest.approx([abs(0.6 + g - 0.5) for g in (0.04, 0.1, 0.2, 0.03, 0.07)])
    assert frame.loc[frame["is_rule"], ["fraction", "alpha0"]].drop_duplicates().values.tolist() == [
        [0.1, rule_alpha0(0.1)], [0.3, 0.5]]


def test_load_sweep_keeps_the_newest_of_repeated_cells_and_says_so(tmp_path):
    cell = sweep_grid("smoke", fractions=[0.3], alphas=[0.5]).cells[0]
    stale = Cell(**{**cell.__dict__, "max_epochs": 10})  # same coordinates, other settings
    old = _save(tmp_path, stale, mia_loss=0.9)
    payload = json.loads(old.read_text())
    payload["environment"]["finished_at"] = "2000-01-01T00:00:00+00:00"
    old.write_text(json.dumps(payload))
    _save(tmp_path, cell, mia_loss=0.7)
    with pytest.warns(UserWarning, match=re.escape(old.name)):
        frame = load_sweep(tmp_path)
    assert frame["mia_loss"].tolist() == [0.7]


def test_the_best_alpha_minimises_the_mean_gap_over_seeds(tmp_path):
    _synthetic_sweep(tmp_path, retrain_seeds=(1, 2))
    summary = rule_summary(load_sweep(tmp_path))
    at_10, at_30 = summary.loc[0.1], summary.loc[0.3]
    assert at_10["best_alpha0"] == rule_alpha0(0.1) and at_10["rule_is_best"]  # mean gap 0.04 < 0.05
    assert at_10["mia_gap_difference"] == 0 and at_10["alphas_tried"] == 3
    assert at_30["best_alpha0"] == 0.2 and not at_30["rule_is_best"]
    assert at_30["mia_gap_difference"] == pytest.approx(0.04)  # rule 0.06 − best 0.02
    assert at_30["test_acc_difference"] == pytest.approx(-0.03)  # (0.5 − 0.05) − (0.5 − 0.02)
    overall, at_10_line, at_30_line = rule_verdicts(summary)
    # Two seeds whose gaps differ by 0.02 (synthetic): 95 % intervals ± 12.71 · 0.01 overlap, so a tie.
    assert at_30["rule_mia_gap_high"] == pytest.approx(0.06 + 12.7062 * 0.01, abs=1e-4)
    assert at_30["rule_mia_gap_low"] == 0  # 0.06 − 0.127, clipped: a gap is an absolute value
    assert at_30["rule_tied_with_best"] and at_30["seeds"] == 2
    assert overall == ("The rule's α₀ is the best α₀ tried at 1 of 2 forget fractions; not at 30% (tied with the "
                       "best within the seeds' 95 % intervals at 30%).")
    assert at_10_line.startswith("HELD — forget 10%") and "is the best of the 3" in at_10_line
    # Both α₀ run at 30 % with two seeds have overlapping intervals: the seeds separate none from the best.
    assert at_30["alphas_tied_with_best"] == at_30["alphas_tried"] == 2
    assert at_30_line.startswith("INCONCLUSIVE — forget 30%") and "tie all 2 α₀ tried" in at_30_line
    assert "is NOT the best: α₀ = 0.2" in at_30_line
    assert "beyond the attack's noise of 0.010; over 2 seeds the 95 % intervals" in at_30_line
    assert "overlap: a tie the seeds cannot break" in at_30_line


def test_rule_verdict_holds_fails_or_stays_open_by_the_seeds_intervals():
    row = {"rule_mia_gap": 0.05, "rule_is_best": False, "rule_tied_with_best": False, "seeds": 3,
           "alphas_tried": 4, "alphas_tied_with_best": 2, "mia_gap_difference": 0.04, "mia_noise": 0.02}
    assert rule_verdict(row) == "DID NOT HOLD"  # another α₀ is better and the intervals separate them
    assert rule_verdict({**row, "rule_tied_with_best": True}) == "HELD"
    assert rule_verdict({**row, "rule_is_best": True, "alphas_tied_with_best": 4}) == "INCONCLUSIVE"
    one_seed = {**row, "seeds": 1, "alphas_tied_with_best": 1}
    assert rule_verdict(one_seed) == "DID NOT HOLD"  # 0.04 worse, beyond the attack's noise of 0.02
    assert rule_verdict({**one_seed, "mia_gap_difference": 0.01}) == "INCONCLUSIVE"
    assert rule_verdict({**one_seed, "rule_is_best": True}) == "HELD"
    assert rule_verdict({**row, "rule_mia_gap": float("nan")}) == "INCONCLUSIVE"
    assert rule_verdict({**row, "rule_is_best": True, "unsound_reference_seeds": (1, 3)}) == "NOT JUDGED"


def test_a_fraction_whose_retrained_model_failed_its_check_is_not_judged(tmp_path):
    _synthetic_sweep(tmp_path, retrain_seeds=(1, 2))
    unsound = next(cell for cell in sweep_grid("smoke", fractions=[0.3], split_seeds=[2]).retrain_cells)
    _save(tmp_path, unsound, mia_loss=0.6, reference_problems=["the retrained model's test accuracy is 0.2 below"])
    frame = load_sweep(tmp_path)
    assert frame.loc[frame["fraction"] == 0.1, "reference_problems"].map(len).eq(0).all()
    assert frame.loc[(frame["fraction"] == 0.3) & (frame["seed"] == 2), "reference_problems"].map(len).eq(1).all()
    summary = rule_summary(frame)
    assert summary.loc[0.1, "unsound_reference_seeds"] == () and summary.loc[0.3, "unsound_reference_seeds"] == (2,)
    _, at_10_line, at_30_line = rule_verdicts(summary)
    assert at_10_line.startswith("HELD — forget 10%")  # its references are sound: judged as before
    assert at_30_line.startswith("NOT JUDGED — forget 30%")
    assert at_30_line.endswith("The retrained model of seed 2 failed its soundness check (its results file says "
                               "why): these gaps are not evidence either way.")
    shown = format_rule_summary(summary).set_index("forgotten")
    assert shown.loc["30 %", "reference"] == "retrain (unsound: seed 2)" and shown.loc["10 %", "reference"] == "retrain"


def test_rule_summary_refuses_a_table_of_several_sweeps(tmp_path):
    _synthetic_sweep(tmp_path, "smoke")
    _synthetic_sweep(tmp_path, "quick")
    with pytest.raises(ConfigError, match="2 \\(dataset, profile\\) sweeps"):
        rule_summary(load_sweep(tmp_path))


def test_write_sweep_figures_writes_figures_and_a_table_per_sweep(tmp_path):
    assert write_sweep_figures(tmp_path / "results", tmp_path / "figures") == []  # nothing saved, nothing written
    _synthetic_sweep(tmp_path / "results", "smoke")
    _synthetic_sweep(tmp_path / "results", "quick")
    only_smoke = write_sweep_figures(tmp_path / "results", tmp_path / "smoke", profile="smoke")
    assert len(only_smoke) == 6 and all("-smoke-" in path.name for path in only_smoke)
    written = write_sweep_figures(tmp_path / "results", tmp_path / "figures")
    names = sorted(path.name for path in written)
    assert names == sorted(f"alpha_split_sweep-cifar10-{profile}-{name}"
                           for profile in ("quick", "smoke") for name in
                           ("heatmaps.png", "heatmaps.pdf", "rule_vs_best.png", "rule_vs_best.pdf", "rule_vs_best.md",
                            "rule_vs_best.tex"))
    for path in written:
        head = path.read_bytes()[:40]
        assert {".png": head.startswith(b"\x89PNG"), ".pdf": head.startswith(b"%PDF"),
                ".md": head.startswith("∇τ: the rule's α₀".encode()),
                ".tex": head.startswith(b"\\begin{")}[path.suffix], path
    table = (tmp_path / "figures" / "alpha_split_sweep-cifar10-smoke-rule_vs_best.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert "rule's α₀" in rows[0] and "best α₀" in rows[0] and len(rows) == 2 + 2  # header, rule, 2 fractions
    assert rows[2].split("|")[1].strip() == "10 %" and rows[3].split("|")[1].strip() == "30 %"  # fractions as percentages
    assert "is NOT the best: α₀ = 0.2" in table
    latex = (tmp_path / "figures" / "alpha_split_sweep-cifar10-smoke-rule_vs_best.tex").read_text()
    assert r"rule's $\alpha_0$" in latex and latex.isascii()  # escaped, every symbol written as LaTeX


def _drawn(figure):
    """``figure`` drawn on an Agg canvas, and its renderer: where every artist lands on the page."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def test_the_heatmaps_mark_the_rules_cells_without_striking_through_their_labels(tmp_path):
    from matplotlib.patches import Rectangle

    from nablatau.sweep_figures import plot_heatmaps

    _synthetic_sweep(tmp_path, retrain_seeds=(1, 2))
    frame = load_sweep(tmp_path)
    figure = plot_heatmaps(frame)
    renderer = _drawn(figure)
    alphas, fractions = sorted(frame["alpha0"].unique()), sorted(frame["fraction"].unique())
    rule_cells = [(alphas.index(rule_alpha0(f)) + 0.5, row + 0.5) for row, f in enumerate(fractions)]
    heatmaps = [ax for ax in figure.axes if ax.texts]
    assert len(heatmaps) == 3
    for ax in heatmaps:
        outlines = [patch for patch in ax.patches if isinstance(patch, Rectangle)]
        for x, y in rule_cells:  # each rule cell is marked: an outline around its centre
            assert any(patch.get_bbox().contains(x, y) for patch in outlines), (ax.get_title(), x, y)
        paths = [line.get_transform().transform_path(line.get_path()) for line in ax.lines]
        paths += [patch.get_transform().transform_path(patch.get_path()) for patch in outlines]
        for text in ax.texts:  # and no line or outline runs through a cell's label
            label = text.get_window_extent(renderer)
            assert not any(path.intersects_bbox(label, filled=False) for path in paths), (ax.get_title(),
                                                                                          text.get_text())
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["the rule's α₀ = 5/3 · fraction (outlined)"]


def test_the_rule_vs_best_plot_shows_the_rules_points_above_its_line_and_its_legend_covers_none(tmp_path):
    from nablatau.sweep_figures import plot_rule_vs_best

    _synthetic_sweep(tmp_path, retrain_seeds=(1, 2))
    figure = plot_rule_vs_best(load_sweep(tmp_path))
    renderer = _drawn(figure)
    ax = figure.axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    rule_line, rule_points = lines["rule: α₀ = 5/3 · fraction"], lines["the rule's α₀"]
    best = lines["best α₀ (loss-MIA closest to retraining's)"]
    assert list(rule_points.get_xdata()) == [0.1, 0.3]
    assert list(rule_points.get_ydata()) == [rule_alpha0(0.1), rule_alpha0(0.3)]
    assert rule_points.get_marker() not in ("", " ", "None", None) and rule_points.get_markersize() > 0
    # drawn above the line, and the best α₀ above both: where they coincide (10 %), the dot sits inside the square
    assert rule_line.get_zorder() < rule_points.get_zorder() < best.get_zorder()
    assert best.get_markersize() < rule_points.get_markersize()
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))  # beside the axes: no point under it


def test_the_second_reference_gives_retrainings_spread_and_must_agree_with_the_first(tmp_path):
    _synthetic_sweep(tmp_path, retrain_seeds=(1, 2))
    grid = sweep_grid("smoke", fractions=[0.1, 0.3], alphas=[0.2, 0.5], split_seeds=[1, 2])
    assert [cell.kind for cell in grid.retrain_cells[:2]] == ["retrain", "retrain_2"]
    for cell in grid.retrain_cells:  # the first references at test accuracy 0.5 on 1,000 test images
        _save(tmp_path, cell, mia_loss=0.6 if cell.kind == "retrain" else 0.66, n_test=1000)
    summary = rule_summary(load_sweep(tmp_path))
    assert summary["retraining_spread"].round(6).eq(0.06).all()
    # At 30 % the rule (gap 0.06 on average) is not the best α₀, but no farther than a second retraining lands.
    assert not summary.loc[0.3, "rule_is_best"] and summary.loc[0.3, "rule_mia_gap"] == pytest.approx(0.06)
    row = {**summary.loc[0.3], "alphas_tied_with_best": 1}  # (here the two seeds tie both α₀: INCONCLUSIVE first)
    assert rule_verdict(row) == "HELD" and rule_verdict({**row, "rule_tied_with_best": False}) == "HELD"
    assert rule_verdict({**row, "rule_tied_with_best": False, "retraining_spread": 0.01}) == "DID NOT HOLD"
    assert "the rule's gap is within retraining's own spread" in rule_verdicts(summary)[2]
    disagreeing = next(cell for cell in grid.retrain_cells if cell.kind == "retrain_2" and cell.fraction == 0.3)
    _save(tmp_path, disagreeing, mia_loss=0.66, test_acc=0.65)  # 15 points from the first: 6.7 standard errors
    summary = rule_summary(load_sweep(tmp_path))
    assert summary.loc[0.3, "unsound_reference_seeds"] == (disagreeing.split_seed,)
