"""An experiment's results as the notebooks read them: :class:`RemovalRun`, its checks and its report.

:func:`nablatau.runner.run_experiment` returns a :class:`RemovalRun`; the notebooks end with :func:`check_runs`,
so nbval fails on a wrong results file, and print :func:`reference_report` above every comparison.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .results import load_results, measured
from .references import reference_index, reference_names
from .tables import TABLE_COLUMNS, TEXT_TABLE_COLUMNS, results_table


@dataclass
class RemovalRun:
    """What one run measured, as saved in its results file at ``path``."""

    config: dict[str, Any]
    models: dict[str, dict[str, Any]]
    path: Path

    @classmethod
    def load(cls, path: Path, wanted: Sequence[str]) -> RemovalRun:
        """The run as its results file holds it (plain JSON values), restricted to the ``wanted`` models."""
        saved = load_results(path)
        return cls(saved["config"], {name: saved["models"][name] for name in wanted}, path)

    @property
    def columns(self) -> list[str]:
        """The metrics its table shows: text runs add F1, class removal the forgotten classes' test accuracy."""
        text = self.config.get("settings", {}).get("experiment") == "text"
        columns = list(TEXT_TABLE_COLUMNS if text else TABLE_COLUMNS)
        if self.config.get("forget_classes") is not None:
            columns[3:3] = ["test_forget_class_acc", "test_other_classes_acc"]
        return columns

    @property
    def table(self) -> pd.DataFrame:
        """One row per model: its metrics, runtime and runtime relative to retraining."""
        return results_table(self.measured, columns=self.columns)

    @property
    def measured(self) -> dict[str, dict[str, Any]]:
        """The models that finished, without the ones that failed."""
        return measured(self.models)

    @property
    def reference_problems(self) -> list[str]:
        """Why the retrained model is not a sound reference (:func:`reference_problems`); empty when it is."""
        return list(self.models.get("retrain", {}).get("reference_problems", []))

    @property
    def failed(self) -> dict[str, str]:
        """``{method: error message}`` for the methods that diverged."""
        return {name: m["error"] for name, m in self.models.items() if "error" in m}

    def history(self, name: str) -> pd.DataFrame:
        """The per-epoch history of model ``name`` (training epochs for original and retrain)."""
        return pd.DataFrame(self.models[name].get("history", []))


def check_runs(runs: Mapping[int, RemovalRun], methods: Sequence[str]) -> None:
    """Assert what every seed's results file must hold: the original, the retrained references and every method
    of ``methods``, in order, each measured model with its table's fractions in [0, 1] and finite,
    non-negative KL divergences. The notebooks end with it, so nbval fails on a wrong results file.

    Raises:
        AssertionError: naming the seed, the model and the metric.
    """
    for seed, run in runs.items():
        references = reference_names(run.config["settings"]["references"])
        assert list(run.models) == ["original", *references, *methods], (seed, list(run.models))
        for name, metrics in run.measured.items():
            for key in run.columns:
                value = metrics.get(key)
                if key.startswith("kl_"):
                    assert math.isfinite(value) and value >= 0, (seed, name, key, value)
                elif key.startswith("tpr_at_") and key not in metrics:
                    continue  # too few held-out samples to resolve that false-positive rate
                elif key != "runtime_s":
                    assert 0 <= value <= 1, (seed, name, key, value)


def reference_report(runs: Mapping[int, RemovalRun]) -> str:
    """One line per seed whose retrained references are unsound (:func:`nablatau.references.reference_problems`:
    they disagree, or one did not train normally), or one line saying every seed's are sound."""
    unsound = {seed: run.reference_problems for seed, run in runs.items() if run.reference_problems}
    if not unsound:
        counts = sorted({len([m for m in run.models if reference_index(m)]) for run in runs.values()})
        return (f"The retrained references ({'/'.join(map(str, counts))} per seed) agree and trained normally in every "
                f"seed ({', '.join(map(str, runs))}).")
    return "\n".join(f"UNSOUND REFERENCES, seed {seed}: {'; '.join(problems)}. Its comparisons below are not "
                     "evidence either way." for seed, problems in unsound.items())
