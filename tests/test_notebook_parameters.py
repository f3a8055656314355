"""Notebook parameters: one lowercase vocabulary, and an injected name a notebook does not define stops it."""

import ast
import builtins
import json
import re
import symtable
from pathlib import Path

import papermill
import pytest

from nablatau.errors import ConfigError
from nablatau.notebook import assigned_names, check_parameters

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: The one vocabulary every notebook's parameters come from (the brief: lowercase, the same name for the same
#: thing in every notebook). Seeds: ``seeds`` (model seeds, a list), ``split_seed`` (the removal notebooks'
#: one forget split), ``split_seeds`` (the α₀ sweep's forget-set seeds); never a bare ``seed``.
VOCABULARY = {"profile", "dataset", "forget_fraction", "forget_classes", "fractions", "alphas", "seeds", "split_seed",
              "split_seeds", "train_epochs", "methods", "encoder", "output_dir", "retrain", "train_mode", "address",
              "cpus_per_task", "gpus_per_training"}
#: The notebooks that run models per seed: each takes its model seeds as ``seeds``, one seed by default.
PER_SEED = ("quickstart", "train_original", "subset_removal", "class_removal", "text_removal")
SWEEP = "alpha_split_sweep"

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


def _code_cells(name: str) -> list[dict]:
    notebook = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _parameters_cell(name: str) -> str:
    return next("".join(cell["source"]) for cell in _code_cells(name)
                if "parameters" in cell["metadata"].get("tags", []))


def _defaults(name: str) -> dict:
    """The parameters cell's names and default values."""
    return {statement.targets[0].id: ast.literal_eval(statement.value)
            for statement in ast.parse(_parameters_cell(name)).body
            if isinstance(statement, ast.Assign) and isinstance(statement.value, (ast.Constant, ast.List))}


def test_the_notebooks_are_the_ones_these_tests_name():
    assert {path.stem for path in NOTEBOOKS} == {*PER_SEED, SWEEP}


@pytest.mark.parametrize("name", PER_SEED)
def test_a_notebook_that_runs_models_per_seed_takes_them_as_seeds_a_list_of_one_by_default(name):
    names = assigned_names(_parameters_cell(name))
    assert "seed" not in names and "split_seeds" not in names, names
    assert _defaults(name)["seeds"] == [1]


def test_the_sweep_takes_its_forget_set_seeds_as_split_seeds_and_no_model_seeds():
    names = assigned_names(_parameters_cell(SWEEP))
    assert "split_seeds" in names and not {"seed", "seeds", "split_seed"} & set(names), names
    comment = next(line for line in _parameters_cell(SWEEP).splitlines() if line.startswith("split_seeds"))
    assert "forget-set seeds" in comment


@pytest.mark.parametrize("name", [*PER_SEED, SWEEP])
def test_every_name_a_notebooks_code_reads_is_defined_in_it(name):
    # A renamed parameter left in a later cell (`seed` after the switch to `seeds`) fails only at run time.
    code = "\n".join(line for cell in _code_cells(name) for line in "".join(cell["source"]).splitlines()
                     if not line.lstrip().startswith(("%", "!")))
    module = symtable.symtable(code, name, "exec")  # scopes as Python sees them: comprehensions keep their names
    defined = {symbol.get_name() for symbol in module.get_symbols() if symbol.is_assigned() or symbol.is_imported()}
    defined |= set(dir(builtins))

    def reads(table: symtable.SymbolTable) -> set[str]:
        own = {symbol.get_name() for symbol in table.get_symbols()
               if symbol.is_referenced() and (table is module or symbol.is_global())}
        return own.union(*(reads(child) for child in table.get_children()))

    read = reads(module)
    assert not read - defined, f"{name} reads names it never defines: {sorted(read - defined)}"


@pytest.mark.parametrize("name, injected, message", [
    ("quickstart", "seed = 3", '-y "seeds: [3]"'),
    ("train_original", "seed = 2", '-y "seeds: [2]"'),
    ("subset_removal", "seed = 11", 'model seeds are `seeds`, a list: -y "seeds: [11]" (the forget split\'s seed is '
                                    "`split_seed`)"),
    ("class_removal", "seed = 11", '-y "seeds: [11]"'),
    ("text_removal", "seed = 5", '-y "seeds: [5]"'),
    ("subset_removal", "split_seeds = [1, 2]", "this notebook draws one split, from `split_seed`"),
    (SWEEP, "seeds = [1, 2, 3]", 'the forget-set seeds are `split_seeds`, a list: -y "split_seeds: [1, 2, 3]"'),
    (SWEEP, "seed = 2", '-y "split_seeds: [2]"'),
    (SWEEP, "split_seed = 2", '-y "split_seeds: [2]"'),
])
def test_a_seed_under_an_old_or_other_name_stops_with_the_name_to_use(name, injected, message):
    declared = _parameters_cell(name)
    namespace = {**_defaults(name)}
    exec(injected, {}, namespace)  # what papermill's injected cell leaves in the kernel
    history = ["import x", declared, f"# Parameters\n{injected}\n", "parameters = check_parameters()"]
    with pytest.raises(ConfigError, match=re.escape(message)) as stopped:
        check_parameters(history, namespace)
    assert f"no parameter {injected.split()[0]!r}" in str(stopped.value)


def test_the_makefile_passes_model_seeds_as_seeds_and_the_sweeps_as_split_seeds():
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")  # one line per command
    makefile = makefile.replace("$(IMAGE_RUN)", makefile.split("IMAGE_RUN =")[1].splitlines()[0])
    assert not re.search(r"-p (split_)?seeds? ", makefile), "seeds go in as a list: -y \"seeds: [...]\""
    runs = [(notebook, line) for line in makefile.splitlines()
            for notebook in re.findall(r"notebooks/(\w+)\.ipynb", line)]
    assert {notebook for notebook, _ in runs} == {*PER_SEED, SWEEP}
    for notebook, line in runs:
        if notebook == SWEEP:
            assert '-y "split_seeds: ' in line and '"seeds: ' not in line, line
        elif notebook != "quickstart":  # the quickstart runs its default seed
            assert '-y "seeds: ' in line and "split_seeds" not in line, line


@pytest.mark.slow
def test_papermill_run_with_an_old_seed_parameter_names_the_new_one(tmp_path):
    notebook = ROOT / "notebooks" / "quickstart.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as stopped:
        papermill.execute_notebook(str(notebook), str(tmp_path / "out.ipynb"), cwd=str(notebook.parent),
                                   parameters={"seed": 3}, progress_bar=False, kernel_name="python3")
    assert "no parameter 'seed'" in str(stopped.value) and '-y "seeds: [3]"' in str(stopped.value)
