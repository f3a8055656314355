"""Results tables, rankings and summary sentences from measured metrics: pandas only, no training code.

The notebooks, :class:`nablatau.runner.RemovalRun` and the figures share these, so every table and
sentence about a run is computed one way.

    >>> models = {"retrain": {"mia_loss": 0.5}, "nablatau": {"mia_loss": 0.52}, "finetune": {"mia_loss": 0.6}}
    >>> [name for name, gap in ranking(models)]
    ['nablatau', 'finetune']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .errors import ConfigError

#: The columns of the image results tables, in order.
TABLE_COLUMNS = ("test_acc", "forget_acc", "retain_acc", "mia_loss", "mia_entropy", "runtime_s")

#: The columns of the text results tables: multilabel F1 besides the arg-max accuracy.
TEXT_TABLE_COLUMNS = ("test_acc", "test_f1_micro", "test_f1_macro", "forget_acc", "forget_f1_micro", "mia_loss",
                      "mia_entropy", "runtime_s")


def results_table(models: Mapping[str, Mapping[str, Any]], columns: Sequence[str] = TABLE_COLUMNS,
                  reference: str = "retrain") -> pd.DataFrame:
    """One row per model with ``columns``, plus each runtime as a fraction of the ``reference``'s.

    Args:
        models: metrics by model name (e.g. ``RemovalRun.measured``); a missing metric is NaN.
        columns: the metrics to show, in order.
        reference: the model whose runtime the ``runtime_vs_<reference>`` column divides by.

    Returns:
        A DataFrame indexed by model name.
    """
    table = pd.DataFrame({name: {c: metrics.get(c, float("nan")) for c in columns} for name, metrics in models.items()}).T
    if reference in models and "runtime_s" in columns:
        table[f"runtime_vs_{reference}"] = table["runtime_s"] / models[reference]["runtime_s"]
    return table


def ranking(models: Mapping[str, Mapping[str, Any]], metric: str = "mia_loss", reference: str = "retrain",
            exclude: Sequence[str] = ("original",)) -> list[tuple[str, float]]:
    """Unlearning methods sorted by |metric − reference's metric|, closest first.

    The ``reference`` and the ``exclude``d models (by default the original, which unlearned nothing)
    are not ranked.

    Returns:
        ``[(name, gap), ...]``, smallest gap first.

    Raises:
        ConfigError: the reference model is missing.
    """
    if reference not in models:
        raise ConfigError(f"the reference model {reference!r} is missing; got {sorted(models)}")
    target = models[reference][metric]
    gaps = [(name, abs(m[metric] - target)) for name, m in models.items()
            if name != reference and name not in exclude]
    return sorted(gaps, key=lambda item: item[1])


def closest_to_retrain(models: Mapping[str, Mapping[str, Any]], metric: str = "mia_loss") -> str:
    """A sentence naming the methods by |metric − retrain's metric| and where ∇τ ranks.

    Gaps are compared as printed (3 decimals), so equal printed gaps are called a tie, not a win.

    Raises:
        ConfigError: no retrained model among ``models``.
    """
    order = [(name, round(gap, 3)) for name, gap in ranking(models, metric)]
    listing = ", ".join(f"{name} ({gap:.3f})" for name, gap in order)
    gaps = dict(order)
    if "nablatau" not in gaps:
        return f"Closest to the retrained model's {metric}: {listing}."
    own = gaps["nablatau"]
    position = 1 + sum(gap < own for gap in gaps.values())
    tied = [name for name, gap in order if gap == own and name != "nablatau"]
    if position > 1:
        verdict = f"∇τ is NOT the closest method: it ranks {position} of {len(order)}"
    elif tied:
        verdict = f"∇τ is tied for the closest method with {', '.join(tied)}"
    else:
        verdict = "∇τ is the closest method to the retrained model"
    return f"Closest to the retrained model's {metric}: {listing}. {verdict} on {metric}."
