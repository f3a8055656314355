"""Shared test fixtures and helpers, and the ``slow`` tier (registered in pyproject.toml).

``make test`` runs every test; ``make test-fast`` (``pytest -m "not slow"``) leaves out the tests that
train a model for real, start Ray or run a notebook.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every notebook (nbval collects them from ``.ipynb`` files) ``slow``: each one runs experiments."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder holding the real data sets (cifar10/, goemotions/).

    ``$NABLATAU_DATA_DIR`` (CI sets it to ``../shared/data``), else ``shared/data`` beside the repository.
    Missing data fails the test: these checks must not silently stop running.
    """
    env = os.environ.get("NABLATAU_DATA_DIR")
    root = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    missing = [name for name in ("cifar10", "goemotions") if not (root / name).is_dir()]
    if missing:
        pytest.fail(
            f"Real data not found: expected {', '.join(missing)} in {root.resolve()}. "
            "Set NABLATAU_DATA_DIR to the folder holding cifar10/ and goemotions/ (project shared/data)."
        )
    return root


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
