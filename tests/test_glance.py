"""The README's results at a glance: rebuilt from results files between its markers, judged by the notebooks'
verdicts, and never mixing in files those verdicts cannot judge (synthetic losses: the same on every CPU)."""

import json
from pathlib import Path

import pytest

from nablatau.glance import END, START, glance, update_readme

from test_verdicts import _comparison


def _write(root, notebook, name, config, models):
    folder = root / notebook
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"config": config, "models": models}))


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    for seed in (1, 2):
        config = dict(notebook="subset_removal", dataset="cifar10", profile="quick", forget_fraction=0.15,
                      forget_classes=None, seed=seed)
        models = _comparison(seed, 1.0)  # ∇τ's losses drawn as a third retraining's
        models["original"].update(mia_loss=0.78, test_acc=0.50)
        models["retrain"].update(mia_loss=0.50, test_acc=0.48)
        models["retrain_2"].update(mia_loss=0.52, test_acc=0.47)
        models["nablatau"].update(mia_loss=0.53, test_acc=0.49)
        _write(root, "subset_removal", f"run{seed}", config, models)
    # An older file with one reference and no per-sample losses: left out, and counted.
    _write(root, "subset_removal", "old", dict(config, seed=3),
           {"original": {"mia_loss": 0.8}, "retrain": {"mia_loss": 0.5}, "nablatau": {"mia_loss": 0.6}})
    # Another profile's file: not in the quick table.
    _write(root, "subset_removal", "paper", dict(config, profile="paper"), _comparison(1, 1.0))
    return root


def test_the_table_pools_a_settings_seeds_and_shows_the_notebooks_verdicts(results, tmp_path):
    text = glance(results, tmp_path / "figures", tmp_path / "README.md", "quick")
    [row] = [line for line in text.splitlines() if line.startswith("| subset 15%")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "1, 2"
    assert cells[2] == "0.780 → **0.530** (0.500, 0.520)"
    assert cells[3] == "0.490 (0.480)"
    assert cells[4] == "0.10"  # 10 s against retraining's 100 s
    assert cells[5:] == ["HELD", "HELD", "HELD"]
    assert "1 older results file(s) without a second retrained reference are not shown." in text
    assert "paper" not in row


def test_the_readme_is_rewritten_between_its_markers_only(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{START}\nstale\n{END}\n\n## Install\n")
    assert update_readme(readme, glance(results, tmp_path / "figures", readme, "quick"))
    content = readme.read_text()
    assert content.startswith("# title\n\n" + START) and content.endswith(END + "\n\n## Install\n")
    assert "stale" not in content and "| subset 15% (cifar10) | 1, 2 |" in content
    assert not update_readme(readme, glance(results, tmp_path / "figures", readme, "quick"))  # nothing new
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="has no <!-- results:start --> … <!-- results:end --> block"):
        update_readme(readme, "x")


def test_no_judgeable_results_say_how_to_make_them(tmp_path):
    assert glance(tmp_path, tmp_path, tmp_path / "README.md", "quick").startswith(
        "No quick results that the verdicts can judge are committed yet: run `make reproduce`")


def _rows(text):
    """The table's rows, the verdict cells (decided by bootstrap intervals, which may round differently on another
    processor at a boundary) replaced by whether they are a verdict at all."""
    verdicts = {"HELD", "DID NOT HOLD", "INCONCLUSIVE", "NOT JUDGED"}
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and "|:--" not in line:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append(cells[:5] + [cell in verdicts for cell in cells[5:]] if cells[0] != "setting" else cells)
    return rows


def test_the_committed_readme_shows_the_committed_results():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    block = readme.split(START, 1)[1].split(END, 1)[0].strip()
    fresh = glance(root / "results", root / "figures", root / "README.md", "quick")
    assert _rows(block) == _rows(fresh), "README.md is stale: run `make figures`"
    assert [line for line in block.splitlines() if not line.startswith("| ")] == \
        [line for line in fresh.splitlines() if not line.startswith("| ")]
