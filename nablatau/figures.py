"""Tables and plots of the paper, from saved results files only: the notebooks and ``make figures`` share them.

``python -m nablatau.figures --results results --figures figures [--profile quick]`` reads every
``results/<notebook>/<run-id>.json`` and writes, under ``figures/<profile>/``:

- per notebook and data set, one table over the runs (markdown and LaTeX; mean ± std and a 95 % interval over seeds
  when a setting ran with several seeds, as :func:`nablatau.tables.seed_summary_note` says in the caption), with
  the unsound-reference caveat of any run whose retrained model failed its soundness check;
- per run, the plots the notebook shows (MIA and test accuracy over epochs, loss histograms);
- across forget fractions, the loss-MIA and test accuracy of every method;
- the α₀ × fraction sweep's heatmaps, rule-vs-best plot and table (:func:`write_sweep_figures`) when its
  results exist;
- one folder per profile (``figures/quick/``, ...), and ``figures/README.md``, an index with a section per
  profile naming the notebook, parameters and results file behind each figure; regenerating one profile
  keeps the other profiles' folders and entries.

No model is trained or evaluated here, and no training code is imported (no torch, no Ray): a test
imports this module in a fresh interpreter and checks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .results import by_setting, forgotten_classes, load_results, load_runs, measured, run_profile
from .sweep_figures import (format_rule_summary, load_sweep, plot_heatmaps, plot_rule_vs_best, rule_summary,
                             rule_verdicts)
from .sweep_rule import NOTEBOOK as SWEEP_NOTEBOOK
from .tables import (TABLE_COLUMNS, TEXT_TABLE_COLUMNS, closest_over_seeds, gap_clipping, seed_summary_note,
                     shortened_trainings, summarize, summary_cell, titled)

#: Display names of the models, in table order.
MODEL_NAMES = {"original": "Original", "retrain": "Retrain", "retrain_2": "Retrain, second seed",
               "retrain_3": "Retrain, third seed", "nablatau": "∇τ", "finetune": "Finetune",
               "scrub": "SCRUB", "ssd": "SSD", "amnesiac": "Amnesiac", "neggrad_plus": "NegGrad+",
               "bad_teacher": "Bad Teacher"}

#: Display names of the data sets where they differ from the identifiers.
DATASET_NAMES = {"goemotions": "GoEmotions", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}

#: The columns of the exported tables and their titles: the notebooks' columns (:mod:`nablatau.tables`), with
#: the forgotten classes' test accuracy first for class removal, and without the forget set's F1 for text.
IMAGE_COLUMNS = titled(*TABLE_COLUMNS, "runtime_vs_retrain")
CLASS_COLUMNS = titled("test_forget_class_acc", "test_other_classes_acc", *IMAGE_COLUMNS)
TEXT_COLUMNS = titled(*(column for column in TEXT_TABLE_COLUMNS if column != "forget_f1_micro"), "runtime_vs_retrain")


#: Axis labels of the metrics.
METRIC_LABELS = {"mia_loss": "loss-MIA accuracy", "mia_entropy": "entropy-MIA accuracy", "test_acc": "test accuracy",
                 "forget_acc": "forget accuracy", "retain_acc": "retain accuracy"}


def display_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


# --- Plots the notebooks show -----------------------------------------------------------------------


def plot_epoch_curves(models: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Mapping[str, Any]]],
                      metric: str = "mia_loss", methods: Sequence[str] = ("nablatau", "finetune"),
                      reference: str = "retrain", ax: plt.Axes | None = None, title: str = "") -> plt.Axes:
    """``metric`` over the epochs of each of ``methods`` (those measured: :func:`nablatau.runner.is_tracked_epoch`),
    with the ``reference`` and original models as lines.

    ``models`` is one run's models, or a list of them (one per seed): the curves are then the mean over
    seeds with a band of ± one std, and the reference lines carry a band of their own.
    """
    runs = [models] if isinstance(models, Mapping) else list(models)
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for name in methods:
        frames = [pd.DataFrame(run.get(name, {}).get("history", [])) for run in runs]
        history = pd.concat([f for f in frames if metric in f], ignore_index=True) if any(
            metric in f for f in frames) else pd.DataFrame()
        if not history.empty:
            sns.lineplot(data=history, x="epoch", y=metric, marker="o", markersize=3, errorbar="sd",
                         label=display_name(name), ax=ax)
    for name, style in ((reference, "--"), ("original", ":")):
        values = [run[name][metric] for run in runs if metric in run.get(name, {})]
        if values:
            mean = float(np.mean(values))
            ax.axhline(mean, color="gray", linestyle=style, label=display_name(name))
            if len(values) > 1:
                ax.axhspan(mean - np.std(values, ddof=1), mean + np.std(values, ddof=1), color="gray", alpha=0.15)
    if metric.startswith("mia"):
        ax.axhline(0.5, color="black", linewidth=0.5)
    # A reference line added after the curves does not widen the y limits by itself: one at the data's extreme
    # would lie on the frame. Recomputed from every line and band, the limits get their margins around it too.
    ax.relim()
    ax.autoscale_view()
    ax.set(xlabel="epoch", ylabel=METRIC_LABELS.get(metric, metric.replace("_", " ")), title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)  # beside the axes: hides no data
    return ax


def plot_unlearning_curves(models: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Mapping[str, Any]]],
                           methods: Sequence[str] = ("nablatau", "finetune"), title: str = "") -> plt.Figure:
    """Loss-MIA and test accuracy over the epochs of ``methods``, side by side (see `plot_epoch_curves`).

    The layout is tightened so that each panel's legend, drawn beside it, covers nothing of its neighbour.
    """
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    plot_epoch_curves(models, "mia_loss", methods, ax=axes[0], title="loss-MIA over the epochs")
    plot_epoch_curves(models, "test_acc", methods, ax=axes[1], title="test accuracy over the epochs")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_gap_to_retrain(runs: Mapping[int, Mapping[str, Mapping[str, Any]]], metric: str = "mia_loss",
                        title: str = "") -> plt.Axes:
    """Each method's gap |``metric`` − the retrained model's| (mean over seeds, 95 % interval as error bars,
    clipped to the gap's range: :func:`nablatau.tables.gap_bounds`), closest first, coloured by whether the seeds tie it with the closest
    (:func:`nablatau.tables.closest_over_seeds`: its interval overlaps the closest's, or its mean gap is smaller
    than one that does), so the colour changes once down the bars.

    The gap is an absolute value: the axis starts at 0, and an interval's ends are drawn within the gap's range.
    """
    gaps, _ = closest_over_seeds(runs, metric)
    frame = gaps.reset_index().assign(
        model=lambda f: f["model"].map(display_name),
        verdict=lambda f: np.where(f["tied_for_closest"], "tied with the closest", "farther"))
    ax = plt.subplots(figsize=(6.5, 0.45 * len(frame) + 1.2))[1]
    sns.barplot(data=frame, y="model", x="gap", hue="verdict", dodge=False, ax=ax,
                palette={"tied with the closest": "tab:blue", "farther": "tab:gray"})
    seeds = int(gaps["seeds"].min())
    if frame["std"].notna().all():
        ax.errorbar(frame["gap"], range(len(frame)), xerr=[frame["gap"] - frame["low"], frame["high"] - frame["gap"]],
                    fmt="none", color="black", capsize=3)
        rule = "tied: 95 % interval overlaps the closest's,\nor a smaller gap than one that does"
    else:
        rule = "tied: the closest's gap to 3 decimals"
    ax.set_xlim(left=0)
    label = METRIC_LABELS.get(metric, metric.replace("_", " "))
    ax.set(ylabel="", title=title, xlabel=f"|{label} − retrained model's| (mean over {seeds} seed{'s' * (seeds > 1)}"
                                          f"{', 95 % interval ' + gap_clipping(metric) if seeds > 1 else ''})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title=rule, title_fontsize=8, frameon=False,
              alignment="left")
    return ax


def plot_loss_histograms(models: Mapping[str, Mapping[str, Any]],
                         names: Sequence[str] = ("original", "nablatau", "retrain"),
                         title: str = "") -> plt.Figure:
    """Per model, the loss of forget samples against held-out samples (log scale): what the attack sees.

    One legend for the figure, beside the last panel: the panels share their colours, and a legend inside a
    panel covers its histogram.
    """
    shown = [name for name in names if "sample_losses" in models.get(name, {})]
    figure, axes = plt.subplots(1, max(len(shown), 1), figsize=(4 * max(len(shown), 1), 3.5), sharex=True,
                                squeeze=False)
    legend = None
    for ax, name in zip(axes[0], shown):
        frame = pd.concat([pd.DataFrame({"loss": np.maximum(values, 1e-6), "samples": split})
                           for split, values in models[name]["sample_losses"].items()])
        sns.histplot(data=frame, x="loss", hue="samples", log_scale=True, stat="density", common_norm=False,
                     element="step", ax=ax)
        ax.set(title=f"{display_name(name)} (loss-MIA {models[name]['mia_loss']:.2f})")
        if ax.get_legend() is not None:
            legend = legend or (ax.get_legend().legend_handles, [t.get_text() for t in ax.get_legend().get_texts()])
            ax.get_legend().remove()
    figure.suptitle(title)
    figure.tight_layout()
    if legend:
        figure.legend(*legend, title="samples", loc="upper left", bbox_to_anchor=(1.0, 0.9), frameon=False)
    return figure


def plot_across_fractions(frame: pd.DataFrame, metric: str, title: str = "") -> plt.Axes:
    """``metric`` of every method and the retrained model against the forget fraction (mean over seeds,
    error bars = std), with the original model (the same at every fraction) as a dotted reference line."""
    from matplotlib.ticker import PercentFormatter

    ax = plt.subplots(figsize=(6.5, 4))[1]
    data = frame[frame["model"] != "original"].assign(model=lambda f: f["model"].map(display_name))
    sns.lineplot(data=data, x="forget_fraction", y=metric, hue="model", style="model", markers=True, dashes=False,
                 errorbar="sd", err_style="bars", ax=ax)
    original = frame.loc[frame["model"] == "original", metric]
    if not original.empty:
        ax.axhline(float(original.mean()), color="gray", linestyle=":", label="Original")
    if metric.startswith("mia"):
        ax.axhline(0.5, color="black", linewidth=0.5)
    ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
    ax.set_xticks(sorted(frame["forget_fraction"].dropna().unique()))
    ax.set(xlabel="forgotten (share of the training set)", ylabel=METRIC_LABELS.get(metric, metric.replace("_", " ")),
           title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return ax


# --- Tables over runs -------------------------------------------------------------------------------


def long_frame(runs: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (run, model) with the run's parameters and the model's scalar metrics."""
    rows = []
    for run in runs:
        config, models = run["config"], run["models"]
        retrain_time = models.get("retrain", {}).get("runtime_s")
        for name, metrics in models.items():
            if "error" in metrics:
                continue
            row = {key: config.get(key) for key in ("notebook", "dataset", "profile", "forget_fraction", "seed")}
            row["forget_classes"] = forgotten_classes(config.get("forget_classes"))
            row["model"] = name
            row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            if retrain_time:
                row["runtime_vs_retrain"] = metrics.get("runtime_s", math.nan) / retrain_time
            rows.append(row)
    return pd.DataFrame(rows)


def mean_std_table(frame: pd.DataFrame, columns: Mapping[str, str], by: Sequence[str] = ()) -> pd.DataFrame:
    """Rows (``by`` × model), cells "mean ± std [95 % interval]" over seeds (the mean alone for one seed), as
    the notebooks show them (:func:`nablatau.tables.summary_cell`): a fraction's interval clipped to [0, 1], a
    p-value as "median (min, max)"; :func:`nablatau.tables.seed_summary_note` says so for a caption."""
    keys = [*by, "model"]
    present = [c for c in columns if c in frame]
    grouped = frame.groupby(keys, sort=False, dropna=False)
    table = pd.DataFrame(index=grouped.size().index)
    for column in present:
        table[columns[column]] = [summary_cell(summarize(values.tolist(), column), column)
                                  for _, values in grouped[column]]
    table["seeds"] = grouped.size().values
    table = table.reset_index()
    table["model"] = table["model"].map(display_name)
    return table


#: Unicode the tables use, as LaTeX (the .tex tables compile with plain pdflatex and booktabs).
LATEX_SYMBOLS = {"∇τ": r"$\nabla\tau$", "±": r"$\pm$", "α₀": r"$\alpha_0$", "–": "--", "−": "$-$", "→": r"$\to$",
                 "≥": r"$\geq$", "≤": r"$\leq$", "·": r"$\cdot$"}
_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
#: Table columns shown under another title (markdown and LaTeX alike).
SETTING_TITLES = {"forget_fraction": "forgotten", "forget_classes": "forgotten classes"}


def latex_text(text: Any) -> str:
    r"""``text`` as LaTeX: special characters escaped, then the tables' Unicode symbols as math.

        >>> print(latex_text("∇τ: 0.512 ± 0.010 [95 % interval], forget_acc"))
        $\nabla\tau$: 0.512 $\pm$ 0.010 [95 \% interval], forget\_acc
    """
    escaped = re.sub(r"[\\&%$#_{}~^]", lambda match: _LATEX_SPECIALS[match.group()], str(text))
    for symbol, latex in LATEX_SYMBOLS.items():
        escaped = escaped.replace(symbol, latex)
    return escaped


def _for_reading(table: pd.DataFrame) -> pd.DataFrame:
    """Forget fractions as percentages and setting columns under their titles."""
    table = table.copy()
    if "forget_fraction" in table:
        table["forget_fraction"] = table["forget_fraction"].map(lambda f: f"{100 * f:g} %")
    return table.rename(columns=SETTING_TITLES)


def write_table(table: pd.DataFrame, path: Path, caption: str, notes: Sequence[str] = ()) -> list[Path]:
    """``path``.md (markdown) and ``path``.tex (a LaTeX ``table`` with booktabs rules), with the caption.

    ``notes`` (e.g. verdict sentences) follow the markdown table as a list; the LaTeX table has only the caption.
    """
    table = _for_reading(table)
    markdown = path.with_suffix(".md")
    listed = "".join(f"\n- {note}" for note in notes)
    # Cells are text already formatted: read as numbers, "0.520" would print as 0.52 and "1e-300" in other digits.
    text = table.to_markdown(index=False, disable_numparse=True)
    markdown.write_text(f"{caption}\n\n{text}\n{listed}{chr(10) if notes else ''}")
    latex = path.with_suffix(".tex")
    shown = table.map(latex_text).rename(columns=latex_text)
    latex.write_text(shown.to_latex(index=False, caption=latex_text(caption), escape=False))
    return [markdown, latex]


def save_figure(figure: plt.Figure, path: Path) -> list[Path]:
    """``path``.png and ``path``.pdf; the figure is closed.

    The PDF gets no creation date, so redrawing unchanged results rewrites identical files (no git noise).
    """
    paths = [path.with_suffix(".png"), path.with_suffix(".pdf")]
    for target in paths:
        figure.savefig(target, dpi=120, bbox_inches="tight",
                       metadata={"CreationDate": None} if target.suffix == ".pdf" else None)
    plt.close(figure)
    return paths


def write_sweep_figures(results_dir: str | os.PathLike, figures_dir: str | os.PathLike, *,
                        profile: str | None = None) -> list[Path]:
    """Write the figures and table of every sweep saved under ``results_dir``; returns the files written.

    Per (dataset, profile) found in ``<results_dir>/alpha_split_sweep/`` (only ``profile``'s when given):
    heatmaps and the rule-vs-best plot as PNG and PDF, and the table of
    :func:`~nablatau.sweep_figures.rule_summary` as :func:`~nablatau.sweep_figures.format_rule_summary` shows it
    (markdown with the verdicts of
    :func:`~nablatau.sweep_figures.rule_verdicts`, and LaTeX), named ``alpha_split_sweep-<dataset>-<profile>-*``.
    Reads saved results only; no sweep saved, no file.
    """
    frame = load_sweep(results_dir)
    if profile is not None:
        frame = frame[frame["profile"] == profile]
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for (dataset, profile), group in frame.groupby(["dataset", "profile"]):
        stem = figures_dir / f"{SWEEP_NOTEBOOK}-{dataset}-{profile}"
        for name, figure in (("heatmaps", plot_heatmaps(group)), ("rule_vs_best", plot_rule_vs_best(group))):
            written += save_figure(figure, stem.with_name(f"{stem.name}-{name}"))
        summary = rule_summary(group)
        caption = (f"∇τ: the rule's α₀ vs the best α₀ per forget fraction ({dataset}, profile {profile}); "
                   f"{group['seed'].nunique()} seed(s), {len(group)} cells. Best α₀: smallest mean "
                   "|loss-MIA − retrained model's loss-MIA| (against 0.5 where no retraining exists); a gap's "
                   f"95 % interval over seeds is {gap_clipping('mia_loss')}.")
        written += write_table(format_rule_summary(summary), stem.with_name(f"{stem.name}-rule_vs_best"), caption,
                               notes=rule_verdicts(summary))
    return written


# --- make figures -----------------------------------------------------------------------------------


class _Index:
    """Collects one profile's index entries: what each file is and which runs produced it.

    Saved as ``figures/<profile>/index.json``; :func:`write_index` builds ``figures/README.md`` from every
    profile's file, so regenerating one profile keeps the others' entries.
    """

    def __init__(self, figures_root: Path, profile: str) -> None:
        self.root, self.profile, self.entries, self.paths = figures_root, profile, [], []

    def add(self, paths: Sequence[Path], what: str, runs: Sequence[Mapping[str, Any]], notebook: str) -> None:
        self.paths += paths
        self.entries.append({
            "files": [p.relative_to(self.root).as_posix() for p in paths], "what": what, "notebook": notebook,
            "runs": [{"parameters": _parameters(run["config"]),
                      "results": Path(os.path.relpath(Path(run["path"]).resolve(), self.root.resolve())).as_posix()}
                     for run in runs]})

    def save(self) -> Path:
        path = self.root / self.profile / INDEX_FILE
        path.write_text(json.dumps({"profile": self.profile, "entries": self.entries}, indent=1) + "\n")
        return path


#: An index row lists at most this many results files; more (a sweep's cells) are shown as their folder.
MAX_LISTED_RUNS = 6
#: Each profile folder's index, from which figures/README.md is built.
INDEX_FILE = "index.json"
#: The order of the profile sections in figures/README.md (others follow, sorted).
PROFILE_ORDER = ("paper", "quick", "smoke")


def write_index(figures_root: str | Path) -> Path:
    """``figures/README.md``: one section per profile folder that has an index, linking every file and results file."""
    root = Path(figures_root)
    indexes = {path.parent.name: json.loads(path.read_text()) for path in root.glob(f"*/{INDEX_FILE}")}
    order = [p for p in PROFILE_ORDER if p in indexes] + sorted(set(indexes) - set(PROFILE_ORDER))
    lines = ["# Figures and tables", "",
             "Regenerated by `make figures` (`python -m nablatau.figures`) from the results files under `results/`, "
             "without training anything. One folder per profile; regenerating one profile leaves the others. Each "
             "row names the notebook behind it and the parameters and results file (`results/<notebook>/<run-id>.json`) "
             "of every run it draws on.", ""]
    lines += ["Profiles here: " + (", ".join(f"[`{p}`](#profile-{p})" for p in order) if order else "none yet") + ".", ""]
    for profile in order:
        lines += [f"## Profile {profile}", "", "| files | what | notebook | runs (parameters → results file) |",
                  "|---|---|---|---|"]
        for entry in indexes[profile]["entries"]:
            files = ", ".join(f"[{Path(f).name}]({f})" for f in entry["files"])
            runs = "; ".join(f"`{run['parameters']}` → [{Path(run['results']).name}]({run['results']})"
                             for run in entry["runs"])
            folders = sorted({Path(run["results"]).parent.as_posix() for run in entry["runs"]})
            if len(entry["runs"]) > MAX_LISTED_RUNS:  # a sweep: its cells' files, by folder
                runs = f"{len(entry['runs'])} results files in " + ", ".join(f"[{f}/]({f})" for f in folders)
            what = entry["what"].replace("|", r"\|")  # a bar inside a cell would end it
            lines.append(f"| {files} | {what} | `notebooks/{entry['notebook']}.ipynb` | {runs} |")
        lines.append("")
    path = root / "README.md"
    path.write_text("\n".join(lines))
    return path


def _parameters(config: Mapping[str, Any]) -> str:
    keys = ("dataset", "profile", "forget_fraction", "forget_classes", "seed")
    return ", ".join([*(f"{k}={config[k]}" for k in keys if config.get(k) is not None),
                      *(f"train_epochs={epochs}" for epochs, _ in shortened_trainings([config]))])


def _slug(*parts: Any) -> str:
    return "-".join(str(p).replace(",", "_").replace(".", "p") for p in parts if p is not None)


def _setting(config: Mapping[str, Any]) -> str:
    """What a run forgot, as the tables' rows name it: "forget 15 %" or "classes 0,1 forgotten"."""
    if config.get("forget_classes") is not None:
        return f"classes {forgotten_classes(config['forget_classes'])} forgotten"
    return f"forget {100 * config['forget_fraction']:g} %"


def _reference_problems(run: Mapping[str, Any]) -> list[str]:
    """Why a run's retrained references are not a sound gold standard (empty when they are)."""
    return list(run["models"].get("retrain", {}).get("reference_problems") or [])


def reference_caveats(runs: Iterable[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """What a table or figure over ``runs`` must say when a run's retrained references failed their soundness
    check (``models["retrain"]["reference_problems"]``, :func:`nablatau.references.reference_problems`), as the
    notebooks say it above every comparison (:func:`nablatau.runs.reference_report`).

    Returns:
        ``(caption, notes)``: a caption sentence naming the settings and seeds ("" when every reference is
        sound), and one note per unsound run with its problems.
    """
    def order(run: Mapping[str, Any]) -> tuple:  # the tables' row order: by setting, then seed
        config = run["config"]
        classes = forgotten_classes(config.get("forget_classes"))
        return config.get("forget_fraction") or 0, classes or "", config["seed"]

    unsound: dict[str, list[int]] = {}
    notes = []
    for run in sorted(runs, key=order):
        problems = _reference_problems(run)
        if problems:
            config = run["config"]
            unsound.setdefault(_setting(config), []).append(config["seed"])
            notes.append(f"UNSOUND REFERENCES, {_setting(config)}, seed {config['seed']}: {'; '.join(problems)}. "
                         "The comparisons with the retrained model there are not evidence either way.")
    if not unsound:
        return "", []
    where = "; ".join(f"{setting}, seed{'s' * (len(seeds) > 1)} {', '.join(map(str, sorted(seeds)))}"
                      for setting, seeds in unsound.items())
    return (f"UNSOUND REFERENCES ({where}): the retrained model failed its soundness check, so comparisons with "
            "it there are not evidence either way (the results files say why)"), notes


def _over_seeds_figures(runs: list[dict[str, Any]], notebook: str, out: Path, index: _Index, *,
                        curves: bool) -> None:
    """Per setting (data set, profile, forget fraction or classes), the figures the notebook shows over its
    seeds: the closest-to-retrain bars and, where methods record them, the curves with ± std bands."""
    for (dataset, profile, fraction, classes), group in by_setting(runs).items():
        seeds = [run["config"]["seed"] for run in group]
        models = {seed: measured(run["models"]) for seed, run in zip(seeds, group)}
        if len(set(seeds)) < len(seeds) or any("retrain" not in m for m in models.values()):
            continue  # a repeated seed (two runs of one setting) or a run without its reference: no ranking
        name = _slug(notebook, dataset, profile, fraction, classes, "seeds" + "_".join(map(str, seeds)))
        what = f"forget {fraction:.0%}" if fraction is not None else f"classes {classes} forgotten"
        title = f"{DATASET_NAMES.get(dataset, dataset)}, {what}, profile {profile}"
        unsound = [seed for seed, run in zip(seeds, group) if _reference_problems(run)]
        caveat = (f"\nUNSOUND REFERENCES (seed{'s' * (len(unsound) > 1)} {', '.join(map(str, unsound))}): "
                  "not evidence either way" if unsound else "")
        methods = {method for m in models.values() for method in m} - {"original", "retrain"}
        if len(methods) > 1:  # the quickstart runs ∇τ alone: nothing to rank
            index.add(save_figure(plot_gap_to_retrain(models, "mia_loss", title=title + caveat).figure,
                                  out / f"{name}-gap"),
                      "distance of each method's loss-MIA from the retrained model's, over the seeds (95 % "
                      f"interval {gap_clipping('mia_loss')}; tied with the closest in blue)" + caveat.replace("\n", "; "),
                      group, notebook)
        if curves and len(seeds) > 1:  # one seed: the per-run curves below are the same figure
            figure = plot_unlearning_curves(list(models.values()), title=f"{title}, seeds {seeds} (mean ± std)")
            index.add(save_figure(figure, out / f"{name}-curves"),
                      "loss-MIA and test accuracy over the epochs and the seeds, ∇τ vs finetuning (mean ± std)",
                      group, notebook)


def _removal_figures(runs: list[dict[str, Any]], notebook: str, columns: Mapping[str, str], out: Path,
                     index: _Index) -> None:
    frame = long_frame(runs)
    if frame.empty:
        return
    setting = "forget_classes" if notebook == "class_removal" else "forget_fraction"
    for (dataset, profile), group in frame.groupby(["dataset", "profile"]):
        in_group = [r for r in runs if (r["config"]["dataset"], r["config"]["profile"]) == (dataset, profile)]
        table = mean_std_table(group.sort_values(setting, kind="stable"), columns, by=[setting])
        what = "forget classes" if setting == "forget_classes" else "forget fraction"
        caption = (f"{notebook.replace('_', ' ')}: {dataset}, profile {profile}; one row per {what} and model "
                   f"({seed_summary_note(c for c in columns if c in group)})")
        shortened = shortened_trainings(run["config"] for run in in_group)
        if shortened:  # never pass a shortened run off as the profile's
            caption += "; SHORTENED TRAINING: " + ", ".join(
                f"the original and the retrained model trained {epochs} of the profile's {full} epochs"
                for epochs, full in shortened)
        unsound, notes = reference_caveats(in_group)
        caption += f"; {unsound}" if unsound else ""
        index.add(write_table(table, out / _slug(notebook, dataset, profile, "table"), caption, notes=notes),
                  "results table (markdown, LaTeX)", in_group, notebook)
        if setting == "forget_fraction" and group["forget_fraction"].nunique() > 1:
            for metric in ("mia_loss", "test_acc"):
                ax = plot_across_fractions(group, metric, title=f"{dataset}, profile {profile}")
                index.add(save_figure(ax.figure, out / _slug(notebook, dataset, profile, metric, "vs-fraction")),
                          f"{metric} of every method against the forget fraction", in_group, notebook)
    _over_seeds_figures(runs, notebook, out, index, curves=True)
    for run in runs:
        config, models = run["config"], run["models"]
        name = _slug(notebook, config["dataset"], config["profile"], config.get("forget_fraction"),
                     forgotten_classes(config.get("forget_classes")), f"seed{config['seed']}")
        title = _parameters(config)
        figure = plot_unlearning_curves(models, title=f"{notebook.replace('_', ' ')}: {title}")
        index.add(save_figure(figure, out / f"{name}-curves"),
                  "loss-MIA and test accuracy over the epochs, ∇τ vs finetuning (retrain dashed)", [run], notebook)
        nonmembers = "test_forget_class" if config.get("forget_classes") else "test"
        if any("sample_losses" in m for m in models.values()):
            index.add(save_figure(plot_loss_histograms(models, title=f"forget vs {nonmembers}: {title}"),
                                  out / f"{name}-loss-histograms"),
                      f"loss histograms, forget vs {nonmembers}, before (original) and after (∇τ), and retrain",
                      [run], notebook)


def _text_figures(runs: list[dict[str, Any]], out: Path, index: _Index) -> None:
    frame = long_frame(runs)
    if frame.empty:
        return
    for profile, group in frame.groupby("profile"):
        in_group = [r for r in runs if r["config"]["profile"] == profile]
        table = mean_std_table(group.sort_values("forget_fraction", kind="stable"), TEXT_COLUMNS,
                               by=["forget_fraction"])
        caption = (f"text removal: GoEmotions, profile {profile}; one row per forget fraction and model "
                   f"({seed_summary_note(c for c in TEXT_COLUMNS if c in group)})")
        unsound, notes = reference_caveats(in_group)
        caption += f"; {unsound}" if unsound else ""
        index.add(write_table(table, out / _slug("text_removal", "goemotions", profile, "table"), caption,
                              notes=notes),
                  "results table (markdown, LaTeX)", in_group, "text_removal")
    _over_seeds_figures(runs, "text_removal", out, index, curves=False)


def _training_figures(runs: list[dict[str, Any]], out: Path, index: _Index) -> None:
    for run in runs:
        config = run["config"]
        history = pd.DataFrame(run["models"]["original"].get("history", []))
        if history.empty:
            continue
        ax = sns.lineplot(data=history, x="epoch", y="loss", marker="o", ax=plt.subplots(figsize=(6, 4))[1])
        ax.set(title=f"original model, {_parameters(config)}", ylabel="training loss")
        index.add(save_figure(ax.figure, out / _slug("train_original", config["dataset"], config["profile"],
                                                     f"seed{config['seed']}", "loss")),
                  "training loss of the original model per epoch", [run], "train_original")


def profiles_in(results_dir: str | Path) -> list[str]:
    """The profiles of the results files under ``results_dir``."""
    found = {run_profile(load_results(path).get("config", {})) for path in Path(results_dir).glob("*/*.json")}
    return sorted(p for p in found if p)


def write_figures(results_dir: str | Path = "results", figures_dir: str | Path = "figures",
                  profile: str | None = None) -> list[Path]:
    """Every table and plot from the results under ``results_dir``, in one folder per profile.

    ``<figures_dir>/<profile>/`` is rebuilt from that profile's results (its earlier files removed first,
    so nothing stale stays); other profiles' folders are left as they are, and ``<figures_dir>/README.md``
    indexes every profile folder (:func:`write_index`). Returns the files written.

    Args:
        results_dir: the folder of ``<notebook>/<run-id>.json`` files.
        figures_dir: the output root.
        profile: only this profile (default: every profile that has results).
    """
    results_dir, root = Path(results_dir), Path(figures_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"no results folder at {results_dir.resolve()}; run `make reproduce` first "
                                "(or pass --results)")
    written = []
    for name in [profile] if profile else profiles_in(results_dir):
        out = root / name
        if out.is_dir():
            for old in out.iterdir():
                if old.is_file() and old.suffix in GENERATED_SUFFIXES:
                    old.unlink()
        out.mkdir(parents=True, exist_ok=True)
        index = _Index(root, name)
        for notebook, columns in (("subset_removal", IMAGE_COLUMNS), ("class_removal", CLASS_COLUMNS),
                                  ("quickstart", IMAGE_COLUMNS)):
            _removal_figures(load_runs(results_dir, notebook, name), notebook, columns, out, index)
        _text_figures(load_runs(results_dir, "text_removal", name), out, index)
        _training_figures(load_runs(results_dir, "train_original", name), out, index)
        sweep_runs = load_runs(results_dir, SWEEP_NOTEBOOK, name)
        if sweep_runs:
            index.add(write_sweep_figures(results_dir, out, profile=name),
                      "α₀ × fraction sweep: heatmaps and the rule's α₀ vs the best α₀", sweep_runs, SWEEP_NOTEBOOK)
        written += [*index.paths, index.save()]
    return [*written, write_index(root)]


#: What :func:`write_figures` writes into a profile folder, and removes from it before writing it again.
GENERATED_SUFFIXES = (".png", ".pdf", ".md", ".tex", ".json")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="folder of results/<notebook>/<run-id>.json")
    parser.add_argument("--figures", default="figures", help="output folder")
    parser.add_argument("--profile", default=None,
                        help="rebuild only this profile's folder (default: every profile with results)")
    args = parser.parse_args(argv)
    # Files only. The backend is chosen here, by the command, never at import: a notebook that imports
    # this module keeps its inline backend and shows its figures.
    matplotlib.use("Agg")
    written = write_figures(args.results, args.figures, args.profile)
    print(f"wrote {len(written)} files under {args.figures}/ (index: {Path(args.figures) / 'README.md'})")


if __name__ == "__main__":
    main()
