"""The α₀ × forget-fraction sweep's results, read back: one table, the rule against the best α₀, figures.

Reads the files :mod:`nablatau.sweep` writes (``<output_dir>/alpha_split_sweep/<run-id>.json``) and
nothing else, and imports no training code, so ``make figures`` (:mod:`nablatau.figures`) redraws the
sweep without torch or Ray: :func:`load_sweep` joins the cells and their retrainings into one table,
:func:`rule_summary` and :func:`rule_verdicts` set the rule's α₀ = 5/3 · fraction against the best α₀
tried, and the ``plot_*`` functions draw them (:func:`nablatau.figures.write_sweep_figures` writes them to
files).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import ConfigError
from .results import load_results, results_path
from .sweep_rule import NOTEBOOK, rule_alpha0
from .references import agreement_problems, reference_index
from .tables import gap_bounds, interval

if TYPE_CHECKING:  # only for the annotation: importing the sweep would import torch
    from .sweep import SweepGrid


# --- The results table ---------------------------------------------------------------------------------

#: The metrics of every cell (and of its retraining, as ``retrain_<metric>``) in :func:`load_sweep`'s table.
METRICS = ("retain_acc", "forget_acc", "test_acc", "mia_loss", "mia_loss_std", "mia_entropy", "runtime_s")


def load_sweep(output_dir: str | os.PathLike, *, grid: SweepGrid | None = None) -> pd.DataFrame:
    """One row per ∇τ cell found under ``<output_dir>/alpha_split_sweep/``, retraining joined by (fraction, seed).

    Columns: ``dataset``, ``profile``, ``fraction``, ``alpha0``, ``seed``, ``is_rule``, ``train_mode``, ``epochs``,
    :data:`METRICS`, the same with a ``retrain_`` prefix (NaN where no retrain file exists),
    ``mia_reference`` (``"retrain"``, or ``"chance"`` where no retrain exists), ``reference_problems`` (why
    the retrained model failed its soundness check, :func:`nablatau.sweep.check_reference`; empty when it
    passed or no retrain exists) and ``mia_gap`` = |mia_loss − retrain's mia_loss|, or |mia_loss − 0.5| against
    chance. With ``grid``, only that
    grid's files are read. Where two files hold the same coordinates with other settings (e.g. after
    a profile changed), the newest is kept, with a warning naming the others.
    """
    folder = Path(output_dir) / NOTEBOOK
    if grid is not None:
        files = [results_path(output_dir, NOTEBOOK, c.config()) for c in [*grid.retrain_cells, *grid.cells]]
        files = [path for path in files if path.exists()]
    else:
        files = sorted(folder.glob("*.json"))
    rows: dict[str, list] = {"nablatau": [], "retrain": [], "further": []}
    for path in files:
        payload = load_results(path)
        config = payload.get("config", {})
        kind = config.get("kind")
        bucket = "further" if kind and (reference_index(kind) or 0) > 1 else kind
        if bucket not in rows:
            continue
        model = payload["models"][kind]
        row = {"dataset": config["dataset"], "profile": config["profile"], "fraction": config["forget_fraction"],
               "seed": config["seed"]}
        row.update({name: model.get(name, np.nan) for name in METRICS})
        if bucket != "nablatau":
            # Files from before the sweep checked its retrained models carry no reference_problems.
            row.update(reference_problems=tuple(model.get("reference_problems") or ()), kind=kind,
                       n_test=model.get("n_test"))
        if config["kind"] == "nablatau":
            row.update(alpha0=config["alpha0"], epochs=model.get("config", {}).get("epochs", np.nan),
                       is_rule=math.isclose(config["alpha0"], rule_alpha0(row["fraction"]), rel_tol=1e-6),
                       train_mode=config.get("train_mode", False))  # files from before the setting ran in eval mode
        row.update(finished_at=payload.get("environment", {}).get("finished_at", ""), path=str(path))
        rows[bucket].append(row)
    cells = _newest(pd.DataFrame(rows["nablatau"]), ["dataset", "profile", "fraction", "alpha0", "seed"])
    retrains = _spread(_newest(pd.DataFrame(rows["retrain"]), ["dataset", "profile", "fraction", "seed"]),
                       _newest(pd.DataFrame(rows["further"]), ["dataset", "profile", "fraction", "seed", "kind"]))
    columns = ["dataset", "profile", "fraction", "alpha0", "seed", "is_rule", "train_mode", "epochs", *METRICS,
               *(f"retrain_{m}" for m in METRICS), "retraining_spread", "mia_reference", "reference_problems", "mia_gap",
               "path"]
    if cells.empty:
        return pd.DataFrame(columns=columns)
    keys = ["dataset", "profile", "fraction", "seed"]
    if retrains.empty:
        retrains = pd.DataFrame(columns=[*keys, *METRICS, "reference_problems", "retraining_spread"])
    retrains = retrains[[*keys, *METRICS, "reference_problems", "retraining_spread"]].rename(
        columns={m: f"retrain_{m}" for m in METRICS})
    frame = cells.merge(retrains, on=keys, how="left")
    has_retrain = frame["retrain_mia_loss"].notna()
    frame["mia_reference"] = np.where(has_retrain, "retrain", "chance")
    frame["reference_problems"] = [problems if isinstance(problems, tuple) else () for problems in
                                   frame["reference_problems"]]
    frame["mia_gap"] = (frame["mia_loss"] - frame["retrain_mia_loss"].where(has_retrain, 0.5)).abs()
    return frame[columns].sort_values(["dataset", "profile", "fraction", "alpha0", "seed"]).reset_index(drop=True)


def _spread(retrains: pd.DataFrame, further: pd.DataFrame) -> pd.DataFrame:
    """``retrains`` with ``retraining_spread`` (the further references' mean |loss-MIA − the first's|, NaN where
    none exists) and their soundness joined into ``reference_problems``: the further references' own health
    checks, and their agreement with the first (:func:`nablatau.runner.agreement_problems`)."""
    if retrains.empty:
        return retrains
    retrains = retrains.copy()
    spreads, problems = [], []
    for _, row in retrains.iterrows():
        same = (further[["dataset", "profile", "fraction", "seed"]] == row[["dataset", "profile", "fraction", "seed"]]
                ).all(axis=1) if not further.empty else pd.Series(dtype=bool)
        others = further[same] if not further.empty else further
        spreads.append(float((others["mia_loss"] - row["mia_loss"]).abs().mean()) if len(others) else np.nan)
        found = list(row["reference_problems"])
        for _, other in others.iterrows():
            found += list(other["reference_problems"])
            if row.get("n_test") and not pd.isna(row["n_test"]):
                found += agreement_problems({"retrain": row["test_acc"], other["kind"]: other["test_acc"]},
                                            int(row["n_test"]))
        problems.append(tuple(found))
    retrains["retraining_spread"], retrains["reference_problems"] = spreads, problems
    return retrains


def _newest(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if frame.empty:
        return frame
    frame = frame.sort_values("finished_at")
    stale = frame[frame.duplicated(keys, keep="last")]
    if not stale.empty:
        warnings.warn(f"{len(stale)} results files repeat cells of newer files with other settings and are ignored: "
                      f"{', '.join(stale['path'])}; delete them if they are stale", stacklevel=3)
    return frame.drop_duplicates(keys, keep="last")


def _one_run(frame: pd.DataFrame) -> tuple[str, str]:
    runs = frame[["dataset", "profile"]].drop_duplicates()
    if len(runs) != 1:
        raise ConfigError(f"the table holds {len(runs)} (dataset, profile) sweeps ({runs.values.tolist()}); pass one, "
                          "e.g. frame[frame.profile == 'quick'], or load_sweep(..., grid=grid)")
    return tuple(runs.iloc[0])


def rule_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per fraction: the rule's α₀ against the best α₀ tried there, averaged over seeds.

    The best α₀ is the one (among the grid's and the rule's values run at that fraction) whose mean
    ``mia_gap`` is smallest: loss-MIA closest to the retrained model's, or to chance (0.5) where no
    retraining exists. ``mia_gap_difference`` = rule's gap − best gap (≥ 0, 0 when the rule is best);
    ``test_acc_difference`` = rule's test accuracy − best's. ``mia_noise`` is the attack's mean std
    over its cross-validation splits: a gap difference below it is within the attack's noise.
    ``unsound_reference_seeds``: the seeds whose retrained model failed its soundness check there.
    """
    _one_run(frame)
    grouped = frame.groupby(["fraction", "alpha0"])
    means = grouped[["mia_gap", "test_acc", "mia_loss_std", "is_rule"]].mean()
    # A gap of loss-MIA accuracies lies in [0, 1]: its interval is clipped there, as the removal notebooks' gaps are.
    gap_intervals = grouped["mia_gap"].agg(lambda gaps: interval(gaps.tolist(), bounds=gap_bounds("mia_loss"))[2:])
    rows = []
    for fraction, group in means.groupby(level="fraction"):
        group = group.droplevel("fraction")
        best = group["mia_gap"].idxmin()
        rule = rule_alpha0(fraction)
        ruled = group[group["is_rule"] > 0]
        rule_gap, rule_acc = (ruled["mia_gap"].iloc[0], ruled["test_acc"].iloc[0]) if len(ruled) else (np.nan, np.nan)
        rule_low, rule_high = gap_intervals[(fraction, ruled.index[0])] if len(ruled) else (np.nan, np.nan)
        best_low, best_high = gap_intervals[(fraction, best)]
        lows = [gap_intervals[(fraction, alpha0)][0] for alpha0 in group.index]
        at_fraction = frame[frame["fraction"] == fraction]
        references = set(at_fraction["mia_reference"])
        unsound = tuple(sorted({int(seed) for seed, problems in zip(at_fraction["seed"], at_fraction["reference_problems"])
                                if problems}))
        rows.append({"fraction": fraction, "rule_alpha0": rule, "best_alpha0": best,
                     "rule_is_best": bool(math.isclose(best, rule, rel_tol=1e-6)),
                     "rule_mia_gap": rule_gap, "rule_mia_gap_low": rule_low, "rule_mia_gap_high": rule_high,
                     "best_mia_gap": group.loc[best, "mia_gap"], "best_mia_gap_low": best_low,
                     "best_mia_gap_high": best_high,
                     # Tied: the rule's and the best α₀'s 95 % intervals over seeds overlap (one seed: no intervals).
                     "rule_tied_with_best": bool(rule_low <= best_high) if not math.isnan(rule_low) else False,
                     "mia_gap_difference": rule_gap - group.loc[best, "mia_gap"],
                     "rule_test_acc": rule_acc, "best_test_acc": group.loc[best, "test_acc"],
                     "test_acc_difference": rule_acc - group.loc[best, "test_acc"],
                     "mia_noise": group["mia_loss_std"].mean(), "alphas_tried": len(group),
                     # How far a second retraining's loss-MIA lands from the first's (mean over seeds; NaN
                     # without second references): a gap within it is as close as an exact retraining gets.
                     "retraining_spread": float(at_fraction.drop_duplicates("seed")["retraining_spread"].mean()),
                     # How many α₀ tried (the best included) the seeds cannot tell from the best.
                     "alphas_tied_with_best": (sum(bool(low <= best_high) for low in lows)
                                               if not math.isnan(best_high) else 1),
                     "seeds": int(at_fraction["seed"].nunique()),
                     "mia_reference": references.pop() if len(references) == 1 else "mixed",
                     # Seeds whose retrained model failed its soundness check: the fraction is not judged.
                     "unsound_reference_seeds": unsound})
    return pd.DataFrame(rows).set_index("fraction")


def format_rule_summary(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """:func:`rule_summary` for reading (notebook, markdown, LaTeX): one row per forget fraction.

    Gaps are |loss-MIA − reference's| as mean [95 % interval over seeds]; "rule vs best" says whether the
    rule's α₀ is the best, tied with it (the two intervals overlap) or worse.

        >>> row = {"rule_alpha0": 0.5, "best_alpha0": 0.25, "rule_mia_gap": 0.1, "rule_mia_gap_low": 0.05,
        ...        "rule_mia_gap_high": 0.15, "best_mia_gap": 0.08, "best_mia_gap_low": 0.02,
        ...        "best_mia_gap_high": 0.14, "rule_is_best": False, "rule_tied_with_best": True, "rule_test_acc": 0.5,
        ...        "best_test_acc": 0.52, "mia_noise": 0.02, "alphas_tried": 4, "alphas_tied_with_best": 3,
        ...        "seeds": 3, "mia_reference": "retrain"}
        >>> shown = format_rule_summary(pd.DataFrame([row], index=pd.Index([0.3], name="fraction")))
        >>> shown.iloc[0, :6].tolist()
        ['30 %', '0.5', '0.25', '0.100 [0.050, 0.150]', '0.080 [0.020, 0.140]', 'tied (intervals overlap)']
        >>> shown.iloc[0, 6:10].tolist()
        ['0.500', '0.520', '3 of 4', '0.020']
    """
    def gap(row: pd.Series, who: str) -> str:
        mean, low, high = row[f"{who}_mia_gap"], row[f"{who}_mia_gap_low"], row[f"{who}_mia_gap_high"]
        if math.isnan(mean):
            return "not run"
        return f"{mean:.{digits}f}" + ("" if math.isnan(low) else f" [{low:.{digits}f}, {high:.{digits}f}]")

    def _rule_vs_best(row: pd.Series) -> str:
        if row["rule_is_best"]:
            return "rule is best"
        if row["seeds"] < 2:
            return "worse (one seed: no interval)"
        return "tied (intervals overlap)" if row["rule_tied_with_best"] else "worse (intervals apart)"

    def number(value: float) -> str:
        return "not run" if math.isnan(value) else f"{value:.{digits}f}"

    rows = [{"forgotten": f"{100 * fraction:g} %", "rule's α₀": f"{row['rule_alpha0']:.3g}",
             "best α₀": f"{row['best_alpha0']:.3g}",
             "rule: gap to reference [95 % interval]": gap(row, "rule"),
             "best: gap to reference [95 % interval]": gap(row, "best"),
             "rule vs best": _rule_vs_best(row),
             "rule: test acc": number(row["rule_test_acc"]), "best: test acc": number(row["best_test_acc"]),
             "α₀ tied with best": f"{int(row['alphas_tied_with_best'])} of {int(row['alphas_tried'])}",
             "attack noise": number(row["mia_noise"]),
             "retraining's spread": number(row.get("retraining_spread", math.nan)), "seeds": int(row["seeds"]),
             "reference": row["mia_reference"] + (f" (unsound: {_seeds(row['unsound_reference_seeds'])})"
                                                  if row.get("unsound_reference_seeds") else "")}
            for fraction, row in summary.iterrows()]
    return pd.DataFrame(rows)


def _seeds(seeds: Sequence[int]) -> str:
    """``"seed 2"`` or ``"seeds 1, 3"``."""
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _every_alpha_tied(row: Mapping[str, Any]) -> bool:
    """The seeds' intervals tie every α₀ tried at this fraction with the best (several seeds, several α₀)."""
    return row["seeds"] >= 2 and row["alphas_tried"] > 1 and row["alphas_tied_with_best"] == row["alphas_tried"]


def _within_spread(row: Mapping[str, Any]) -> bool:
    """The rule's gap to the retrained model is no larger than a second retraining's (mean over seeds)."""
    spread = row.get("retraining_spread", math.nan)
    return row.get("mia_reference") == "retrain" and not math.isnan(spread) and row["rule_mia_gap"] <= spread


def rule_verdict(row: Mapping[str, Any]) -> str:
    """Whether the rule held at one fraction (a row of :func:`rule_summary`): ``"HELD"``, ``"INCONCLUSIVE"``,
    ``"DID NOT HOLD"`` or ``"NOT JUDGED"``.

    Not judged: the retrained model of some seed there failed its soundness check, so the gaps are measured
    against an unsound reference and are not evidence either way (as in the removal notebooks).

    Held: the rule's α₀ is the best tried, or the seeds' intervals tie it with the best, or its gap to the
    retrained model is within retraining's own spread (a second retraining lands as far). Inconclusive: the
    seeds tie every α₀ tried with the best (then "the rule's α₀ works" is true of any α₀ and says nothing),
    or, with one seed, the rule misses the best by less than the attack's own noise. Did not hold otherwise.
    """
    if row.get("unsound_reference_seeds"):
        return "NOT JUDGED"
    if math.isnan(row["rule_mia_gap"]):
        return "INCONCLUSIVE"
    if _every_alpha_tied(row):
        return "INCONCLUSIVE"
    if row["rule_is_best"] or row["rule_tied_with_best"] or _within_spread(row):
        return "HELD"
    if row["seeds"] < 2 and row["mia_gap_difference"] <= row["mia_noise"]:
        return "INCONCLUSIVE"
    return "DID NOT HOLD"


def rule_verdicts(summary: pd.DataFrame) -> list[str]:
    """Plain sentences from :func:`rule_summary`: an overall count, then per fraction the verdict
    (:func:`rule_verdict`), whether the rule's α₀ is the best one tried and, where it is not, by how much
    (against the attack's own noise and the seeds' intervals)."""
    misses = [f"{fraction:.0%}" for fraction, row in summary.iterrows() if not row["rule_is_best"]]
    ties = [f"{fraction:.0%}" for fraction, row in summary.iterrows()
            if not row["rule_is_best"] and row.get("rule_tied_with_best", False)]
    lines = [f"The rule's α₀ is the best α₀ tried at {len(summary) - len(misses)} of {len(summary)} "
             "forget fractions" + (f"; not at {', '.join(misses)}" if misses else "")
             + (f" (tied with the best within the seeds' 95 % intervals at {', '.join(ties)})" if ties else "") + "."]
    for fraction, row in summary.iterrows():
        unsound = row.get("unsound_reference_seeds") or ()
        caveat = (f" The retrained model of {_seeds(unsound)} failed its soundness check (its results file says "
                  "why): these gaps are not evidence either way." if unsound else "")
        against = {"retrain": "the retrained model's", "chance": "chance (0.5)"}.get(
            row["mia_reference"], "the reference (the retrained model's where it exists, else chance)")
        head = f"{rule_verdict(row)} — forget {fraction:.0%}: the rule's α₀ = {row['rule_alpha0']:.3g}"
        if _every_alpha_tied(row):
            head += f" (the seeds' 95 % intervals tie all {row['alphas_tried']} α₀ tried with the best)"
        spread = row.get("retraining_spread", math.nan)
        if not math.isnan(spread) and not math.isnan(row["rule_mia_gap"]):
            caveat = (f" A second retraining's loss-MIA lands {spread:.3f} from the first's: the rule's gap is "
                      f"{'within' if row['rule_mia_gap'] <= spread else 'beyond'} retraining's own spread."
                      + caveat)
        if math.isnan(row["rule_mia_gap"]):
            lines.append(f"{head} has no result yet; rerun the sweep.{caveat}")
        elif row["rule_is_best"]:
            lines.append(f"{head} is the best of the {row['alphas_tried']} α₀ tried: loss-MIA within "
                         f"{row['rule_mia_gap']:.3f} of {against}.{caveat}")
        else:
            noise = "within" if row["mia_gap_difference"] <= row["mia_noise"] else "beyond"
            seeds = (f"; over {row['seeds']} seeds the 95 % intervals of the two gaps "
                     f"([{row['rule_mia_gap_low']:.3f}, {row['rule_mia_gap_high']:.3f}] and "
                     f"[{row['best_mia_gap_low']:.3f}, {row['best_mia_gap_high']:.3f}]) "
                     + ("overlap: a tie the seeds cannot break" if row["rule_tied_with_best"] else "do not overlap")
                     if not math.isnan(row["rule_mia_gap_low"]) else "")
            lines.append(f"{head} is NOT the best: α₀ = {row['best_alpha0']:.3g} brings loss-MIA within "
                         f"{row['best_mia_gap']:.3f} of {against}, the rule within {row['rule_mia_gap']:.3f} "
                         f"({row['mia_gap_difference']:.3f} worse, {noise} the attack's noise of "
                         f"{row['mia_noise']:.3f}{seeds}); test accuracy {row['rule_test_acc']:.3f} (rule) vs "
                         f"{row['best_test_acc']:.3f}.{caveat}")
    return lines


# --- Figures ---------------------------------------------------------------------------------------------

HEATMAPS = (  # column, title, colour map, centre
    ("mia_gap", "|loss-MIA − retrained model's loss-MIA|, lower is better", "rocket_r", None),
    ("mia_loss", "loss-MIA, forget vs test (0.5 = chance)", "vlag", 0.5),
    ("test_acc", "test accuracy", "viridis", None),
)


#: How the rule's cells are outlined in the heatmaps: black dashes on white, visible on dark and light cells.
RULE_OUTLINE = ({"fill": False, "edgecolor": "white", "linewidth": 3.0},
                {"fill": False, "edgecolor": "black", "linewidth": 1.5, "linestyle": "--",
                 "label": "the rule's α₀ = 5/3 · fraction (outlined)"})


def _draw_rule(ax: Any, fractions: Sequence[float], alphas: Sequence[float]) -> None:
    # The rule's cell of each fraction is outlined: a line joining the cells would cross their labels. Heatmap
    # cells span [i, i + 1] on categorical axes; a fraction whose rule α₀ was not run has no cell to outline.
    from matplotlib.patches import Rectangle

    for row, fraction in enumerate(fractions):
        columns = [i for i, alpha in enumerate(alphas) if math.isclose(alpha, rule_alpha0(fraction), rel_tol=1e-6)]
        for column in columns:
            # Drawn inside the cell, so that the outline of one cell does not cover its neighbour's edge.
            for style in RULE_OUTLINE:
                ax.add_patch(Rectangle((column + 0.05, row + 0.05), 0.9, 0.9, **style))


def plot_heatmaps(frame: pd.DataFrame) -> Any:
    """Heatmaps over (fraction, α₀), means over seeds: MIA gap, loss-MIA and test accuracy, the rule's cells
    outlined.

    Gaps measured against chance because no retraining exists for the cell are marked ``*``.
    Returns a matplotlib ``Figure``.
    """
    import seaborn as sns
    from matplotlib.figure import Figure

    dataset, profile = _one_run(frame)
    means = frame.groupby(["fraction", "alpha0"]).mean(numeric_only=True)
    chance = frame.assign(chance=frame["mia_reference"].eq("chance")).groupby(["fraction", "alpha0"])["chance"].any()
    shape = means["mia_gap"].unstack("alpha0").shape
    figure = Figure(figsize=(max(6.0, 0.6 * shape[1] + 2.5), 3 * (0.45 * shape[0] + 1.4)), layout="constrained")
    for ax, (column, title, cmap, center) in zip(figure.subplots(3, 1), HEATMAPS):
        table = means[column].unstack("alpha0")
        marks = chance.unstack("alpha0").reindex_like(table).fillna(False).astype(bool)
        annot = table.map(lambda v: f"{v:.2f}") + marks.map(lambda m: "*" if m and column == "mia_gap" else "")
        with warnings.catch_warnings():
            # seaborn calls the colormap's set_bad, which matplotlib schedules for deprecation: not ours to
            # fix, and its warning text would otherwise land in the executed notebook.
            warnings.filterwarnings("ignore", message="The set_bad function", category=PendingDeprecationWarning)
            sns.heatmap(table, ax=ax, mask=table.isna(), annot=annot.values, fmt="", cmap=cmap, center=center,
                        linewidths=0.5, annot_kws={"fontsize": 7}, xticklabels=[f"{a:.3g}" for a in table.columns],
                        yticklabels=[f"{f:g}" for f in table.index])
        _draw_rule(ax, table.index, table.columns)
        ax.tick_params(axis="y", rotation=0)
        ax.invert_yaxis()
        star = "\n(* no retraining: against chance, 0.5)" if column == "mia_gap" and marks.values.any() else ""
        ax.set(xlabel="α₀", ylabel="forget fraction")
        ax.set_title(f"{title}{star}", fontsize=10)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    if handles:  # one entry for every outlined cell: the first says it
        figure.legend(handles[:1], labels[:1], loc="outside lower center", fontsize=8)
    figure.suptitle(f"∇τ α₀ × forget fraction, {dataset}, profile {profile}, "
                    f"mean over {frame['seed'].nunique()} seed(s)")
    return figure


def plot_rule_vs_best(frame: pd.DataFrame) -> Any:
    """The rule's α₀ = 5/3 · fraction against the best α₀ tried at each fraction (:func:`rule_summary`).

    The rule's α₀ at each fraction is drawn as an open square above the rule's line, and the best α₀ as a dot
    above both, so that where they coincide the dot sits inside the square; the legend stands beside the axes,
    where it covers no point.
    """
    from matplotlib.figure import Figure

    dataset, profile = _one_run(frame)
    summary = rule_summary(frame)
    figure = Figure(figsize=(7.5, 4), layout="constrained")
    ax = figure.subplots()
    tried = frame[["fraction", "alpha0"]].drop_duplicates()
    ax.scatter(tried["fraction"], tried["alpha0"], s=12, color="lightgray", label="α₀ tried", zorder=1)
    line = np.linspace(0, summary.index.max() * 1.05, 50)
    ax.plot(line, 5 / 3 * line, color="black", linestyle="--", linewidth=1, label="rule: α₀ = 5/3 · fraction",
            zorder=2)
    ax.plot(summary.index, summary["rule_alpha0"], marker="s", markersize=11, markerfacecolor="white",
            markeredgecolor="black", markeredgewidth=1.5, linestyle="", label="the rule's α₀", zorder=3)
    ax.plot(summary.index, summary["best_alpha0"], marker="o", markersize=6, linestyle="", color="C3",
            label="best α₀ (loss-MIA closest to retraining's)", zorder=4)
    ax.set(xlabel="forget fraction", ylabel="α₀", title=f"rule vs best α₀, {dataset}, profile {profile}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    return figure
