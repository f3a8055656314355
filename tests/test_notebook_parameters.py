"""Notebook parameters: one lowercase vocabulary, and an injected name a notebook does not define stops it."""

import json
from pathlib import Path

import papermill
import pytest

from nablatau.errors import ConfigError
from nablatau.notebook import assigned_names, check_parameters

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
#: The one vocabulary every notebook's parameters come from (the brief: lowercase, the same name for the same
#: thing in every notebook).
VOCABULARY = {"profile", "dataset", "forget_fraction", "forget_classes", "fractions", "alphas", "seed", "seeds",
              "split_seed", "train_epochs", "methods", "encoder", "output_dir", "retrain", "train_mode", "address", "cpus_per_task",
              "gpus_per_training"}

PARAMETERS_CELL = 'profile = "smoke"\nseeds = [1]  # a comment\noutput_dir: str = "../results"\n'


def test_assigned_names_reads_plain_and_annotated_assignments():
    assert assigned_names(PARAMETERS_CELL) == ["profile", "seeds", "output_dir"]


def test_no_injection_returns_the_declared_values():
    namespace = {"profile": "smoke", "seeds": [1], "output_dir": "../results", "other": 3}
    history = ["", "import x", PARAMETERS_CELL, "parameters = check_parameters()"]
    assert check_parameters(history, namespace) == {"profile": "smoke", "seeds": [1], "output_dir": "../results"}


def test_injected_values_of_declared_names_are_accepted():
    injected = '# Parameters\nprofile = "quick"\nseeds = [1, 2, 3]\n'
    namespace = {"profile": "quick", "seeds": [1, 2, 3], "output_dir": "../results"}
    history = ["import x", PARAMETERS_CELL, injected, "parameters = check_parameters()"]
    assert check_parameters(history, namespace)["seeds"] == [1, 2, 3]


def test_an_unknown_injected_name_stops_with_the_notebooks_parameters():
    injected = '# Parameters\nPROFILE = "quick"\nseeds = [2]\n'
    history = ["import x", PARAMETERS_CELL, injected, "parameters = check_parameters()"]
    with pytest.raises(ConfigError, match=r"no parameter 'PROFILE'.*profile, seeds, output_dir"):
        check_parameters(history, {})


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_notebook_checks_its_parameters_right_after_them(notebook):
    cells = [cell for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"]
    tagged = [i for i, cell in enumerate(cells) if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{notebook.name}: exactly one cell tagged 'parameters'"
    names = assigned_names("".join(cells[tagged[0]]["source"]))
    assert names and set(names) <= VOCABULARY, f"{notebook.name}: {sorted(set(names) - VOCABULARY)} not in the vocabulary"
    assert all(name == name.lower() for name in names)
    assert "check_parameters()" in "".join(cells[tagged[0] + 1]["source"]), (
        f"{notebook.name}: the cell after the parameters must call check_parameters()")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_papermill_reads_every_declared_parameter(notebook, caplog):
    # papermill skips a parameters line with a second "=" (one in its comment counts), then warns "Passed
    # unknown parameter" for a name the notebook does declare, and `papermill --help-notebook` leaves it out.
    cells = [cell for cell in json.loads(notebook.read_text())["cells"] if cell["cell_type"] == "code"]
    declared = next(assigned_names("".join(cell["source"])) for cell in cells
                    if "parameters" in cell["metadata"].get("tags", []))
    with caplog.at_level("WARNING", logger="papermill"):
        inspected = papermill.inspect_notebook(str(notebook))
    assert list(inspected) == declared, f"{notebook.name}: papermill reads {list(inspected)}"
    assert "Unable to parse" not in caplog.text, caplog.text


@pytest.mark.slow
def test_papermill_run_with_an_unknown_parameter_stops_at_once(tmp_path):
    notebook = Path(__file__).parents[1] / "notebooks" / "train_original.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as stopped:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), cwd=str(notebook.parent),
                                   parameters={"PROFILE": "quick"}, progress_bar=False, kernel_name="python3")
    assert "no parameter 'PROFILE'" in str(stopped.value)
    assert "profile" in str(stopped.value)
    executed = json.loads((tmp_path / "out.ipynb").read_text())
    ran = [cell for cell in executed["cells"] if cell["cell_type"] == "code" and cell.get("execution_count")]
    assert "check_parameters()" in "".join(ran[-1]["source"]), "nothing after the check ran"
