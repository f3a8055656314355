"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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


def pytest_configure(config: pytest.Config) -> None:
    # The tier of tests that train models for real (registered here until pyproject.toml lists it).
    config.addinivalue_line("markers", "slow: trains models for real, starts Ray or runs notebooks")
