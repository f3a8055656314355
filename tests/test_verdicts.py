"""The verdicts: every model scored by both loss attacks from its per-sample losses, and the paper's claims judged
against retraining's own spread (synthetic losses: numpy only, the same numbers on every processor)."""

import re

import numpy as np

from nablatau.runner import score_attacks
from nablatau.verdicts import (claims_over_seeds, conclusions, excess_over_retraining, paper_metric_report,
                               privacy_verdict, utility_verdict)

N_FORGET, N_HELDOUT = 300, 1000


def _comparison(seed, forget_scale, *, original_scale=0.05, extra=None):
    """One seed's models: each sample has a difficulty shared by every model (hard samples have high losses under
    any model), times per-model noise; a model that saw the forget set fits it ``scale`` times as well."""
    rng = np.random.default_rng(seed)
    forget_difficulty, heldout_difficulty = rng.gamma(2, 1, N_FORGET), rng.gamma(2, 1, N_HELDOUT)

    def model(scale):
        return {"forget": list(forget_difficulty * scale * np.exp(rng.normal(0, 0.3, N_FORGET))),
                "test": list(heldout_difficulty * np.exp(rng.normal(0, 0.3, N_HELDOUT)))}

    scales = {"original": original_scale, "retrain": 1.0, "retrain_2": 1.0, "nablatau": forget_scale,
              "finetune": 0.3, **(extra or {})}
    models = {name: {"sample_losses": model(scale), "test_acc": 0.5, "forget_acc": 0.5, "mia_loss": 0.5,
                     "runtime_s": 100.0 if name == "retrain" else 10.0} for name, scale in scales.items()}
    score_attacks(models, ["retrain", "retrain_2"])
    return models


def _runs(forget_scale, **kwargs):
    return {seed: _comparison(seed, forget_scale, **kwargs) for seed in (1, 2, 3)}


def test_every_model_is_scored_and_a_reference_by_the_other_references_only():
    models = _comparison(1, 1.0)
    assert models["retrain"]["calibrated_by"] == ["retrain_2"] and models["retrain_2"]["calibrated_by"] == ["retrain"]
    assert models["nablatau"]["calibrated_by"] == ["retrain", "retrain_2"]
    for entry in models.values():
        assert {"population_auc", "calibrated_auc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr"} <= set(entry)
    # Scoring again (a resumed file is rescored after every model) gives the same numbers.
    again = {name: {key: value for key, value in entry.items()} for name, entry in models.items()}
    score_attacks(again, ["retrain", "retrain_2"])
    assert again == models
    # Memorised forget samples: the calibrated attack finds them; a retraining sits near chance.
    assert models["original"]["calibrated_auc"] > 0.95 and abs(models["retrain"]["calibrated_auc"] - 0.5) < 0.06


def test_a_model_identical_to_the_second_reference_has_no_excess():
    runs = _runs(1.0)
    for models in runs.values():
        models["copy"] = {key: value for key, value in models["retrain_2"].items()}
    excess = excess_over_retraining(runs, "population_auc")
    assert excess["copy"]["mean"] == 0 and excess["retrain_2"]["mean"] == 0  # the yardstick itself
    assert excess["copy"]["low"] <= 0 <= excess["copy"]["high"]


def test_a_model_that_forgot_like_a_retraining_holds_privacy_and_one_that_did_not_fails():
    privacy = privacy_verdict(_runs(1.0))  # ∇τ's losses drawn as a third retraining's
    assert privacy.startswith("HELD — privacy") and "∇τ is indistinguishable from retraining" in privacy
    assert "the original is farther from retraining than a second retraining" in privacy
    failed = _runs(0.6)  # ∇τ still fits the forget set better than retraining does
    privacy = privacy_verdict(failed)
    assert privacy.startswith("DID NOT HOLD — privacy") and "∇τ is farther from retraining" in privacy
    # Another method that did forget is named the closest, and ∇τ's paired difference to it is significant.
    runs = {seed: _comparison(seed, 0.6, extra={"ssd": 1.0}) for seed in (1, 2, 3)}
    privacy = privacy_verdict(runs)
    assert "Closest of the methods (mean excess): ssd" in privacy
    assert re.search(r"∇τ minus ssd, paired: \+0\.\d+ \[\+0\.\d+, \+0\.\d+\], farther", privacy), privacy
    text = conclusions(runs)
    assert "did not hold: privacy" in text and "Where ∇τ is weak here" in text and "behind ssd" in text


def test_a_seed_whose_original_leaks_nothing_is_not_judged():
    runs = _runs(1.0)
    runs[2] = _comparison(2, 1.0, original_scale=1.0)  # the original fits its forget set as a retraining does
    privacy = privacy_verdict(runs)
    assert "over seed(s) 1, 3" in privacy and "Seed(s) 2 not judged" in privacy
    quiet = {seed: _comparison(seed, 1.0, original_scale=1.0) for seed in (1, 2)}
    privacy = privacy_verdict(quiet)
    assert privacy.startswith("NOT JUDGED — privacy") and "no membership for this attack to remove" in privacy


def test_unsound_references_withhold_privacy_and_utility_but_not_cost():
    runs = _runs(1.0)
    assert [claim.split(" — ")[0] for claim in claims_over_seeds(runs)] == ["HELD", "HELD", "HELD"]
    runs[2]["retrain"]["reference_problems"] = ["retrain (test accuracy 0.497) and retrain_2 (0.637) differ"]
    privacy, utility, cost = claims_over_seeds(runs)
    withheld = "NOT JUDGED (the retrained references of seed 2 failed their soundness check: not evidence either way)"
    assert privacy.startswith(withheld + " — privacy") and utility.startswith(withheld + " — utility")
    assert cost.startswith("HELD — cost")  # the retraining took that time whatever it produced


def test_utility_counts_an_exact_five_point_gap_as_within_it_and_states_retrainings_spread():
    # float32 accuracies, as metrics.accuracy stores them: 170/400 and 150/400 differ by exactly 0.05, but the
    # stored numbers differ by 0.05000001.
    runs = {1: {"retrain": {"test_acc": 0.42500001192092896}, "retrain_2": {"test_acc": 0.41},
                "nablatau": {"test_acc": 0.375}}}
    assert utility_verdict(runs).startswith("HELD — utility")
    assert "a second retraining differs from the first by 0.015" in utility_verdict(runs)
    runs[1]["nablatau"]["test_acc"] = 0.3725  # 149/400: one comment further is outside
    assert utility_verdict(runs).startswith("DID NOT HOLD — utility")


def test_the_paper_metric_report_adds_retrainings_spread_on_loss_mia():
    runs = _runs(1.0)
    for seed, models in runs.items():
        models["retrain_2"]["mia_loss"] = 0.53
        models["nablatau"]["mia_loss"] = 0.52
    report = paper_metric_report(runs)
    assert "a second retraining's loss-MIA lies 0.030 from the first's" in report
    assert "retrain_2" not in report.split("Retraining's own spread")[0]  # a reference is never ranked


def test_a_loss_mia_that_drifts_back_over_the_epochs_is_named_a_weakness():
    runs = _runs(1.0)
    for models in runs.values():
        models["original"]["mia_loss"], models["retrain"]["mia_loss"], models["retrain_2"]["mia_loss"] = 0.8, 0.50, 0.52
        models["nablatau"]["history"] = [{"epoch": e, "mia_loss": m} for e, m in enumerate((0.7, 0.52, 0.6, 0.68))]
    text = conclusions(runs)
    assert "came within 0.020 of the retrained model's at epoch 2 of 4 and ends 0.180 from it" in text
    assert "its later epochs undo part of the forgetting." in text  # 0.68 lies on the original's side of 0.50
    # Ending as far on the other side of retraining is a drift too, but not back towards the original.
    runs[2]["nablatau"]["history"][-1]["mia_loss"] = 0.32
    text = conclusions(runs)
    assert "ends 0.180 from it" in text
    assert "in seed(s) 1, 3 its later epochs undo part of the forgetting; in seed(s) 2 its later epochs push it " \
           "past retraining's, to the side away from the original's." in text, text
    for models in runs.values():
        models["nablatau"]["history"][-1]["mia_loss"] = 0.32
    assert "0.180 from it, more than retraining's own spread on it (0.020) and the attack's noise (0.000): its later " \
           "epochs push it past retraining's, to the side away from the original's." in conclusions(runs)
    for models in runs.values():
        models["nablatau"]["history"][-1]["mia_loss"] = 0.53  # ends within retraining's spread of its best
    assert "came within" not in conclusions(runs)


def test_a_test_accuracy_lost_beyond_retrainings_spread_is_named_a_weakness():
    runs = _runs(1.0)
    assert "costs test accuracy" not in conclusions(runs)  # every model at 0.5
    for models in runs.values():
        models["retrain_2"]["test_acc"], models["nablatau"]["test_acc"] = 0.51, 0.42
    assert "It costs test accuracy: -0.080 against the retrained model, where a second retraining differs by 0.010" \
        in conclusions(runs)
