"""The committed figures are what `make figures` makes from the committed results files, on a fresh clone."""

import json
import re
import shutil
from pathlib import Path

import matplotlib
import pytest

from nablatau.figures import INDEX_FILE, write_figures

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "figures").glob(f"*/{INDEX_FILE}"))
#: Files compared byte for byte; PNG and PDF carry renderer and date metadata, so only their names are.
TEXT_SUFFIXES = (".md", ".tex")


def test_the_quick_profile_evidence_is_committed():
    assert "quick" in {json.loads(path.read_text())["profile"] for path in COMMITTED}, (
        "figures/quick/index.json is missing: run `make reproduce` (quick) and commit figures/quick and its results")


@pytest.mark.slow  # draws every figure of the profile again
@pytest.mark.parametrize("index_file", COMMITTED, ids=lambda path: path.parent.name)
def test_make_figures_on_the_committed_results_rebuilds_the_committed_tables(index_file, tmp_path):
    matplotlib.use("Agg")
    index = json.loads(index_file.read_text())
    profile, results = index["profile"], tmp_path / "results"
    for entry in index["entries"]:
        for run in entry["runs"]:
            source = (ROOT / "figures" / run["results"]).resolve()
            assert source.is_file(), f"figures/{profile} draws on {run['results']}, which is not in the checkout"
            (results / source.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, results / source.parent.name / source.name)
    write_figures(results, tmp_path / "figures", profile=profile)
    rebuilt, committed = tmp_path / "figures" / profile, index_file.parent
    assert sorted(p.name for p in rebuilt.iterdir()) == sorted(p.name for p in committed.iterdir())
    for table in sorted(p for p in committed.iterdir() if p.suffix in TEXT_SUFFIXES):
        assert (rebuilt / table.name).read_text() == table.read_text(), f"{table.name} differs from make figures'"
    entries = json.loads((rebuilt / INDEX_FILE).read_text())["entries"]
    without_paths = lambda rows: [{**row, "runs": [run["parameters"] for run in row["runs"]]} for row in rows]  # noqa: E731
    assert without_paths(entries) == without_paths(index["entries"])


COMMITTED_LATEX = sorted((ROOT / "figures").glob("*/*.tex"))


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed: nothing to compile with")
@pytest.mark.parametrize("table", COMMITTED_LATEX, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_committed_latex_tables_compile(table, tmp_path):
    """Each .tex table compiles in a bare article with booktabs, as a paper would \\input it."""
    import subprocess

    document = tmp_path / "document.tex"
    document.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                        f"\\input{{{table.as_posix()}}}\n\\end{{document}}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", document.name],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    errors = [line for line in run.stdout.splitlines() if line.startswith("!")]
    assert run.returncode == 0, f"{table.name} does not compile: {errors or run.stdout[-2000:]}"
    assert (tmp_path / "document.pdf").is_file()


#: Commands that only work in math mode: outside ``$...$`` pdflatex stops with "Missing $ inserted".
MATH_ONLY = re.compile(r"\\(nabla|tau|alpha|pm|times|leq|geq|cdot|approx)\b")


def latex_table_problems(text: str) -> list[str]:
    """What would stop pdflatex in a generated table, checked without pdflatex: unbalanced braces, a row whose
    cells do not match the tabular's columns, an odd number of ``$`` in a row, and special characters or
    math-only commands outside math."""
    problems = []
    unescaped = re.sub(r"\\[&%$#_{}]", "", text)
    if unescaped.count("{") != unescaped.count("}"):
        problems.append("unbalanced braces")
    spec = re.search(r"\\begin\{tabular\}\{([lcrp|]+)\}", text)
    if spec is None:
        return problems + ["no \\begin{tabular}{...} column specification"]
    columns = len(spec.group(1).replace("|", ""))
    for number, line in enumerate(text.splitlines(), 1):
        plain = re.sub(r"\\[&%$#_]", "", line)  # escaped specials are text
        if line.rstrip().endswith("\\\\") and plain.count("&") != columns - 1:
            problems.append(f"line {number}: {plain.count('&') + 1} cells for {columns} columns")
        if plain.count("$") % 2:
            problems.append(f"line {number}: an odd number of $")
            continue
        outside = re.sub(r"\$[^$]*\$", "", plain)
        special = sorted(set(outside) & set("%#_^"))
        if special or MATH_ONLY.search(outside):
            problems.append(f"line {number}: {special or MATH_ONLY.search(outside).group(1)} outside math")
    return problems


@pytest.mark.parametrize("table", COMMITTED_LATEX, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_committed_latex_tables_are_well_formed(table):
    """Runs everywhere, pdflatex or not (the compile test above skips without it)."""
    assert not latex_table_problems(table.read_text()), table.name


def test_the_latex_check_catches_what_stops_pdflatex():
    good = ("\\begin{table}\n\\caption{a, 95 \\% interval}\n\\begin{tabular}{ll}\n\\toprule\nmodel & loss \\\\\n"
            "$\\nabla\\tau$ & 0.5 $\\pm$ 0.1 \\\\\n\\bottomrule\n\\end{tabular}\n\\end{table}\n")
    assert latex_table_problems(good) == []
    assert latex_table_problems(good.replace("$\\nabla\\tau$", "\\nabla\\tau")) == ["line 6: nabla outside math"]
    assert latex_table_problems(good.replace("0.5 $\\pm$", "0.5 $\\pm")) == ["line 6: an odd number of $"]
    assert latex_table_problems(good.replace("& loss", "& loss & extra")) == ["line 5: 3 cells for 2 columns"]
    assert latex_table_problems(good.replace("& loss", "& 15 % loss")) == ["line 5: ['%'] outside math"]
    assert latex_table_problems(good.replace("\\caption{a", "\\caption{{a")) == ["unbalanced braces"]
    assert latex_table_problems(good.replace("95 \\%", "95 %")) == ["line 2: ['%'] outside math"]
