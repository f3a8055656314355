"""Did ∇τ forget? The paper's claims judged against retraining's own spread, from a comparison's numbers.

Every comparison holds two or more retrained references trained with different seeds on the same retain set
(:func:`nablatau.spec.reference_names`). The first, ``"retrain"``, is the gold standard; the second lands
somewhere too, and how far is the distance an *exact* unlearner already has. So on a metric M:

- a model's **distance** to retraining is |M(model) − M(retrain)|;
- **retraining's spread** is the further references' distance to the first, |M(retrain_k) − M(retrain)|;
- the model's **excess** is its distance minus retraining's spread: 0 or below is "as close as a second
  retraining". Comparisons are paired: the same seed, forget set and references for every model.

The privacy verdict is judged on the two attacks computed from each model's per-sample losses
(:func:`nablatau.audits.loss_attacks`): the population attack's AUC (the paper's kind) and the per-example
attack calibrated by the references (a reference scored leave-one-out). Their sampling error comes from a
bootstrap over samples: forget and held-out samples are drawn with replacement, the same draws for every model
of a seed (paired), independently per seed, and the excess averaged over seeds. The interval is the basic
(reverse-percentile) bootstrap's: an absolute difference near 0 is biased upwards in every draw, which the
plain percentiles would carry into the interval. A model is **indistinguishable from retraining** on a metric
when its excess's 95 % interval reaches 0 or below.

    >>> excess_sentence("calibrated_auc", {"mean": 0.12, "low": 0.08, "high": 0.16})
    'farther from retraining than a second retraining by +0.120 [+0.080, +0.160]'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .audits import calibrated_scores
from .references import reference_index
from .tables import CONFIDENCE, closest_over_seeds, interval, round_accuracy

#: The metrics privacy is judged on, strongest attack first; both computed from per-sample losses.
PRIVACY_METRICS = ("calibrated_auc", "population_auc")
METRIC_NAMES = {"calibrated_auc": "calibrated attack AUC", "population_auc": "population attack AUC"}

#: Bootstrap draws over samples; 400 put the 2.5 % and 97.5 % percentiles within about 0.005 of their limit here.
BOOTSTRAP_DRAWS = 400
BOOTSTRAP_SEED = 0

Runs = Mapping[int, Mapping[str, Mapping[str, Any]]]


def references_of(models: Mapping[str, Any]) -> list[str]:
    """The retrained references among ``models``, the gold standard first."""
    return sorted((name for name in models if reference_index(name) is not None), key=reference_index)


def retraining_spread(runs: Runs, metric: str) -> list[float]:
    """|metric(retrain_k) − metric(retrain)| of every further reference of every seed that has ``metric``."""
    return [abs(models[r][metric] - models["retrain"][metric]) for models in runs.values()
            for r in references_of(models)[1:] if metric in models[r]]


def _auc_rows(members: np.ndarray, nonmembers: np.ndarray) -> np.ndarray:
    """ROC AUC of each row's members against its non-members (Mann–Whitney, ties averaged)."""
    ranks = rankdata(np.concatenate([members, nonmembers], axis=1), axis=1)
    n1, n0 = members.shape[1], nonmembers.shape[1]
    return (ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _seed_draws(models: Mapping[str, Mapping[str, Any]], names: Sequence[str], metric: str,
                rng: np.random.Generator, draws: int) -> dict[str, np.ndarray]:
    """Bootstrap draws of ``metric`` for every model of one seed; the same sample draws for every model."""
    references = references_of(models)
    losses = {name: models[name]["sample_losses"] for name in names}
    members, nonmembers = list(losses[names[0]])
    n1, n0 = len(losses[names[0]][members]), len(losses[names[0]][nonmembers])
    forget_index, heldout_index = rng.integers(0, n1, (draws, n1)), rng.integers(0, n0, (draws, n0))
    result = {}
    for name in names:
        forget, heldout = np.asarray(losses[name][members]), np.asarray(losses[name][nonmembers])
        if metric == "population_auc":
            scores = (-forget, -heldout)  # a lower loss looks like a member
        else:
            calibrators = [models[r]["sample_losses"] for r in references if r != name]
            scores = calibrated_scores(forget, heldout, [c[members] for c in calibrators],
                                       [c[nonmembers] for c in calibrators])
        result[name] = _auc_rows(scores[0][forget_index], scores[1][heldout_index])
    return result


def excess_over_retraining(runs: Runs, metric: str, *, draws: int = BOOTSTRAP_DRAWS,
                           confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED) -> dict[str, dict[str, Any]]:
    """Every model's excess distance to retraining on ``metric`` over the seeds, with its bootstrap interval.

    Args:
        runs: ``{seed: {model: metrics}}``; each model needs ``metric`` and ``sample_losses``, each seed at least
            two references.

    Returns:
        ``{model: {"mean", "low", "high", "per_seed", "draws"}}`` for every model but the first reference:
        ``mean`` the excess averaged over seeds, ``low``/``high`` its ``confidence`` interval, ``per_seed``
        ``{seed: (excess, low, high)}``, ``draws`` the bootstrap draws of the mean (for paired differences).
        The further references' own excess is their distance minus the others' spread (with two references, 0
        by definition: it is the yardstick). Empty when a seed lacks what is needed.
    """
    rng = np.random.default_rng(seed)
    per_seed: dict[str, dict[int, tuple[float, np.ndarray]]] = {}
    for run_seed, models in runs.items():
        references = references_of(models)
        names = [name for name, m in models.items() if "sample_losses" in m and metric in m]
        if len(references) < 2 or not set(references) <= set(names):
            return {}
        bootstrap = _seed_draws(models, names, metric, rng, draws)
        first, further = references[0], references[1:]

        def spread(values: Mapping[str, Any], without: str | None = None) -> Any:
            return np.mean([abs(values[r] - values[first]) for r in further if r != without], axis=0)

        point = {name: models[name][metric] for name in names}
        for name in names:
            if name == first:
                continue
            without = name if name in further and len(further) > 1 else None
            if name in further and without is None:
                excess, excess_draws = 0.0, np.zeros(draws)
            else:
                excess = abs(point[name] - point[first]) - spread(point, without)
                excess_draws = np.abs(bootstrap[name] - bootstrap[first]) - spread(bootstrap, without)
            per_seed.setdefault(name, {})[run_seed] = (float(excess), excess_draws)
    result = {}
    for name, seeds in per_seed.items():
        if len(seeds) != len(runs):
            continue
        mean = float(np.mean([e for e, _ in seeds.values()]))
        mean_draws = np.mean([d for _, d in seeds.values()], axis=0)
        result[name] = {"mean": mean, **dict(zip(("low", "high"), _basic(mean, mean_draws, confidence))),
                        "per_seed": {s: (e, *_basic(e, d, confidence)) for s, (e, d) in seeds.items()},
                        "draws": mean_draws}
    return result


def _basic(estimate: float, draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The basic bootstrap interval of ``estimate``: 2·estimate minus the draws' upper and lower percentiles."""
    tail = (1 - confidence) / 2 * 100
    return 2 * estimate - float(np.percentile(draws, 100 - tail)), 2 * estimate - float(np.percentile(draws, tail))


def excess_sentence(metric: str, excess: Mapping[str, Any]) -> str:
    """How far a model is from retraining on ``metric`` against retraining's own spread, in words."""
    span = f"{excess['mean']:+.3f} [{excess['low']:+.3f}, {excess['high']:+.3f}]"
    if excess["low"] <= 0:
        return f"indistinguishable from retraining (excess over a second retraining {span})"
    return f"farther from retraining than a second retraining by {span}"


def _paired(a: Mapping[str, Any], b: Mapping[str, Any], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Mean and interval of ``a``'s excess minus ``b``'s, on the same bootstrap draws."""
    difference = a["mean"] - b["mean"]
    return (difference, *_basic(difference, a["draws"] - b["draws"], confidence))


def excess_by_metric(runs: Runs) -> dict[str, dict[str, dict[str, Any]]]:
    """:func:`excess_over_retraining` on every metric of :data:`PRIVACY_METRICS`, computed once for a notebook."""
    return {metric: excess_over_retraining(runs, metric) for metric in PRIVACY_METRICS}


def privacy_verdict(runs: Runs, *, exclude: Sequence[str] = ("original",),
                    excess: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The privacy claim — ∇τ leaves the forget set as indistinguishable from held-out data as retraining does —
    judged on :data:`PRIVACY_METRICS` (see the module docstring for the criterion), one paragraph.

    Per metric, only the seeds whose original is farther from retraining than a second retraining (its excess's
    interval above 0: there is membership to remove) are judged. HELD: on every judged metric ∇τ is
    indistinguishable from retraining and closer than the original (paired). DID NOT HOLD: farther than a
    second retraining on some judged metric. INCONCLUSIVE: otherwise (∇τ indistinguishable from retraining
    and not separable from the original either). NOT JUDGED: no metric has a seed with membership to remove.
    Every metric's sentence names the closest method.
    """
    if not all("original" in models and "nablatau" in models for models in runs.values()):
        return "NOT JUDGED — privacy: ∇τ or the original is missing from a seed's run."
    excess = excess or excess_by_metric(runs)
    sentences, verdicts = [], []
    for metric in PRIVACY_METRICS:
        name = METRIC_NAMES[metric]
        everything = excess[metric]
        if "original" not in everything or "nablatau" not in everything:
            sentences.append(f"{name}: not measured (per-sample losses or a second reference missing).")
            continue
        leaking = [s for s, (_, low, _) in everything["original"]["per_seed"].items() if low > 0]
        quiet = sorted(set(runs) - set(leaking))
        if not leaking:
            sentences.append(f"{name}: NOT JUDGED — in no seed is the original farther from retraining than a "
                             "second retraining: there is no membership for this attack to remove.")
            continue
        judged = everything if not quiet else excess_over_retraining({s: runs[s] for s in leaking}, metric)
        own, original = judged["nablatau"], judged["original"]
        ranked = sorted((m for m in judged if m not in exclude and reference_index(m) is None),
                        key=lambda m: judged[m]["mean"])
        closest = ranked[0]
        text = (f"{name} over seed(s) {', '.join(map(str, leaking))}: ∇τ is {excess_sentence(metric, own)}; "
                f"the original is {excess_sentence(metric, original)}.")
        if quiet:
            text += (f" Seed(s) {', '.join(map(str, quiet))} not judged: their original is not farther from "
                     "retraining than a second retraining.")
        listing = ", ".join(f"{m} {judged[m]['mean']:+.3f}" for m in ranked)
        if closest == "nablatau":
            text += f" Closest of the methods (mean excess): ∇τ ({listing})."
        elif own["low"] <= 0:
            text += (f" Closest of the methods (mean excess): {closest} ({listing}); ∇τ is within retraining's own "
                     "spread too, so that order is within what a second retraining varies.")
        else:
            difference, low, high = _paired(own, judged[closest])
            separable = "farther" if low > 0 else "not separable from it"
            text += (f" Closest of the methods (mean excess): {closest} ({listing}); ∇τ minus {closest}, paired: "
                     f"{difference:+.3f} [{low:+.3f}, {high:+.3f}], {separable}.")
        closer, low, high = _paired(original, own)
        if own["low"] > 0:
            verdicts.append("DID NOT HOLD")
        elif low > 0:
            verdicts.append("HELD")
        else:
            verdicts.append("INCONCLUSIVE")
            text += (f" ∇τ is not separable from the original either (original minus ∇τ: {closer:+.3f} "
                     f"[{low:+.3f}, {high:+.3f}]): the samples cannot say whether it removed anything.")
        sentences.append(text)
    if not verdicts:
        verdict = "NOT JUDGED"
    elif "DID NOT HOLD" in verdicts:
        verdict = "DID NOT HOLD"
    elif all(v == "HELD" for v in verdicts):
        verdict = "HELD"
    else:
        verdict = "INCONCLUSIVE"
    return f"{verdict} — privacy (as indistinguishable as a second retraining): " + " ".join(sentences)


def utility_verdict(runs: Runs, *, max_test_gap: float = 0.05, confidence: float = CONFIDENCE) -> str:
    """The utility claim: ∇τ's test accuracy within ``max_test_gap`` of the retrained model's (paired over seeds:
    HELD when the whole interval of the per-seed difference lies within the band, DID NOT HOLD when entirely
    outside, else INCONCLUSIVE; one seed is judged on its value), beside retraining's own spread."""
    differences = [models["nablatau"]["test_acc"] - models["retrain"]["test_acc"] for models in runs.values()]
    mean, _, low, high = interval(differences, confidence)
    if math.isnan(low):
        low = high = mean
    low, high = round_accuracy(low), round_accuracy(high)
    if -max_test_gap <= low and high <= max_test_gap:
        verdict = "HELD"
    elif high < -max_test_gap or low > max_test_gap:
        verdict = "DID NOT HOLD"
    else:
        verdict = "INCONCLUSIVE"
    spread = retraining_spread(runs, "test_acc")
    own = f"; a second retraining differs from the first by {np.mean(spread):.3f} on average" if spread else ""
    band = f" [{low:+.3f}, {high:+.3f}]" if len(differences) > 1 else ""
    return (f"{verdict} — utility: ∇τ's test accuracy minus the retrained model's is {mean:+.3f}{band} over "
            f"{len(differences)} seed(s){own}; the claim is that it stays within ±{max_test_gap}.")


def cost_verdict(runs: Runs) -> str:
    """The cost claim: ∇τ takes less time than retraining in every seed."""
    ratios = [models["nablatau"]["runtime_s"] / models["retrain"]["runtime_s"] for models in runs.values()]
    as_text = (lambda ratio: f"{ratio:.0%}") if max(ratios) < 2 else (lambda ratio: f"{ratio:.1f}×")
    low, high = as_text(min(ratios)), as_text(max(ratios))
    took = low if low == high else f"{low}–{high}"
    return (f"{'HELD' if max(ratios) < 1 else 'DID NOT HOLD'} — cost: ∇τ took {took} "
            f"{'of ' if max(ratios) < 2 else ''}retraining's time over {len(ratios)} seed(s).")


def claims_over_seeds(runs: Runs, *, max_test_gap: float = 0.05, exclude: Sequence[str] = ("original",),
                      excess: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """The paper's three claims about ∇τ, each a verdict and its numbers: privacy (:func:`privacy_verdict`),
    utility (:func:`utility_verdict`) and cost (:func:`cost_verdict`).

    Where a seed's references failed their soundness check (``reference_problems`` of its ``retrain``,
    :func:`nablatau.runner.reference_problems`), privacy and utility, which compare with them, are
    ``NOT JUDGED``: their numbers are shown, but they are not evidence either way. Cost still is: the
    retraining took that time whatever it produced.
    """
    if not runs or any("nablatau" not in models or "retrain" not in models for models in runs.values()):
        return ["∇τ or the retrained model is missing from a seed's run: no claim can be judged."]
    unsound = sorted(seed for seed, models in runs.items() if models["retrain"].get("reference_problems"))
    claims = [privacy_verdict(runs, exclude=exclude, excess=excess), utility_verdict(runs, max_test_gap=max_test_gap)]
    if unsound:
        withheld = (f"NOT JUDGED (the retrained references of seed{'s' * (len(unsound) > 1)} "
                    f"{', '.join(map(str, unsound))} failed their soundness check: not evidence either way)")
        claims = [f"{withheld} — {claim.split(' — ', 1)[1]}" for claim in claims]
    return [*claims, cost_verdict(runs)]


def paper_metric_report(runs: Runs) -> str:
    """The paper's loss-MIA ranking (:func:`nablatau.tables.closest_over_seeds`) with retraining's own spread on
    it: how far a second retraining's loss-MIA lands from the first's."""
    _, sentence = closest_over_seeds(runs, "mia_loss")
    spread = retraining_spread(runs, "mia_loss")
    if spread:
        sentence += (f" Retraining's own spread on it: a second retraining's loss-MIA lies {np.mean(spread):.3f} "
                     "from the first's (mean over seeds).")
    return sentence


def conclusions(runs: Runs, *, exclude: Sequence[str] = ("original",), max_test_gap: float = 0.05) -> str:
    """The closing paragraph of a notebook, from its own numbers: the claims' verdicts, then where ∇τ is weak."""
    excess = excess_by_metric(runs)
    claims = claims_over_seeds(runs, exclude=exclude, max_test_gap=max_test_gap, excess=excess)
    held = [claim.split(" — ")[1].split(":")[0].split(" (")[0] for claim in claims if claim.startswith("HELD")]
    failed = [claim.split(" — ")[1].split(":")[0].split(" (")[0] for claim in claims if claim.startswith("DID NOT")]
    open_ = [claim.split(" — ")[1].split(":")[0].split(" (")[0] for claim in claims
             if claim.startswith(("INCONCLUSIVE", "NOT JUDGED"))]
    lines = [f"Over {len(runs)} seed(s) ({', '.join(map(str, runs))}): held: {', '.join(held) or 'none'}; "
             f"did not hold: {', '.join(failed) or 'none'}; inconclusive or not judged: {', '.join(open_) or 'none'}.", ""]
    lines += claims
    weak = weaknesses(runs, exclude=exclude, excess=excess)
    if weak:
        lines += ["", "Where ∇τ is weak here: " + " ".join(weak)]
    return "\n".join(lines)


def weaknesses(runs: Runs, *, exclude: Sequence[str] = ("original",),
               excess: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Sentences on where ∇τ trails, from the numbers: attacks on which it is farther from retraining than a
    second retraining (with the methods significantly closer, paired), loss-MIA that drifted back, and forget sets it leaves fitted (forget
    accuracy above the retrained model's by more than 5 points beyond retraining's own spread). An attack on
    which the original is itself as close as a second retraining (nothing to remove) says nothing and is skipped."""
    weak, by_metric = [], excess or excess_by_metric(runs)
    for metric in PRIVACY_METRICS:
        excess = by_metric[metric]
        if "nablatau" not in excess or "original" not in excess or excess["original"]["low"] <= 0:
            continue
        ranked = [m for m in sorted(excess, key=lambda m: excess[m]["mean"])
                  if m not in exclude and reference_index(m) is None]
        # Closer than a model that is itself as close as a second retraining means nothing: only where ∇τ is not.
        ahead = [m for m in ranked[:ranked.index("nablatau")] if _paired(excess["nablatau"], excess[m])[1] > 0
                 and excess["nablatau"]["low"] > 0]
        if excess["nablatau"]["low"] > 0:
            weak.append(f"On the {METRIC_NAMES[metric]} it is farther from retraining than a second retraining "
                        f"({excess['nablatau']['mean']:+.3f})" + (f", behind {', '.join(ahead)}." if ahead else "."))
    accuracy = np.mean([models["nablatau"]["test_acc"] - models["retrain"]["test_acc"] for models in runs.values()])
    spread = retraining_spread(runs, "test_acc")
    if spread and accuracy < -(np.mean(spread) + 0.05):
        weak.append(f"It costs test accuracy: {accuracy:+.3f} against the retrained model, where a second retraining "
                    f"differs by {np.mean(spread):.3f}.")
    drift = _drift(runs)
    if drift:
        weak.append(drift)
    gaps = [models["nablatau"]["forget_acc"] - models["retrain"]["forget_acc"] for models in runs.values()
            if "forget_acc" in models["nablatau"]]
    spread = retraining_spread(runs, "forget_acc")
    if gaps and spread and np.mean(gaps) > np.mean(spread) + 0.05:
        weak.append(f"It leaves the forget set fitted: its forget accuracy is {np.mean(gaps):+.3f} above the "
                    f"retrained model's, where a second retraining differs by {np.mean(spread):.3f}.")
    return weak


def _drift(runs: Runs) -> str | None:
    """A sentence when ∇τ's loss-MIA came closer to the retrained model's during its epochs than where it ended,
    by more than retraining's own spread on loss-MIA and more than the attack's own noise (its standard deviation
    over cross-validation splits, ``mia_loss_std``), mean over seeds of the tracked epochs (:mod:`nablatau.runner`
    curves), saying on which side of retraining's it ends; None otherwise or without curves."""
    curves = [pd.DataFrame(models["nablatau"].get("history") or []) for models in runs.values()]
    if not all("mia_loss" in curve for curve in curves):
        return None
    targets = [models["retrain"]["mia_loss"] for models in runs.values()]
    gaps = pd.concat([(curve.set_index("epoch")["mia_loss"] - target).abs() for curve, target in zip(curves, targets)],
                     axis=1).dropna().mean(axis=1)
    spread = retraining_spread(runs, "mia_loss")
    noise = np.mean([models["nablatau"].get("mia_loss_std", 0.0) for models in runs.values()])
    if gaps.empty or not spread or gaps.iloc[-1] - gaps.min() <= max(np.mean(spread), noise):
        return None
    text = (f"Its loss-MIA came within {gaps.min():.3f} of the retrained model's at epoch {int(gaps.idxmin()) + 1} of "
            f"{int(gaps.index[-1]) + 1} and ends {gaps.iloc[-1]:.3f} from it, more than retraining's own spread on it "
            f"({np.mean(spread):.3f}) and the attack's noise ({noise:.3f}): ")
    # Which side of retraining's loss-MIA it ends on tells two readings apart: back towards the original's (the
    # attack finds the forget set member-like again) or past retraining's, away from the original's, which says the
    # attack's score moved too far, not that the forget losses did: on a small forget set that can be its noise.
    past = [seed for (seed, models), curve, target in zip(runs.items(), curves, targets)
            if np.sign(curve["mia_loss"].iloc[-1] - target) * np.sign(models["original"]["mia_loss"] - target) < 0]
    back = [seed for seed in runs if seed not in past]
    undo, overshoot = "its later epochs undo part of the forgetting", "its later epochs push it past retraining's"
    if not past:
        return text + undo + "."
    if not back:
        return text + overshoot + ", to the side away from the original's."
    return (text + f"in seed(s) {', '.join(map(str, back))} {undo}; in seed(s) {', '.join(map(str, past))} "
            f"{overshoot}, to the side away from the original's.")


def excess_table(runs: Runs, excess: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Per model (the first reference aside), its excess distance to retraining on each of
    :data:`PRIVACY_METRICS` as "mean [95 % interval]" over the seeds: 0 or below = as close as a second retraining."""
    excess = excess or excess_by_metric(runs)
    names = list(dict.fromkeys(name for metric in PRIVACY_METRICS for name in excess[metric]))
    rows = {name: {METRIC_NAMES[metric]: (f"{excess[metric][name]['mean']:+.3f} [{excess[metric][name]['low']:+.3f}, "
                                          f"{excess[metric][name]['high']:+.3f}]" if name in excess[metric] else "–")
                   for metric in PRIVACY_METRICS} for name in names}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("excess over a second retraining")
