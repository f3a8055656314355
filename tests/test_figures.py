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
    from nablatau.figures import _runs

    frame = long_frame(_runs(results, "subset_removal", "quick"))
    assert "ssd" not in set(frame["model"])  # a failed method has no numbers to show
    table = mean_std_table(frame, {"mia_loss": "loss-MIA", "runtime_vs_retrain": "runtime / retrain"},
                           by=["forget_fraction"])
    row = table[(table["model"] == "∇τ") & (table["forget_fraction"] == 0.03)].iloc[0]
    # std of 0.5 and 0.7 (ddof 1); 95 % interval 0.6 ± 12.706 · 0.141 / √2 (Student t, 1 degree of freedom)
    assert row["loss-MIA"] == "0.600 ± 0.141 [-0.671, 1.871]" and row["seeds"] == 2
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
