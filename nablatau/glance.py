"""The README's "results at a glance": one row per experiment setting, from the results files, between markers.

``make figures`` runs ``python -m nablatau.glance`` after drawing the figures, so the README's headline table and
figure are rebuilt from the committed results every time and never go stale. Each row pools a setting's seeds
(same notebook, data set, profile and forget set) and shows what the notebooks' verdicts
(:func:`nablatau.verdicts.claims_over_seeds`) say about the paper's three claims, with the numbers behind them.
Results files written before every comparison had two retrained references cannot be judged by those verdicts and
are left out, and the table says how many were.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .results import by_setting, load_runs, measured
from .verdicts import claims_over_seeds

START, END = "<!-- results:start -->", "<!-- results:end -->"

#: The notebooks whose comparisons the table summarises, in the order of the paper's tables.
NOTEBOOKS = ("subset_removal", "class_removal", "text_removal")

#: The figure shown under the table: the first that ``make figures`` drew, in this order of preference.
FIGURES = ("{profile}/subset_removal-cifar10-{profile}-mia_loss-vs-fraction.png",
           "{profile}/subset_removal-cifar10-{profile}-0p15-seeds1-gap.png")


def _judgeable(models: Mapping[str, Mapping[str, Any]]) -> bool:
    # The verdicts need a second retrained reference and every model's per-sample losses.
    return "retrain_2" in models and all("sample_losses" in m for m in measured(models).values())


def settings(results_dir: str | Path, profile: str) -> tuple[dict[tuple, dict[int, dict]], int]:
    """``{setting: {seed: measured models}}`` for ``profile``'s comparisons, in :data:`NOTEBOOKS` order, and how
    many files were left out."""
    grouped: dict[tuple, dict[int, dict]] = {}
    left_out = 0
    for notebook in NOTEBOOKS:
        runs = load_runs(results_dir, notebook, profile)
        judged = [run for run in runs if _judgeable(run["models"])]
        left_out += len(runs) - len(judged)
        for key, group in sorted(by_setting(judged).items(), key=lambda item: tuple(map(str, item[0]))):
            grouped[(notebook, *key)] = {run["config"]["seed"]: measured(run["models"]) for run in group}
    return grouped, left_out


def _what(key: tuple) -> str:
    notebook, dataset, _, fraction, classes = key
    if classes:
        return f"class {classes.replace(',', ', ')} ({dataset})"
    kind = "text" if notebook == "text_removal" else "subset"
    return f"{kind} {fraction:.0%} ({dataset})"


def _mean(runs: Mapping[int, Mapping[str, Any]], model: str, metric: str) -> float:
    return float(np.mean([models[model][metric] for models in runs.values()]))


def _verdict(claim: str) -> str:
    return claim.split(" — ", 1)[0].split(" (", 1)[0]


def glance_table(grouped: Mapping[tuple, Mapping[int, Mapping[str, Any]]]) -> str:
    """The markdown table: per setting the seeds, ∇τ's loss-MIA beside the original's and both references',
    its test accuracy beside retraining's, its time as a fraction of retraining's, and the three verdicts."""
    lines = ["| setting | seeds | loss-MIA: original → ∇τ (retrain, second retrain) | test acc: ∇τ (retrain) "
             "| ∇τ time / retrain | privacy | utility | cost |",
             "|:--|:--|:--|:--|--:|:--|:--|:--|"]
    for key, runs in grouped.items():
        claims = claims_over_seeds(runs)
        privacy, utility, cost = claims if len(claims) == 3 else ("missing models",) * 3
        ratio = np.mean([models["nablatau"]["runtime_s"] / models["retrain"]["runtime_s"] for models in runs.values()])
        lines.append(
            f"| {_what(key)} | {', '.join(map(str, runs))} "
            f"| {_mean(runs, 'original', 'mia_loss'):.3f} → **{_mean(runs, 'nablatau', 'mia_loss'):.3f}** "
            f"({_mean(runs, 'retrain', 'mia_loss'):.3f}, {_mean(runs, 'retrain_2', 'mia_loss'):.3f}) "
            f"| {_mean(runs, 'nablatau', 'test_acc'):.3f} ({_mean(runs, 'retrain', 'test_acc'):.3f}) "
            f"| {ratio:.2f} | {_verdict(privacy)} | {_verdict(utility)} | {_verdict(cost)} |")
    return "\n".join(lines)


def glance(results_dir: str | Path, figures_dir: str | Path, readme: str | Path, profile: str = "quick") -> str:
    """The text between the README's markers for ``profile``'s results."""
    grouped, left_out = settings(results_dir, profile)
    if not grouped:
        return (f"No {profile} results that the verdicts can judge are committed yet: run `make reproduce` "
                "(the executed notebooks in notebooks/executed/ show each experiment).")
    parts = [f"Profile `{profile}` (CIFAR-10 miniature and GoEmotions on a CPU; means over the seeds listed). "
             "loss-MIA is the paper's attack accuracy (0.5: forget samples look like unseen ones); the verdicts are "
             "the notebooks' (criteria in [docs/audit.md](docs/audit.md)).", "", glance_table(grouped)]
    if left_out:
        parts += ["", f"{left_out} older results file(s) without a second retrained reference are not shown."]
    readme_dir = Path(readme).resolve().parent
    for pattern in FIGURES:
        figure = Path(figures_dir, pattern.format(profile=profile))
        if figure.is_file():
            parts += ["", f"![{figure.stem}]({Path(os.path.relpath(figure.resolve(), readme_dir)).as_posix()})"]
            break
    return "\n".join(parts)


def update_readme(readme: str | Path, text: str) -> bool:
    """Replace what lies between :data:`START` and :data:`END` in ``readme`` by ``text``; whether it changed.

    Raises:
        ValueError: the README lacks the markers (or has them out of order).
    """
    path = Path(readme)
    content = path.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(content):
        raise ValueError(f"{path} has no {START} … {END} block; add the two markers where the results go")
    updated = pattern.sub(lambda _: f"{START}\n{text}\n{END}", content, count=1)
    path.write_text(updated)
    return updated != content


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nablatau.glance", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--figures", default="figures")
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args(argv)
    changed = update_readme(args.readme, glance(args.results, args.figures, args.readme, args.profile))
    print(f"{args.readme}: results at a glance {'updated' if changed else 'unchanged'}")


if __name__ == "__main__":
    main()
