"""The two ways to install (pip via pyproject.toml, conda via environment.yml) list the same packages."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = {_normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    pip_section = re.search(r"- pip:\n((?:\s+- .*\n?)+)", (ROOT / "environment.yml").read_text())
    assert pip_section, "environment.yml has no `- pip:` list"
    listed = {_normalise(line.strip()[2:]) for line in pip_section.group(1).splitlines() if line.strip()}
    listed.discard("-e.")
    assert listed == expected, f"only in environment.yml: {listed - expected}; only in pyproject: {expected - listed}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)
