"""What makes the evidence sound: the training loader, the gold-standard check, the retrain-referenced
metrics and the statistics over seeds (fast: synthetic data, tiny models)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nablatau.errors import ConfigError
from nablatau.metrics import compare_with_retrained, evaluate, kl_from_reference, label_prior_accuracy
from nablatau.mia import predict
from nablatau.references import agreement_problems, reference_problems
from nablatau.tables import (closest_over_seeds, closest_report, format_seed_table, interval,
                             seed_table)
from nablatau.train import TrainRecipe, train, training_loader


def _batch_sizes(loader):
    return [len(targets) for _, targets in loader]


def test_training_loader_never_yields_an_incomplete_batch_and_reshuffles_every_epoch():
    data = TensorDataset(torch.arange(42.0)[:, None], torch.arange(42))
    loader = training_loader(data, 8, generator=torch.Generator().manual_seed(0))
    assert _batch_sizes(loader) == [8] * 5 and len(loader) == 5
    seen = set()
    for _ in range(20):  # a different 2 are left out each epoch, so all 42 are trained on
        seen |= {int(t) for _, targets in loader for t in targets}
    assert seen == set(range(42))
    small = TensorDataset(torch.zeros(5, 1), torch.zeros(5, dtype=torch.long))
    assert _batch_sizes(training_loader(small, 8)) == [5]  # smaller than one batch: served whole


def _degenerate_case(extra):
    torch.manual_seed(0)
    inputs, weights = torch.randn(8 * 32 + extra, 3, 8, 8), torch.randn(3 * 64, 4)
    return TensorDataset(inputs, (inputs.flatten(1) @ weights).argmax(1))


def _small_bn_net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))


def test_a_degenerate_last_batch_breaks_training_and_the_reference_check_flags_it():
    # 8 batches of 32 plus 2 images: every epoch ends on a 2-image SGD step through BatchNorm, the
    # miniature of the 4-image batch that broke the full-CIFAR retrained model.
    data = _degenerate_case(extra=2)
    recipe = TrainRecipe(optimizer="sgd", lr=0.5, momentum=0.9, weight_decay=5e-4, epochs=15, batch_size=32,
                         lr_end_factor=0.001)
    kept = DataLoader(data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert _batch_sizes(kept)[-1] == 2
    broken = train(_small_bn_net(), kept, recipe, progress=False).history[-1]["loss"]
    sound = train(_small_bn_net(), training_loader(data, 32, generator=torch.Generator().manual_seed(0)), recipe,
                  progress=False).history[-1]["loss"]
    # Measured 0.20-0.48 against 0.007: the degenerate steps make the run chaotic, so its exact loss
    # moves with the float rounding of the thread count, but never comes near the sound run's.
    assert broken > 10 * sound and broken - sound > 0.1
    original = {"test_acc": 0.40, "history": [{"loss": sound}]}
    problems = reference_problems(original, {"retrain": {"test_acc": 0.39, "history": [{"loss": broken}]}})
    assert len(problems) == 1 and "final training loss" in problems[0]
    assert reference_problems(original, {"retrain": {"test_acc": 0.39, "history": [{"loss": sound * 1.5}]}}) == []
    # Measured on the quick profile (15 %, seed 1): a sound retraining ends at three times the original's
    # nearly-zero loss; the gap, not the ratio, tells it from a broken one.
    quick = {"test_acc": 0.556, "history": [{"loss": 0.028}]}
    assert reference_problems(quick, {"retrain": {"test_acc": 0.548, "history": [{"loss": 0.084}]}}) == []
    assert "diverged" in reference_problems(quick, {"retrain": {"test_acc": 0.1, "history": [{"loss": float("nan")}]}})[0]


def test_two_retrainings_that_disagree_are_unsound_and_less_data_alone_is_not():
    # The failure the check was made for: two retrainings of the same retain set at 0.497 and 0.637 (every epoch
    # ended on a 4-sample batch). On 5,000 test images that is 0.140 apart, 14 standard errors.
    original = {"test_acc": 0.79, "history": [{"loss": 0.02}]}
    broken = {"retrain": {"test_acc": 0.497, "history": []}, "retrain_2": {"test_acc": 0.637, "history": []}}
    problems = reference_problems(original, broken, n_test=5000)
    assert len(problems) == 1 and "differ by 0.140" in problems[0] and "5000 test samples" in problems[0]
    # Training on 15-30 % fewer images costs accuracy by itself: both references 6-7 points under the original,
    # agreeing with each other, are sound (the old rule flagged 3 of 18 such quick references).
    fewer = {"retrain": {"test_acc": 0.45, "history": [{"loss": 0.01}]},
             "retrain_2": {"test_acc": 0.46, "history": [{"loss": 0.012}]}}
    assert reference_problems({"test_acc": 0.52, "history": [{"loss": 0.02}]}, fewer, n_test=1000) == []
    # Without the test-set size only the health check runs.
    assert reference_problems(original, broken) == []


def test_agreement_is_a_two_sided_99_percent_band_of_the_test_sets_sampling_error():
    n = 1000
    error = math.sqrt(2 * 0.5 * 0.5 / n)  # both at 0.5: the widest binomial error
    assert agreement_problems({"retrain": 0.5, "retrain_2": 0.5 + 2.5 * error}, n) == []
    assert len(agreement_problems({"retrain": 0.5, "retrain_2": 0.5 + 2.65 * error}, n)) == 1
    assert len(agreement_problems({"retrain": 0.5, "retrain_2": 0.6, "retrain_3": 0.7}, n)) == 3  # every pair


def test_kl_from_reference_is_zero_for_the_same_predictions_and_matches_the_definition():
    torch.manual_seed(0)
    reference, logits = torch.randn(50, 10), torch.randn(50, 10)
    assert kl_from_reference(reference, reference) == pytest.approx(0.0, abs=1e-12)
    p, q = reference.softmax(1).double(), logits.softmax(1).double()
    assert kl_from_reference(logits, reference) == pytest.approx(float((p * (p / q).log()).sum(1).mean()))
    bernoulli_p, bernoulli_q = torch.sigmoid(reference).double(), torch.sigmoid(logits).double()
    expected = (bernoulli_p * (bernoulli_p / bernoulli_q).log()
                + (1 - bernoulli_p) * ((1 - bernoulli_p) / (1 - bernoulli_q)).log()).sum(1).mean()
    assert kl_from_reference(logits, reference, "multilabel") == pytest.approx(float(expected))
    with pytest.raises(ConfigError, match="same shape"):
        kl_from_reference(logits[:10], reference)


def test_forget_quality_is_scipys_two_sample_ks_test():
    rng = np.random.default_rng(0)
    model, retrained = rng.exponential(1.0, 200), rng.exponential(2.0, 150)
    result = compare_with_retrained(model, retrained)
    expected = ks_2samp(model, retrained)
    assert result == {"forget_ks": pytest.approx(expected.statistic), "forget_ks_pvalue": pytest.approx(expected.pvalue)}
    assert compare_with_retrained(model, model)["forget_ks"] == 0.0


def test_evaluate_compares_with_the_reference_logits():
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(40, 6), torch.randint(0, 3, (40,))), batch_size=16)
    splits = {"forget": loader, "test": loader}
    model, other = nn.Linear(6, 3), nn.Linear(6, 3)
    reference = {name: predict(model, splits[name])[0] for name in splits}
    itself = evaluate(model, splits, reference=reference)
    assert itself["forget_ks"] == 0.0 and itself["kl_forget"] == pytest.approx(0, abs=1e-9)
    assert itself["forget_ks_pvalue"] == 1.0
    compared = evaluate(other, splits, reference=reference)
    assert compared["kl_test"] > 0 and compared["forget_ks"] > 0
    assert "kl_forget" not in evaluate(other, splits)  # no reference, no comparison
    with pytest.raises(ConfigError, match="no loader"):
        evaluate(other, {"forget": loader, "test": loader}, reference={"retain": reference["test"]})


def test_label_prior_accuracy_predicts_the_commonest_training_label():
    assert label_prior_accuracy(torch.tensor([0, 2, 2, 1]), torch.tensor([2, 2, 0, 1])) == 0.5
    train_targets = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    test_targets = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 1]])
    assert label_prior_accuracy(train_targets, test_targets, "multilabel") == pytest.approx(2 / 3)


def test_interval_is_students_t_over_seeds_and_nan_for_one_seed():
    mean, std, low, high = interval([0.50, 0.56, 0.53])
    assert (mean, std) == (pytest.approx(0.53), pytest.approx(0.03))
    assert high - mean == pytest.approx(4.302653 * 0.03 / math.sqrt(3), rel=1e-5)  # t(0.975, 2 df)
    assert all(math.isnan(v) for v in interval([0.5])[1:])


def _seeds(nablatau, finetune, retrain=(0.50, 0.52, 0.51)):
    return {seed: {"original": {"mia_loss": 0.8}, "retrain": {"mia_loss": r}, "nablatau": {"mia_loss": n},
                   "finetune": {"mia_loss": f}} for seed, r, n, f in zip((1, 2, 3), retrain, nablatau, finetune)}


def test_closest_over_seeds_calls_a_tie_when_the_intervals_overlap():
    table, sentence = closest_over_seeds(_seeds(nablatau=(0.52, 0.50, 0.55), finetune=(0.53, 0.56, 0.50)))
    assert bool(table["tied_for_closest"].all())
    assert "∇τ is tied for closest with finetune" in sentence and "3 seeds" in sentence
    table, sentence = closest_over_seeds(_seeds(nablatau=(0.70, 0.71, 0.72), finetune=(0.51, 0.52, 0.52)))
    assert list(table.index) == ["finetune", "nablatau"] and not table.loc["nablatau", "tied_for_closest"]
    assert "∇τ is NOT among the closest: it ranks 2 of 2" in sentence
    one_seed = {1: _seeds((0.52,) * 3, (0.60,) * 3)[1]}
    sentence = closest_over_seeds(one_seed)[1]
    assert "one seed" in sentence and "∇τ is the closest (one seed, so no interval says by how much)" in sentence
    table, sentence = closest_over_seeds(_seeds(nablatau=(0.51, 0.52, 0.51), finetune=(0.70, 0.71, 0.72)))
    assert "∇τ is the closest (no other method's interval overlaps its own)" in sentence


def test_seed_table_reports_mean_std_and_interval_per_model():
    runs = _seeds(nablatau=(0.52, 0.50, 0.55), finetune=(0.53, 0.56, 0.50))
    table = seed_table(runs, columns=["mia_loss"])
    assert table.loc["nablatau", ("mia_loss", "mean")] == pytest.approx(0.52333, abs=1e-4)
    assert table.loc["original", ("seeds", "n")] == 3
    text = format_seed_table(table)
    assert text.loc["original", "mia_loss"] == "0.800 ± 0.000 [0.800, 0.800]"
    assert text.loc["nablatau", "seeds"] == 3


class _StopAtEpoch:
    """A loader that raises (as a killed process would) when epoch ``stop`` starts."""

    def __init__(self, loader, stop):
        self.loader, self.stop, self.epoch = loader, stop, 0
        self.generator, self.batch_size = loader.generator, loader.batch_size

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.epoch += 1
        if self.epoch == self.stop:
            raise KeyboardInterrupt
        return iter(self.loader)


def test_an_interrupted_training_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    data = _degenerate_case(extra=0)
    recipe = TrainRecipe(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=4, batch_size=32,
                         lr_end_factor=0.001, augment="cifar")

    def loader():
        return training_loader(data, 32, generator=torch.Generator().manual_seed(0))

    straight = _small_bn_net()
    expected = train(straight, loader(), recipe, seed=3, progress=False)
    resumed, progress = _small_bn_net(), tmp_path / "run.progress.pt"
    with pytest.raises(KeyboardInterrupt):
        train(resumed, _StopAtEpoch(loader(), stop=3), recipe, seed=3, progress=False, resume_from=progress)
    assert torch.load(progress, weights_only=True)["epoch"] == 2
    torch.manual_seed(123)  # another process: every generator starts elsewhere
    result = train(resumed, loader(), recipe, seed=3, progress=False, resume_from=progress)
    assert [row["loss"] for row in result.history] == [row["loss"] for row in expected.history]
    for name, weights in straight.state_dict().items():
        assert torch.equal(weights, resumed.state_dict()[name]), name
    with pytest.raises(Exception, match="recipe"):
        train(_small_bn_net(), loader(), recipe.replace(epochs=5), progress=False, resume_from=progress)


def test_closest_report_has_one_closest_sentence_per_metric():
    runs = _seeds(nablatau=(0.52, 0.50, 0.55), finetune=(0.53, 0.56, 0.50))
    report = closest_report(runs, metrics=("mia_loss",))
    assert report == closest_over_seeds(runs, "mia_loss")[1]
    assert closest_report(runs, metrics=("mia_loss", "mia_loss")).split("\n\n") == [report, report]
