"""Shared test fixtures and helpers, and the ``slow`` tier (registered in pyproject.toml).

``make test`` runs every test; ``make test-fast`` (``pytest -m "not slow"``) leaves out the tests that
train a model for real, start Ray or run a notebook.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

# Every test runs on the CPU, also on a machine with a GPU: the in-process checks compare runs whose kernels
# are deterministic there, and CUDA's are not. Set before any test imports torch, and inherited by the
# notebooks' kernels and Ray's workers. The GPU path has its own tests (tests/test_gpu.py), which pass a
# CUDA device explicitly.
os.environ["NABLATAU_DEVICE"] = "cpu"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every notebook (nbval collects them from ``.ipynb`` files) ``slow``: each one runs experiments."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


#: The data sets the real-data tests and the notebooks read.
REAL_DATA = ("cifar10", "goemotions")


def data_root() -> Path:
    """``$NABLATAU_DATA_DIR`` (``make test`` sets it: ``./data`` unless given; CI: ``../shared/data``), else
    ``shared/data`` beside the repository when it exists, else ``./data`` in the repository."""
    from nablatau.data import ENV_VAR, data_dir

    if os.environ.get(ENV_VAR):
        return data_dir()  # the package's own lookup
    repository = Path(__file__).resolve().parents[1]
    beside = repository.parent / "shared" / "data"
    return beside if beside.is_dir() else repository / "data"


def fetch_real_data(root: Path) -> list[str]:
    """Load CIFAR-10 and GoEmotions from ``root`` with the package's loaders, which download what is missing.

    Returns the loaders' error messages (each names the folder, the files expected and how to get them);
    empty when both data sets are there.
    """
    from nablatau.data import load_cifar, load_goemotions
    from nablatau.errors import NablatauError

    problems = []
    for load in (lambda: load_cifar("cifar10", root), lambda: load_goemotions(root)):
        try:
            load()
        except NablatauError as error:
            problems.append(str(error))
    return problems


def pytest_collection_finish(session: pytest.Session) -> None:
    """Before any test runs: when a selected test needs the real data, make sure it is there.

    On a fresh machine with internet the loaders fetch it into the data root; offline without it the run
    stops at once with one message, instead of every data test and notebook failing on its own.
    """
    if session.config.option.collectonly:
        return
    needs_data = [item for item in session.items
                  if item.path.suffix == ".ipynb" or "real_data_dir" in getattr(item, "fixturenames", ())]
    if not needs_data:
        return
    root = data_root()
    os.environ["NABLATAU_DATA_DIR"] = str(root)  # the notebooks' kernels read the same folder
    problems = fetch_real_data(root)
    if problems:
        pytest.exit(
            f"{len(needs_data)} selected tests need the real data sets in {root.resolve()}, and they are neither "
            "there nor downloadable:\n\n" + "\n\n".join(problems)
            + "\n\nProvide them there, or set NABLATAU_DATA_DIR to a folder holding cifar10/ and goemotions/.",
            returncode=1)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder holding the real data sets (cifar10/, goemotions/): :func:`data_root`, checked (and fetched)
    before the session's first test by :func:`pytest_collection_finish`."""
    return data_root()


class CountingLoader:
    """Wraps a loader and counts the passes over it and the batches it yields (``from conftest import ...``).

    A pass counts when iteration starts, a batch when it is yielded; ``len``, ``dataset`` and
    ``batch_size`` are the wrapped loader's, so the methods treat it as the loader itself.
    """

    def __init__(self, loader):
        self.loader, self.passes, self.batches = loader, 0, 0
        self.dataset, self.batch_size = loader.dataset, loader.batch_size

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.passes += 1  # here, not in the generator: a pass counts as soon as it starts
        return self._counted(iter(self.loader))

    def _counted(self, batches):
        for batch in batches:
            self.batches += 1
            yield batch


def free_port() -> int:
    """A local port nothing listens on: bound once, then released (``from conftest import free_port``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
