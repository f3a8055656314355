"""Results tables, rankings and summary sentences from measured metrics: pandas only, no training code.

The notebooks, :class:`nablatau.runs.RemovalRun` and the figures share these, so every table and
sentence about a run is computed one way.

    >>> models = {"retrain": {"mia_loss": 0.5}, "nablatau": {"mia_loss": 0.52}, "finetune": {"mia_loss": 0.6}}
    >>> [name for name, gap in ranking(models)]
    ['nablatau', 'finetune']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import math

import numpy as np
import pandas as pd
from scipy import stats

from .errors import ConfigError

#: Metrics that compare a model with the retrained one directly (see :mod:`nablatau.metrics`).
RETRAIN_COLUMNS = ("mia_loss_auc", "forget_ks", "forget_ks_pvalue", "kl_forget", "kl_test")

#: The attacks on per-sample losses (:func:`nablatau.audits.loss_attacks`): the population attack's AUC and the
#: per-example attack calibrated by the retrained references (a reference scored by the others).
LOSS_ATTACK_COLUMNS = ("population_auc", "calibrated_auc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")

#: The columns of the image results tables, in order.
TABLE_COLUMNS = ("test_acc", "forget_acc", "retain_acc", "mia_loss", "mia_entropy", *LOSS_ATTACK_COLUMNS,
                 *RETRAIN_COLUMNS, "runtime_s")

#: The columns of the text results tables: multilabel F1 besides the arg-max accuracy.
TEXT_TABLE_COLUMNS = ("test_acc", "test_f1_micro", "test_f1_macro", "forget_acc", "forget_f1_micro", "mia_loss",
                      "mia_entropy", *LOSS_ATTACK_COLUMNS, *RETRAIN_COLUMNS, "runtime_s")

#: Every column's title in the exported tables and figures.
COLUMN_TITLES = {"test_acc": "test acc", "test_f1_micro": "test micro-F1", "test_f1_macro": "test macro-F1",
                 "test_forget_class_acc": "test acc, forgotten classes",
                 "test_other_classes_acc": "test acc, other classes", "forget_acc": "forget acc",
                 "forget_f1_micro": "forget micro-F1", "retain_acc": "retain acc", "mia_loss": "loss-MIA",
                 "mia_entropy": "entropy-MIA", "mia_loss_auc": "loss-MIA AUC",
                 "population_auc": "population attack AUC", "calibrated_auc": "calibrated attack AUC",
                 "tpr_at_1pct_fpr": "calibrated TPR at 1 % FPR", "tpr_at_5pct_fpr": "calibrated TPR at 5 % FPR",
                 "forget_ks": "KS vs retrain (forget losses)", "forget_ks_pvalue": "KS p-value",
                 "kl_forget": "KL from retrain, forget", "kl_test": "KL from retrain, test",
                 "runtime_s": "runtime (s), unlearning only", "runtime_vs_retrain": "runtime / retrain"}

#: What ``runtime_s`` holds, for every table that shows it (:func:`nablatau.runner.run_spec`): a method's
#: :class:`nablatau.loop.EpochLoop` wall time less its per-epoch callback (the curves' measurements, kept as
#: ``config["callback_s"]``), and the original's and the retrained models' training time (recorded when they were
#: first trained, so a model read from the checkpoint cache reports that training). Neither includes the final
#: evaluation. A progress line printed during a run counts the measurements too, so the two differ.
RUNTIME_NOTE = ("runtime: the unlearning only (for the original and the retrained model, their training), "
                "per-epoch measurements and the final evaluation excluded")

#: Metrics that are fractions: accuracies, F1, the attacks' accuracies, AUCs and true-positive rates, and the KS
#: statistic (a largest difference of two distribution functions). Their intervals over seeds stay in [0, 1]
#: (:func:`interval`'s ``bounds``).
FRACTION_COLUMNS = frozenset({
    "test_acc", "forget_acc", "retain_acc", "test_forget_class_acc", "test_other_classes_acc", "test_f1_micro",
    "test_f1_macro", "forget_f1_micro", "mia_loss", "mia_entropy", "mia_loss_auc", *LOSS_ATTACK_COLUMNS,
    "forget_ks"})


def _is_reference(name: str) -> bool:
    """Whether ``name`` is a retrained reference (``retrain``, ``retrain_2``, ...): a yardstick, never ranked."""
    from .references import reference_index  # here: references imports this module

    return reference_index(name) is not None


def titled(*columns: str) -> dict[str, str]:
    """``{column: title}`` for ``columns``, in their order (:data:`COLUMN_TITLES`)."""
    return {column: COLUMN_TITLES[column] for column in columns}


#: The confidence of the intervals over seeds.
CONFIDENCE = 0.95


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

    The retrained references and the ``exclude``d models (by default the original, which unlearned nothing)
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
            if name != reference and name not in exclude and not _is_reference(name)]
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


# --- Over seeds ------------------------------------------------------------------------------------


def interval(values: Sequence[float], confidence: float = CONFIDENCE,
             bounds: tuple[float, float] | None = None) -> tuple[float, float, float, float]:
    """``(mean, std, low, high)`` of ``values``: sample std and Student's-t interval for the mean.

    With one value the std and the interval are NaN: a single seed gives no spread. With ``bounds``, the
    range every value lies in (e.g. ``(0, 1)`` for a fraction), the interval is clipped to it.

        >>> [round(v, 3) for v in interval([0.5, 0.6, 0.7])]
        [0.6, 0.1, 0.352, 0.848]
        >>> [round(v, 3) for v in interval([0.8, 0.9, 1.0], bounds=(0, 1))]
        [0.9, 0.1, 0.652, 1.0]
    """
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if values.size == 0:
        return (math.nan,) * 4
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf((1 + confidence) / 2, values.size - 1)) * std / math.sqrt(values.size)
    low, high = mean - half, mean + half
    if bounds is not None:
        # With three seeds the t-interval is wide and runs past a fraction's range (a retain accuracy of 0.951
        # read [0.814, 1.087]). The mean of values in a range lies in that range, so cutting the interval there
        # drops only impossible values and keeps its coverage. A bootstrap needs more than three seeds, and a
        # Wilson interval measures the test set's sampling of one model, not the spread over seeds shown here.
        low, high = max(low, float(bounds[0])), min(high, float(bounds[1]))
    return mean, std, low, high


def bounds_of(column: str) -> tuple[float, float] | None:
    """The range ``column``'s values lie in: ``(0, 1)`` for a fraction (:data:`FRACTION_COLUMNS`), else None."""
    return (0.0, 1.0) if column in FRACTION_COLUMNS else None


def gap_bounds(metric: str) -> tuple[float, float]:
    """The range of a gap |``metric``(a) − ``metric``(b)|: never below 0 (an absolute value), and at most 1 when
    ``metric`` is a fraction. With two seeds a t-interval is 12.7 standard errors wide on each side and ran past 1
    (an SSD loss-MIA gap of 0.20 read [0, 1.70]); the mean lies in the range, so clipping keeps the coverage."""
    low, high = bounds_of(metric) or (0.0, math.inf)
    return 0.0, high - low


def gap_clipping(metric: str) -> str:
    """How :func:`gap_bounds` clips ``metric``'s gap intervals, for captions and axis labels."""
    return "clipped to [0, 1]" if gap_bounds(metric)[1] == 1.0 else "clipped at 0"


def is_pvalue(column: str) -> bool:
    return column.endswith("pvalue")


#: The statistics :func:`summarize` gives a p-value column and any other column.
PVALUE_STATISTICS = ("median", "min", "max")
STATISTICS = ("mean", "std", "low", "high")


def summarize(values: Sequence[float], column: str, confidence: float = CONFIDENCE) -> dict[str, float]:
    """``column``'s ``values`` over seeds: for a p-value its median, min and max; else its :func:`interval`
    (mean, std, low, high), clipped to the column's range (:func:`bounds_of`).

    P-values span orders of magnitude (4.8e-25 and 1e-30 in two seeds): their mean is set by the largest alone
    and a t-interval around it runs below 0, so they are summarised by their median and range instead.

        >>> summarize([1e-30, 4e-25, 1e-3], "forget_ks_pvalue")
        {'median': 4e-25, 'min': 1e-30, 'max': 0.001}
    """
    if not is_pvalue(column):
        return dict(zip(STATISTICS, interval(values, confidence, bounds_of(column))))
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if values.size == 0:
        return dict.fromkeys(PVALUE_STATISTICS, math.nan)
    return {"median": float(np.median(values)), "min": float(values.min()), "max": float(values.max())}


def summary_cell(summary: Mapping[str, float], column: str, digits: int = 3) -> str:
    """A :func:`summarize` result as text: "mean ± std [low, high]", for a p-value "median (min, max)", and the
    value alone for one seed; "–" for none. Runtimes get one decimal, p-values two significant digits.

        >>> summary_cell({"median": 4e-25, "min": 1e-30, "max": 1e-3}, "forget_ks_pvalue")
        '4e-25 (min 1e-30, max 0.001)'
    """
    if is_pvalue(column):
        # p-values span orders of magnitude: two significant digits, not three decimals that read 0.000
        text = "{:.2g}".format
        median, low, high = (summary[s] for s in PVALUE_STATISTICS)
        if math.isnan(median):
            return "–"
        return text(median) if low == high else f"{text(median)} (min {text(low)}, max {text(high)})"
    places = 1 if column == "runtime_s" else digits
    mean, std, low, high = (summary[s] for s in STATISTICS)
    if math.isnan(mean):
        return "–"
    if math.isnan(std):
        return f"{mean:.{places}f}"
    return f"{mean:.{places}f} ± {std:.{places}f} [{low:.{places}f}, {high:.{places}f}]"


def seed_summary_note(columns: Iterable[str], confidence: float = CONFIDENCE) -> str:
    """How :func:`summary_cell` summarises ``columns`` over seeds, for a table's caption."""
    columns = set(columns)
    parts = [f"mean ± std [{int(confidence * 100)} % Student-t interval] over seeds where several ran"]
    if columns & FRACTION_COLUMNS:
        parts.append("intervals of fractions (accuracies, AUCs, TPRs, the KS statistic) clipped to [0, 1]")
    if any(is_pvalue(column) for column in columns):
        parts.append("p-values: median over seeds (min, max), not averaged")
    if "runtime_s" in columns:
        parts.append(RUNTIME_NOTE)
    return "; ".join(parts)


def seed_table(runs: Mapping[int, Mapping[str, Mapping[str, Any]]], columns: Sequence[str] = TABLE_COLUMNS,
               confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per model and metric, the mean, std and ``confidence`` interval over the seeds' runs (:func:`summarize`).

    Args:
        runs: ``{seed: {model: metrics}}``, e.g. ``{seed: run.measured}`` for each seed's run.
        columns: the metrics.

    Returns:
        A DataFrame indexed by model (in first-seen order) with columns ``(metric, statistic)``,
        statistic in ``mean``, ``std``, ``low``, ``high`` (the interval clipped to [0, 1] for a fraction),
        for a p-value ``median``, ``min``, ``max``, plus ``("seeds", "n")``.
    """
    order = list(dict.fromkeys(name for models in runs.values() for name in models))
    rows = {}
    for name in order:
        row = {}
        for column in columns:
            values = [models[name].get(column, math.nan) for models in runs.values() if name in models]
            row.update({(column, stat): value for stat, value in summarize(values, column, confidence).items()})
        row[("seeds", "n")] = sum(name in models for models in runs.values())
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model")


def format_seed_table(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``seed_table``'s numbers as text cells (:func:`summary_cell`): "mean ± std [low, high]", for a p-value
    "median (min, max)", the value alone for one seed."""
    metrics = [c for c in dict.fromkeys(table.columns.get_level_values(0)) if c != "seeds"]

    def cell(row: pd.Series, metric: str) -> str:
        statistics = PVALUE_STATISTICS if is_pvalue(metric) else STATISTICS
        return summary_cell({s: row[(metric, s)] for s in statistics}, metric, digits)

    text = pd.DataFrame({metric: [cell(row, metric) for _, row in table.iterrows()] for metric in metrics},
                        index=table.index)
    text["seeds"] = table[("seeds", "n")].astype(int).values
    return text


def closest_over_seeds(runs: Mapping[int, Mapping[str, Mapping[str, Any]]], metric: str = "mia_loss",
                       reference: str = "retrain", exclude: Sequence[str] = ("original",),
                       confidence: float = CONFIDENCE) -> tuple[pd.DataFrame, str]:
    """Which method lands closest to the retrained model on ``metric``, over seeds, with ties.

    The criterion: for each seed, the gap |metric(method) − metric(retrained)| between the method and
    that seed's own retrained model; methods are ranked by the mean gap over seeds. The best method
    and every method whose gap's ``confidence`` interval overlaps the best's are tied: the seeds cannot
    tell them apart; so is every method whose mean gap is smaller than a tied one's, so that the ties are
    the closest methods and a smaller gap is never farther than a larger one. With one seed there are no
    intervals; gaps equal to 3 decimals are ties.

    Returns:
        ``(table, sentence)``: per method the gap's mean, std, interval (clipped to
        :func:`gap_bounds`) and ``tied_for_closest``, best first, and a sentence saying where ∇τ stands.

    Raises:
        ConfigError: a seed's run without the reference model.
    """
    missing = sorted(seed for seed, models in runs.items() if reference not in models)
    if missing:
        raise ConfigError(f"the runs of seeds {missing} have no {reference!r} model to compare with")
    methods = list(dict.fromkeys(name for models in runs.values() for name in models
                                 if name != reference and name not in exclude and not _is_reference(name)))
    rows = {}
    for name in methods:
        gaps = [abs(models[name][metric] - models[reference][metric]) for models in runs.values()
                if name in models and metric in models[name]]
        mean, std, low, high = interval(gaps, confidence, bounds=gap_bounds(metric))
        rows[name] = {"gap": mean, "std": std, "low": low, "high": high, "seeds": len(gaps)}
    table = pd.DataFrame.from_dict(rows, orient="index").sort_values("gap", kind="stable").rename_axis("model")
    if table.empty:
        return table, f"No method to rank on {metric}."
    best = table.iloc[0]
    if table["seeds"].min() >= 2:
        # Overlap alone is not monotone in the gap: a wide interval can overlap the best's where a narrower one
        # with a smaller mean does not, and a ranking that calls the smaller gap farther contradicts itself. So
        # every gap up to the largest one that overlaps is tied too; every tie that overlap finds stays one.
        overlaps = (table["low"] <= best["high"]) | (table.index == table.index[0])
        table["tied_for_closest"] = table["gap"] <= table.loc[overlaps, "gap"].max()
        how = (f"mean over {int(table['seeds'].min())} seeds of |{metric} − retrained model's {metric}|; tied = "
               f"{int(confidence * 100)} % interval overlaps the best's, or a smaller mean gap than one that does")
    else:
        table["tied_for_closest"] = table["gap"].round(3) == round(best["gap"], 3)
        how = f"|{metric} − retrained model's {metric}|, one seed; tied = equal to 3 decimals"
    listing = ", ".join(f"{name} {row['gap']:.3f}" for name, row in table.iterrows())
    if "nablatau" not in table.index:
        return table, f"Closest to retrain on {metric} ({how}): {listing}."
    position = 1 + int((table["gap"] < table.loc["nablatau", "gap"]).sum())
    tied = [name for name in table.index[table["tied_for_closest"]] if name != "nablatau"]
    if table.loc["nablatau", "tied_for_closest"]:
        alone = ("no other method's interval overlaps its own" if table["seeds"].min() >= 2
                 else "one seed, so no interval says by how much")
        verdict = f"∇τ is tied for closest with {', '.join(tied)}" if tied else f"∇τ is the closest ({alone})"
    else:
        verdict = f"∇τ is NOT among the closest: it ranks {position} of {len(table)}"
    return table, f"Closest to retrain on {metric} ({how}): {listing}. {verdict}."


#: The metrics on which the image notebooks rank the methods' distance to the retrained model: the loss
#: attack's accuracy (the paper's privacy claim), the forget-loss distribution (KS; the retrained model's own
#: value is 0) and test accuracy.
CLOSEST_METRICS = ("mia_loss", "forget_ks", "test_acc")


def closest_report(runs: Mapping[int, Mapping[str, Mapping[str, Any]]],
                   metrics: Sequence[str] = CLOSEST_METRICS) -> str:
    """The :func:`closest_over_seeds` sentence for each of ``metrics``, one paragraph each."""
    return "\n\n".join(closest_over_seeds(runs, metric)[1] for metric in metrics)


def round_accuracy(value: float) -> float:
    """``value``, an accuracy or a difference of accuracies, rounded to 6 decimals before a threshold test.

    :func:`nablatau.metrics.accuracy` returns a float32 mean: 170 right of 400 is stored as 0.42500001, so an
    exact 5-point gap (150 against 170) would read 0.05000001 and fail "within 0.05". Six decimals lie far
    below one sample of any test set here and far above float32's error.
    """
    return round(value, 6)


def shortened_trainings(configs: Iterable[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """``(epochs trained, the profile's epochs)`` of every shortened training among these runs' configs (their
    ``shortened_training``, see :func:`nablatau.removal.removal_config`), sorted; empty when none was shortened."""
    return sorted({(s["epochs"], s["profile_epochs"]) for config in configs if (s := config.get("shortened_training"))})
