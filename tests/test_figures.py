"""make figures: tables (mean ± std over seeds) and plots from saved results files only."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nablatau.figures import long_frame, main, mean_std_table, write_figures
from nablatau.results import save_results
from nablatau.sweep_rule import NOTEBOOK as SWEEP_NOTEBOOK

ROOT = Path(__file__).resolve().parents[1]


def _models(mia: float, test_acc: float) -> dict:
    history = [{"epoch": e, "mia_loss": mia + 0.1 * (2 - e), "test_acc": test_acc} for e in range(3)]
    losses = {"forget": [0.01, 0.02, 0.5], "test": [0.4, 1.0, 2.0]}
    row = dict(retain_acc=0.9, forget_acc=0.8, test_acc=test_acc, mia_entropy=0.6)
    return {
        "original": {**row, "mia_loss": 0.8, "runtime_s": 50.0, "sample_losses": losses,
                     "history": [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]},
        "retrain": {**row, "mia_loss": 0.55, "runtime_s": 40.0, "sample_losses": losses},
        "nablatau": {**row, "mia_loss": mia, "runtime_s": 20.0, "history": history, "sample_losses": losses},
        "finetune": {**row, "mia_loss": 0.6, "runtime_s": 10.0, "history": history},
        "ssd": {"error": "loss became nan"},
    }


@pytest.fixture()
def results(tmp_path):
    root = tmp_path / "results"
    for fraction in (0.03, 0.3):
        for seed, (mia, acc) in enumerate([(0.5, 0.4), (0.7, 0.6)]):
            config = {"notebook": "subset_removal", "dataset": "cifar10", "profile": "quick", "seed": seed,
                      "forget_fraction": fraction, "forget_classes": None}
            save_results(root, "subset_removal", config=config, models=_models(mia, acc))
    config = {"notebook": "class_removal", "dataset": "cifar10", "profile": "quick", "seed": 0,
              "forget_fraction": None, "forget_classes": [0]}
    models = _models(0.5, 0.4)
    for metrics in models.values():
        metrics.update(test_forget_class_acc=0.0, test_other_classes_acc=0.5)
    models["original"]["sample_losses"] = {"forget": [0.1, 0.2], "test_forget_class": [1.0, 2.0]}
    save_results(root, "class_removal", config=config, models=models)
    smoke = {**config, "profile": "smoke", "notebook": "train_original"}
    save_results(root, "train_original", config=smoke, models={"original": _models(0.5, 0.4)["original"]})
    return root


def test_mean_std_over_seeds_and_runtime_relative_to_retrain(results):
    from nablatau.results import load_runs

    frame = long_frame(load_runs(results, "subset_removal", "quick"))
    assert "ssd" not in set(frame["model"])  # a failed method has no numbers to show
    table = mean_std_table(frame, {"mia_loss": "loss-MIA", "runtime_vs_retrain": "runtime / retrain"},
                           by=["forget_fraction"])
    row = table[(table["model"] == "∇τ") & (table["forget_fraction"] == 0.03)].iloc[0]
    # std of 0.5 and 0.7 (ddof 1); 95 % interval 0.6 ± 12.706 · 0.141 / √2 (Student t, 1 degree of freedom),
    # [-0.671, 1.871], clipped to an accuracy's range
    assert row["loss-MIA"] == "0.600 ± 0.141 [0.000, 1.000]" and row["seeds"] == 2
    assert row["runtime / retrain"] == "0.500 ± 0.000 [0.500, 0.500]"


def test_write_figures_writes_tables_plots_and_an_index(results, tmp_path):
    out = tmp_path / "figures"
    written = write_figures(results, out, profile="quick")
    names = {path.relative_to(out).as_posix() for path in written}
    assert {"quick/subset_removal-cifar10-quick-table.md", "quick/subset_removal-cifar10-quick-table.tex",
            "quick/subset_removal-cifar10-quick-mia_loss-vs-fraction.png",
            "quick/subset_removal-cifar10-quick-mia_loss-vs-fraction.pdf",
            "quick/subset_removal-cifar10-quick-0p03-seed0-curves.png",
            "quick/subset_removal-cifar10-quick-0p3-seed1-loss-histograms.pdf",
            "quick/class_removal-cifar10-quick-table.md", "quick/class_removal-cifar10-quick-0-seed0-curves.png",
            "quick/index.json", "README.md",
            # what the notebooks show over their seeds: the closest-to-retrain bars and the curves with bands
            "quick/subset_removal-cifar10-quick-0p03-seeds0_1-gap.png",
            "quick/subset_removal-cifar10-quick-0p3-seeds0_1-curves.pdf",
            "quick/class_removal-cifar10-quick-0-seeds0-gap.png"} <= names
    assert all(path.exists() and path.stat().st_size > 0 for path in written)
    assert not any("train_original" in name for name in names)  # a smoke run: filtered out
    markdown = (out / "quick" / "subset_removal-cifar10-quick-table.md").read_text()
    assert re.search(r"\| 3 %  *\| ∇τ ", markdown) and "0.600 ± 0.141" in markdown
    for table in (out / "quick").glob("*.tex"):
        latex = table.read_text()
        assert r"\begin{tabular}" in latex and latex.isascii(), table.name  # every symbol written as LaTeX
        assert all(line.count("$") % 2 == 0 for line in latex.splitlines()), table.name
    latex = (out / "quick" / "subset_removal-cifar10-quick-table.tex").read_text()
    assert r"3 \% & $\nabla\tau$ & " in latex and r"0.600 $\pm$ 0.141" in latex
    index = (out / "README.md").read_text()
    assert "## Profile quick" in index and "## Profile smoke" not in index
    rows = [line for line in index.splitlines() if line.startswith("| [")]
    assert rows and len({line.count(" | ") for line in rows}) == 1, "a description breaks the index's table"
    assert "`notebooks/subset_removal.ipynb`" in index and "forget_fraction=0.03, seed=1" in index
    # every link of the index resolves, to the figures and to the results files behind them
    links = re.findall(r"\]\(([^)#]+)\)", index)
    assert links and all((out / link).exists() for link in links), [link for link in links if not (out / link).exists()]
    assert any(link.endswith(".json") and "subset_removal" in link for link in links)


def test_a_profile_regenerated_alone_keeps_the_other_profiles_entries(results, tmp_path):
    out = tmp_path / "figures"
    write_figures(results, out)  # every profile: quick and smoke
    assert (out / "smoke" / "train_original-cifar10-smoke-seed0-loss.png").exists()
    stale = out / "quick" / "subset_removal-cifar10-quick-0p5-seed9-curves.png"
    stale.write_bytes(b"from a run whose results are gone")
    write_figures(results, out, profile="quick")
    index = (out / "README.md").read_text()
    assert "## Profile quick" in index and "## Profile smoke" in index
    assert index.index("## Profile quick") < index.index("## Profile smoke")
    assert (out / "smoke" / "train_original-cifar10-smoke-seed0-loss.png").exists()
    assert not stale.exists()  # a profile's folder is rebuilt, not added to


def test_the_command_line_writes_every_profile_by_default(results, tmp_path, capsys):
    main(["--results", str(results), "--figures", str(tmp_path / "all")])
    assert (tmp_path / "all" / "smoke" / "train_original-cifar10-smoke-seed0-loss.png").exists()
    assert (tmp_path / "all" / "quick" / "subset_removal-cifar10-quick-table.md").exists()
    assert "index:" in capsys.readouterr().out


def test_missing_results_folder_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `make reproduce` first"):
        write_figures(tmp_path / "nowhere", tmp_path / "figures")


# --- make figures reads results files only ---------------------------------------------------------------

#: What reading results must not import: the libraries and nablatau modules that train.
TRAINING_CODE = ("torch", "ray", "nablatau.sweep", "nablatau.experiment", "nablatau.removal", "nablatau.train",
                 "nablatau.nabla_tau", "nablatau.baselines", "nablatau.models", "nablatau.data")


def _training_code_loaded(steps: dict[str, str]) -> dict[str, list[str]]:
    """Run each step's code, in order, in one fresh interpreter (this checkout's nablatau); per step, the
    training modules imported so far."""
    script = ["import json, sys", "loaded = {}"]
    for name, code in steps.items():
        script += [code, f"loaded[{name!r}] = sorted(sys.modules)"]
    script.append("print(json.dumps(loaded))")
    done = subprocess.run([sys.executable, "-c", "\n".join(script)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    return {step: sorted({name if name in TRAINING_CODE else name.split(".")[0] for name in names
                          if name in TRAINING_CODE or name.split(".")[0] in TRAINING_CODE})
            for step, names in loaded.items()}


def test_the_figures_import_and_draw_the_sweep_without_training_code(tmp_path):
    results = tmp_path / "results"  # the sweep's files only: the other notebooks' figures are tested above
    for alpha0, mia in ((0.1, 0.7), (0.5, 0.62)):  # two ∇τ cells and their retraining, as nablatau.sweep writes them
        config = {"kind": "nablatau", "dataset": "cifar10", "profile": "quick", "forget_fraction": 0.3, "seed": 1,
                  "alpha0": alpha0}
        save_results(results, SWEEP_NOTEBOOK, config=config, models={"nablatau": {
            "retain_acc": 0.9, "forget_acc": 0.8, "test_acc": 0.5, "mia_loss": mia, "mia_loss_std": 0.01,
            "mia_entropy": 0.5, "runtime_s": 1.0, "config": {"epochs": 3}}})
    config = {"kind": "retrain", "dataset": "cifar10", "profile": "quick", "forget_fraction": 0.3, "seed": 1}
    save_results(results, SWEEP_NOTEBOOK, config=config, models={"retrain": {"mia_loss": 0.6, "test_acc": 0.5}})
    out = tmp_path / "figures"
    loaded = _training_code_loaded({
        "import": "import nablatau.figures",
        "make figures": f"nablatau.figures.main(['--results', {str(results)!r}, '--figures', {str(out)!r}])"})
    assert loaded == {"import": [], "make figures": []}
    assert (out / "quick" / "alpha_split_sweep-cifar10-quick-heatmaps.png").exists()
    assert "is the best of the 2 α₀ tried" in (out / "quick" / "alpha_split_sweep-cifar10-quick-rule_vs_best.md").read_text()


def test_gap_to_retrain_bars_are_ranked_and_coloured_by_the_seeds_tie():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_hex

    from nablatau.figures import plot_gap_to_retrain

    runs = {seed: {"original": {"mia_loss": 0.80}, "retrain": {"mia_loss": 0.50},
                   "nablatau": {"mia_loss": 0.52 + 0.01 * seed}, "finetune": {"mia_loss": 0.53 + 0.01 * seed},
                   "ssd": {"mia_loss": 0.78 - 0.01 * seed}} for seed in (1, 2, 3)}
    ax = plot_gap_to_retrain(runs)
    assert [label.get_text() for label in ax.get_yticklabels()] == ["∇τ", "Finetune", "SSD"]  # closest first
    bars = sorted(ax.patches[:3], key=lambda bar: bar.get_y())
    assert [round(bar.get_width(), 3) for bar in bars] == [0.04, 0.05, 0.26]  # mean gaps over the seeds
    colours = [to_hex(bar.get_facecolor()) for bar in bars]
    assert colours[0] == colours[1] != colours[2]  # ∇τ and finetune tied; SSD's interval lies beyond
    assert "3 seeds, 95 % interval" in ax.get_xlabel()
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["tied with the closest", "farther"]


def test_a_run_with_shortened_training_says_so_in_its_table(tmp_path):
    config = {"notebook": "subset_removal", "dataset": "cifar10", "profile": "paper", "seed": 1,
              "forget_fraction": 0.15, "forget_classes": None,
              "shortened_training": {"profile_epochs": 50, "epochs": 25}}
    save_results(tmp_path / "results", "subset_removal", config=config, models=_models(0.5, 0.4))
    write_figures(tmp_path / "results", tmp_path / "figures", profile="paper")
    for table in (tmp_path / "figures" / "paper").glob("subset_removal-*-table.*"):
        assert "SHORTENED TRAINING: the original and the retrained model trained 25 of the profile's 50 epochs" \
            in table.read_text(), table.name
    assert len(list((tmp_path / "figures" / "paper").glob("subset_removal-*-table.*"))) == 2


# --- Figures and tables that must not mislead --------------------------------------------------------------


def _drawn(figure):
    """``figure`` drawn on an Agg canvas, and its renderer: where every artist lands on the page."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _gap_runs(gaps: dict[str, tuple[float, float, float]]) -> dict:
    """Three seeds whose retrained model's loss-MIA is 0.5, each method's off it by its ``gaps``."""
    return {seed: {"original": {"mia_loss": 0.9}, "retrain": {"mia_loss": 0.5},
                   **{name: {"mia_loss": 0.5 + gap[seed - 1]} for name, gap in gaps.items()}} for seed in (1, 2, 3)}


def test_gap_bars_start_at_zero_and_their_intervals_do_not_cross_it():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import LineCollection

    from nablatau.figures import plot_gap_to_retrain
    from nablatau.tables import closest_over_seeds

    # ∇τ's t-interval, 0.02 ± 0.025, runs below 0: an absolute gap cannot.
    runs = _gap_runs({"nablatau": (0.01, 0.02, 0.03), "finetune": (0.20, 0.30, 0.40)})
    assert closest_over_seeds(runs)[0].loc["nablatau", "low"] == 0
    ax = plot_gap_to_retrain(runs)
    assert ax.get_xlim()[0] == 0
    error_bars = [segment for collection in ax.collections if isinstance(collection, LineCollection)
                  for segment in collection.get_segments()]
    assert error_bars and min(x for segment in error_bars for x, _ in segment) >= 0
    assert "95 % interval clipped to [0, 1]" in ax.get_xlabel()


def test_gap_intervals_stay_within_a_fractions_range():
    # Two seeds give a t-interval 12.7 standard errors wide on each side: SSD's loss-MIA gaps of 0.03 and 0.37 read
    # [0, 2.36] unclipped, but a gap of two accuracies cannot pass 1.
    from nablatau.tables import closest_over_seeds, gap_bounds

    runs = {seed: {"retrain": {"mia_loss": 0.5, "kl_test": 0.0},
                   "ssd": {"mia_loss": 0.5 - gap, "kl_test": 10 * gap}} for seed, gap in ((1, 0.03), (2, 0.37))}
    table = closest_over_seeds(runs)[0]
    assert table.loc["ssd", "low"] == 0 and table.loc["ssd", "high"] == 1
    # A divergence is no fraction: only its lower end is clipped.
    assert gap_bounds("kl_test") == (0.0, float("inf"))
    assert closest_over_seeds(runs, "kl_test")[0].loc["ssd", "high"] > 1


def test_gap_bars_are_tied_by_one_rule_monotone_in_the_plotted_gap():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_hex

    from nablatau.figures import plot_gap_to_retrain
    from nablatau.tables import closest_over_seeds

    # Finetune's gap (mean 0.11) is narrow and its interval clear of ∇τ's (0.02, up to about 0.045); SSD's is
    # larger (0.17) but so spread that its interval reaches ∇τ's. Overlap alone would tie SSD and not finetune.
    runs = _gap_runs({"nablatau": (0.01, 0.02, 0.03), "finetune": (0.10, 0.11, 0.12), "ssd": (0.0, 0.15, 0.36),
                      "scrub": (0.40, 0.41, 0.42)})
    table, sentence = closest_over_seeds(runs)
    assert list(table.index) == ["nablatau", "finetune", "ssd", "scrub"]
    assert table.loc["finetune", "low"] > table.loc["nablatau", "high"] >= table.loc["ssd", "low"]
    for smaller, larger in zip(table.index, table.index[1:]):  # sorted by gap: a tie never follows a "farther"
        assert table.loc[smaller, "tied_for_closest"] or not table.loc[larger, "tied_for_closest"], (smaller, larger)
    assert table["tied_for_closest"].tolist() == [True, True, True, False]  # SSD overlaps, so finetune ties too
    assert "∇τ is tied for closest with finetune, ssd" in sentence

    ax = plot_gap_to_retrain(runs)
    bars = sorted(ax.patches[:4], key=lambda bar: bar.get_y())
    colours = [to_hex(bar.get_facecolor()) for bar in bars]
    assert colours[0] == colours[1] == colours[2] != colours[3]  # blue down to SSD, then grey
    assert "overlaps the closest's" in ax.get_legend().get_title().get_text()  # the rule is stated where it is used


def test_curves_leave_room_around_a_reference_line_at_the_extreme():
    import matplotlib

    matplotlib.use("Agg")
    from nablatau.figures import plot_epoch_curves

    models = _models(0.6, 0.5)
    models["nablatau"]["history"] = [{"epoch": e, "test_acc": 0.6 + 0.05 * e} for e in range(3)]
    # Just beyond the curves (0.6 to 0.7), inside the margin the curves alone would get: the original's line is
    # the top of the data, the retrained model's the bottom, and each must have a margin of its own.
    models["original"]["test_acc"] = 0.704
    models["retrain"]["test_acc"] = 0.596
    ax = plot_epoch_curves(models, "test_acc", methods=("nablatau",))
    low, high = ax.get_ylim()
    for value in (0.596, 0.704):
        assert 0.02 < (value - low) / (high - low) < 0.98, (value, low, high)  # off the frame, visibly


def test_the_loss_histograms_have_one_legend_outside_the_panels():
    import matplotlib

    matplotlib.use("Agg")
    from nablatau.figures import plot_loss_histograms

    figure = plot_loss_histograms(_models(0.6, 0.5))
    renderer = _drawn(figure)
    assert len(figure.axes) == 3 and all(ax.get_legend() is None for ax in figure.axes)
    assert len(figure.legends) == 1
    legend = figure.legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in figure.axes)
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["forget", "test"]


def _cells(markdown: str, title: str) -> list[str]:
    """The cells of the column ``title`` of a markdown table."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith("|")]
    column = rows[0].index(title)
    return [row[column] for row in rows[2:]]


def _interval(cell: str) -> tuple[float, float]:
    low, high = re.search(r"\[(\S+), (\S+)\]", cell).groups()
    return float(low), float(high)


def test_intervals_of_fractions_stay_in_zero_one_and_unbounded_metrics_keep_theirs(tmp_path):
    from nablatau.tables import format_seed_table, seed_table

    root = tmp_path / "results"
    for seed, (acc, kl) in enumerate([(0.99, 0.1), (0.6, 3.0), (0.05, 0.2)], start=1):
        models = _models(0.5, acc)
        for metrics in models.values():
            if "error" not in metrics:
                metrics.update(retain_acc=acc, kl_forget=kl, population_auc=acc, tpr_at_1pct_fpr=1 - acc)
        config = {"notebook": "subset_removal", "dataset": "cifar10", "profile": "quick", "seed": seed,
                  "forget_fraction": 0.1, "forget_classes": None}
        save_results(root, "subset_removal", config=config, models=models)
    write_figures(root, tmp_path / "figures", profile="quick")
    markdown = (tmp_path / "figures" / "quick" / "subset_removal-cifar10-quick-table.md").read_text()
    for title in ("test acc", "retain acc", "population attack AUC", "calibrated TPR at 1 % FPR"):
        for cell in _cells(markdown, title):
            low, high = _interval(cell)
            assert 0 <= low <= high <= 1, (title, cell)
    assert "clipped to [0, 1]" in markdown.splitlines()[0]
    # KL divergence has no upper bound and its t-interval is shown as it is, below 0 included
    assert all(_interval(cell)[0] < 0 for cell in _cells(markdown, "KL from retrain, forget"))
    # the notebooks' table (nablatau.tables) gives the same intervals
    runs = {seed: {"nablatau": {"retain_acc": acc, "kl_forget": kl}}
            for seed, acc, kl in ((1, 0.99, 0.1), (2, 0.6, 3.0), (3, 0.05, 0.2))}
    table = seed_table(runs, columns=["retain_acc", "kl_forget"])
    assert table.loc["nablatau", ("retain_acc", "low")] == 0 and table.loc["nablatau", ("kl_forget", "low")] < 0
    low, high = _interval(format_seed_table(table).loc["nablatau", "retain_acc"])
    assert 0 <= low <= high <= 1


def test_p_values_are_summarised_by_their_median_and_range_never_averaged(tmp_path):
    from nablatau.tables import format_seed_table, seed_table

    pvalues = (1e-30, 4e-25, 1e-3)
    root = tmp_path / "results"
    for seed, pvalue in enumerate(pvalues, start=1):
        models = _models(0.5, 0.5)
        models["nablatau"]["forget_ks_pvalue"] = pvalue
        config = {"notebook": "subset_removal", "dataset": "cifar10", "profile": "quick", "seed": seed,
                  "forget_fraction": 0.1, "forget_classes": None}
        save_results(root, "subset_removal", config=config, models=models)
    write_figures(root, tmp_path / "figures", profile="quick")
    markdown = (tmp_path / "figures" / "quick" / "subset_removal-cifar10-quick-table.md").read_text()
    shown = dict(zip(_cells(markdown, "model"), _cells(markdown, "KS p-value")))
    assert shown["∇τ"] == "4e-25 (min 1e-30, max 0.001)"  # the middle seed's, then the smallest and the largest
    assert "p-values: median over seeds (min, max)" in markdown.splitlines()[0]
    runs = {seed: {"nablatau": {"forget_ks_pvalue": pvalue}} for seed, pvalue in zip((1, 2, 3), pvalues)}
    cell = format_seed_table(seed_table(runs, columns=["forget_ks_pvalue"])).loc["nablatau", "forget_ks_pvalue"]
    assert cell == "4e-25 (min 1e-30, max 0.001)" and "±" not in cell


def test_an_exported_table_carries_the_unsound_reference_caveat(results, tmp_path):
    unsound = next(path for path in sorted((results / "subset_removal").glob("*.json"))
                   if json.loads(path.read_text())["config"]["forget_fraction"] == 0.3)
    payload = json.loads(unsound.read_text())
    problem = "retrain (test accuracy 0.497) and retrain_2 (0.637) differ by 0.140"
    payload["models"]["retrain"]["reference_problems"] = [problem]
    unsound.write_text(json.dumps(payload))
    seed = payload["config"]["seed"]
    write_figures(results, tmp_path / "figures", profile="quick")
    folder = tmp_path / "figures" / "quick"
    markdown = (folder / "subset_removal-cifar10-quick-table.md").read_text()
    assert f"- UNSOUND REFERENCES, forget 30 %, seed {seed}: {problem}. The comparisons with the retrained model " \
           "there are not evidence either way." in markdown.splitlines()
    assert f"UNSOUND REFERENCES (forget 30 %, seed {seed})" in markdown.splitlines()[0]  # the caption
    assert f"UNSOUND REFERENCES (forget 30 \\%, seed {seed})" in (folder / "subset_removal-cifar10-quick-table.tex"
                                                                  ).read_text()
    assert "UNSOUND" not in (folder / "class_removal-cifar10-quick-table.md").read_text()  # its references are sound
    index = json.loads((folder / "index.json").read_text())
    gap = next(entry for entry in index["entries"] if "subset_removal-cifar10-quick-0p3-seeds0_1-gap.png"
               in " ".join(entry["files"]))
    assert f"UNSOUND REFERENCES (seed {seed})" in gap["what"]


def test_the_runtime_column_says_what_it_measures(results, tmp_path):
    write_figures(results, tmp_path / "figures", profile="quick")
    for table in ("subset_removal-cifar10-quick-table.md", "class_removal-cifar10-quick-table.md"):
        markdown = (tmp_path / "figures" / "quick" / table).read_text()
        header = next(line for line in markdown.splitlines() if line.startswith("|"))
        assert "runtime (s), unlearning only" in header, table
        assert "per-epoch measurements and the final evaluation excluded" in markdown.splitlines()[0], table
