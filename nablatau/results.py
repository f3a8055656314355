"""Results files: ``<output_dir>/<notebook>/<run-id>.json``, written atomically.

Each file records the run's ``config`` (every parameter and resolved hyperparameter), the environment
(library versions, device, time) and, per model, its metrics, runtime and history. The run id is a
hash of the config, so a rerun with the same parameters lands on the same file.

Reading needs neither torch nor scikit-learn: they are imported only to record the environment of a
run being saved, so :mod:`nablatau.figures` reads results without importing the training code.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    torch = sys.modules.get("torch")  # a torch.device exists only if torch is imported: no need to import it
    if isinstance(value, Path) or (torch is not None and isinstance(value, torch.device)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def plain(value: Any) -> Any:
    """``value`` as the plain JSON values a results file holds (lists for tuples, dicts for dataclasses, ...).

        >>> plain({"sizes": (1, 2), "path": Path("a")})
        {'sizes': [1, 2], 'path': 'a'}
    """
    return json.loads(json.dumps(value, default=_plain))


def environment() -> dict[str, Any]:
    """Library versions, device and time of the run."""
    import sklearn  # here, not at the top: only saving a run needs them (see the module docstring)
    import torch
    import torchvision

    from .batches import default_device

    device = default_device()
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "torchvision": torchvision.__version__, "numpy": np.__version__, "sklearn": sklearn.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})",
        # The instruction set torch's CPU kernels were chosen for: two machines that differ in it round
        # differently, so their numbers from the same seed differ too.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_threads": torch.get_num_threads(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def run_id(config: dict[str, Any]) -> str:
    """First 12 hex digits of the sha256 of the config: same parameters, same file."""
    text = json.dumps(config, sort_keys=True, default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def results_path(output_dir: str | os.PathLike, notebook: str, config: dict[str, Any]) -> Path:
    """Where :func:`save_results` writes (and a rerun finds) the run with this ``config``."""
    return Path(output_dir) / notebook / f"{run_id(config)}.json"


def save_results(output_dir: str | os.PathLike, notebook: str, *, config: dict[str, Any],
                 models: dict[str, dict[str, Any]], worker_environment: dict[str, Any] | None = None) -> Path:
    """Write one run's results atomically and return the file's path.

    Saving again with the same ``config`` replaces the file, so a run can save after every model and a
    rerun picks up what is already there (:func:`results_path`, :func:`load_results`).
    ``worker_environment``: where the model was computed when not in this process (a Ray worker's
    :func:`environment`); default this process's.
    """
    path = results_path(output_dir, notebook, config)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"config": config, "environment": worker_environment or environment(), "models": models}
    text = json.dumps(payload, indent=2, default=_plain)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results file written by :func:`save_results`."""
    return json.loads(Path(path).read_text())


def run_profile(config: Mapping[str, Any]) -> str | None:
    """The profile a results file's ``config`` ran with (the sweep's cells keep it in their settings)."""
    return config.get("profile", config.get("settings", {}).get("profile"))


def load_runs(results_dir: str | os.PathLike, notebook: str, profile: str | None = None) -> list[dict[str, Any]]:
    """Every results file of ``notebook`` under ``results_dir`` (of ``profile`` only, when given), in file-name
    order, each with its path under ``"path"``."""
    runs = []
    for path in sorted(Path(results_dir, notebook).glob("*.json")):
        run = load_results(path)
        run["path"] = path
        if profile is None or run_profile(run["config"]) == profile:
            runs.append(run)
    return runs


def measured(models: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The models that finished, without the ones that failed (those hold an ``"error"``)."""
    return {name: m for name, m in models.items() if "error" not in m}


def forgotten_classes(classes: Any) -> str | None:
    """A run's ``forget_classes`` as one key, ``"0,1"`` (None for a random forget set)."""
    return None if classes is None else ",".join(str(c) for c in classes)


def by_setting(runs: Iterable[Mapping[str, Any]]) -> dict[tuple, list[Mapping[str, Any]]]:
    """``runs`` grouped by what they forgot, ``(dataset, profile, forget fraction, forgotten classes)``, in
    first-seen order, each group in seed order: the seeds of one comparison. Text runs name no data set."""
    settings: dict[tuple, list[Mapping[str, Any]]] = {}
    for run in runs:
        config = run["config"]
        key = (config.get("dataset", "goemotions"), run_profile(config), config.get("forget_fraction"),
               forgotten_classes(config.get("forget_classes")))
        settings.setdefault(key, []).append(run)
    return {key: sorted(group, key=lambda run: run["config"]["seed"]) for key, group in settings.items()}
