"""∇τ mechanics on tiny models: the paper's rules, the objective, and the loop's invariants."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nablatau
from nablatau.errors import ConfigError, DivergenceError, ShapeError
from nablatau.losses import cross_entropy, multilabel_bce
from nablatau.nabla_tau import (alpha_at, default_alpha0, default_epochs, mean_loss, nablatau_objective,
                              refreshes_target_loss, retain_restart_period)

from conftest import CountingLoader


def make_loader(n, *, seed, batch_size=8, features=4, classes=3, shuffle=False):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# --- The paper's rules -----------------------------------------------------------------------------

def test_default_alpha0_is_five_thirds_of_the_forget_fraction():
    assert default_alpha0(100, 900) == pytest.approx(5 / 3 * 0.10)
    assert default_alpha0(300, 700) == pytest.approx(0.5)


def test_default_epochs_follows_the_reference_rule():
    # int(len(retain) / (2 · len(forget)) · 6) in batches
    assert default_epochs(100, 10) == 30
    assert default_epochs(7, 3) == 7  # int(7 / 6 · 6) = int(7.000…) = 7
    assert default_epochs(100, 10, multiplier=1) == 5  # the text notebooks' rule


def test_alpha_decreases_linearly_and_reaches_zero():
    alphas = [alpha_at(epoch, 0.3, 6) for epoch in range(7)]
    assert alphas[0] == pytest.approx(0.3)
    assert alphas[-1] == pytest.approx(0.0)
    steps = [a - b for a, b in zip(alphas, alphas[1:])]
    assert steps == pytest.approx([0.3 / 6] * 6)


def test_target_loss_refresh_and_retain_restart_periods():
    assert [e for e in range(12) if refreshes_target_loss(e, 5)] == [0, 5, 10]
    assert retain_restart_period(29, 4) == 7
    assert retain_restart_period(3, 10) == 1  # fewer retain than forget batches: restart each epoch


# --- The objective -----------------------------------------------------------------------------

def test_ascent_has_zero_gradient_once_forget_loss_reaches_the_target():
    forget = torch.tensor([2.0, 3.0], requires_grad=True)  # mean 2.5
    retain = torch.tensor([0.5, 0.7], requires_grad=True)
    nablatau_objective(forget, retain, target_loss=2.0, alpha=0.4).backward()
    assert torch.equal(forget.grad, torch.zeros(2))
    assert torch.allclose(retain.grad, torch.full((2,), 0.6 / 2))


def test_ascent_raises_forget_loss_while_below_the_target():
    forget = torch.tensor([0.5, 1.5], requires_grad=True)  # mean 1.0, target 2.0
    retain = torch.tensor([0.1], requires_grad=True)
    value = nablatau_objective(forget, retain, target_loss=2.0, alpha=0.5)
    assert float(value.detach()) == pytest.approx(0.5 * 1.0 ** 2 + 0.5 * 0.1)
    value.backward()
    # d/df_i of α·(T − mean f)² = −2α(T − mean f)/n < 0: descending it raises the forget loss.
    assert torch.allclose(forget.grad, torch.full((2,), -2 * 0.5 * 1.0 / 2))


def test_two_sided_ascent_lowers_a_forget_loss_above_the_target_and_one_sided_does_not():
    # The reference text notebook writes relu(delta_val_loss**2) = Δ², the image notebooks relu(Δ)².
    def forget_gradient(ascent):
        forget = torch.tensor([3.0, 4.0], requires_grad=True)  # mean 3.5, above the target 2.0
        nablatau_objective(forget, torch.tensor([0.1]), target_loss=2.0, alpha=0.5, ascent=ascent).backward()
        return forget.grad

    assert torch.equal(forget_gradient("one_sided"), torch.zeros(2))
    # d/df_i of α·(T − mean f)² = −2α(T − mean f)/n = +0.75 > 0: descending it lowers the forget loss.
    assert torch.allclose(forget_gradient("two_sided"), torch.full((2,), -2 * 0.5 * (2.0 - 3.5) / 2))


def test_both_ascent_shapes_agree_below_the_target():
    forget, retain = torch.tensor([0.5, 1.5]), torch.tensor([0.1])
    one = nablatau_objective(forget, retain, target_loss=2.0, alpha=0.5, ascent="one_sided")
    two = nablatau_objective(forget, retain, target_loss=2.0, alpha=0.5, ascent="two_sided")
    assert float(one) == float(two)


def test_ascent_shape_is_recorded_and_checked():
    loaders = make_loader(16, seed=1), make_loader(80, seed=2), make_loader(24, seed=3)
    result = nablatau.unlearn(tiny_model(), *loaders, epochs=1, ascent="two_sided", progress=False)
    assert result.config["ascent"] == "two_sided"
    assert nablatau.unlearn(tiny_model(), *loaders, epochs=0, progress=False).config["ascent"] == "one_sided"
    with pytest.raises(ConfigError, match="ascent must be one of"):
        nablatau.unlearn(tiny_model(), *loaders, ascent="both", progress=False)


def test_target_loss_is_measured_in_eval_mode_even_when_the_steps_run_in_train_mode():
    # The reference calls net.eval() before the validation pass: dropout must not inflate L̄_val.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    forget, retain, val = make_loader(16, seed=1), make_loader(80, seed=2), make_loader(24, seed=3)
    expected = mean_loss(model.eval(), val)
    model.train()
    with torch.no_grad():
        in_train_mode = mean_loss(model, val)
    assert in_train_mode != pytest.approx(expected)  # dropout changes the loss: the check can fail
    result = nablatau.unlearn(model, forget, retain, val, epochs=1, train_mode=True, progress=False)
    assert result.history[0]["target_loss"] == pytest.approx(expected, rel=1e-6)
    assert model.training  # the caller's mode is restored


# --- The loop ------------------------------------------------------------------------------------

def test_defaults_resolve_from_the_rules_and_history_tracks_alpha():
    forget, retain, val = make_loader(16, seed=1), make_loader(80, seed=2), make_loader(24, seed=3)
    result = nablatau.unlearn(tiny_model(), forget, retain, val, progress=False)
    assert result.config["alpha0"] == pytest.approx(5 / 3 * 16 / 96)
    assert result.config["epochs"] == default_epochs(len(retain), len(forget)) == 15
    assert [row["epoch"] for row in result.history] == list(range(15))
    alphas = [row["alpha"] for row in result.history]
    assert alphas == pytest.approx([alpha_at(e, result.config["alpha0"], 15) for e in range(15)])
    lrs = [row["lr"] for row in result.history]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3 * (1 - 0.9 * 14 / 15))
    assert result.wall_time_s > 0


def test_target_loss_is_refreshed_every_five_epochs():
    val = CountingLoader(make_loader(24, seed=3))
    result = nablatau.unlearn(tiny_model(), make_loader(16, seed=1), make_loader(80, seed=2), val,
                              epochs=12, progress=False)
    assert val.passes == 3  # epochs 0, 5, 10
    targets = [row["target_loss"] for row in result.history]
    assert targets[0] == targets[4] and targets[5] == targets[9] and targets[10] == targets[11]
    assert targets[0] != targets[5]  # the retain term moved the validation loss in between


def test_zero_epochs_returns_the_model_unchanged():
    model = tiny_model()
    before = weights(model)
    result = nablatau.unlearn(model, make_loader(16, seed=1), make_loader(80, seed=2),
                              make_loader(24, seed=3), epochs=0, progress=False)
    assert result.history == [] and same_weights(before, weights(model))


def test_alpha_zero_equals_finetuning_on_the_retain_set():
    retain = make_loader(40, seed=2)  # 5 batches, not shuffled
    forget = make_loader(8, seed=1)  # 1 batch: each epoch takes exactly one retain batch
    model = tiny_model()
    reference = copy.deepcopy(model)
    nablatau.unlearn(model, forget, retain, make_loader(24, seed=3), alpha0=0.0, epochs=7,
                     progress=False)

    optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.1, total_iters=7)
    batches = [batch for _ in range(2) for batch in retain]
    reference.eval()
    for x, y in batches[:7]:
        optimizer.zero_grad()
        nn.functional.cross_entropy(reference(x), y).backward()
        optimizer.step()
        scheduler.step()
    for name, value in reference.state_dict().items():
        assert torch.allclose(model.state_dict()[name], value, atol=1e-6), name


def test_forget_set_has_no_influence_when_alpha_is_zero():
    runs = []
    for forget_seed in (1, 99):
        model = tiny_model()
        nablatau.unlearn(model, make_loader(16, seed=forget_seed), make_loader(80, seed=2),
                         make_loader(24, seed=3), alpha0=0.0, progress=False)
        runs.append(weights(model))
    assert same_weights(*runs)


def test_same_seed_gives_identical_weights():
    runs = []
    for _ in range(2):
        model = tiny_model()
        nablatau.unlearn(model, make_loader(16, seed=1, shuffle=True), make_loader(80, seed=2, shuffle=True),
                         make_loader(24, seed=3), seed=0, progress=False)
        runs.append(weights(model))
    assert same_weights(*runs)


def test_eval_mode_keeps_batchnorm_statistics_frozen_and_train_mode_does_not():
    def bn_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    loaders = make_loader(16, seed=1), make_loader(80, seed=2), make_loader(24, seed=3)
    frozen, moving = bn_model(), bn_model()
    stats = frozen[1].running_mean.clone()
    nablatau.unlearn(frozen, *loaders, epochs=2, progress=False)
    nablatau.unlearn(moving, *loaders, epochs=2, train_mode=True, progress=False)
    assert torch.equal(frozen[1].running_mean, stats)
    assert not torch.equal(moving[1].running_mean, stats)
    assert frozen.training  # the caller's mode is restored


def test_callback_rows_join_the_history():
    seen = []

    def callback(epoch, model):
        seen.append(epoch)
        return {"probe": epoch * 10}

    result = nablatau.unlearn(tiny_model(), make_loader(16, seed=1), make_loader(80, seed=2),
                              make_loader(24, seed=3), epochs=3, callback=callback, progress=False)
    assert seen == [0, 1, 2] and [row["probe"] for row in result.history] == [0, 10, 20]


class TinyTextModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.EmbeddingBag(50, 8, mode="sum")
        self.head = nn.Linear(8, 5)

    def forward(self, input_ids, attention_mask):
        return self.head(self.embedding(input_ids, per_sample_weights=attention_mask.float()))


class DictDataset(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 50, (n, 6), generator=generator)
        self.labels = (torch.rand(n, 5, generator=generator) > 0.7).float()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(6), "labels": self.labels[i]}


def test_dict_batches_and_multilabel_loss_go_through_unchanged():
    loaders = [DataLoader(DictDataset(n, seed), batch_size=8) for n, seed in ((16, 1), (64, 2), (16, 3))]
    model = TinyTextModel()
    before = mean_loss(model, loaders[0], multilabel_bce)
    result = nablatau.unlearn(model, *loaders, loss=multilabel_bce, alpha0=0.5, lr=3e-4,
                              lr_end_factor=None, train_mode=True, progress=False)
    assert result.config["epochs"] == 12 and all(row["lr"] == 3e-4 for row in result.history)
    assert mean_loss(model, loaders[0], multilabel_bce) != before


def test_the_task_picks_the_default_loss_and_an_explicit_loss_runs_as_before():
    text = [DataLoader(DictDataset(n, seed), batch_size=8) for n, seed in ((16, 1), (64, 2), (16, 3))]
    images = [make_loader(16, seed=1), make_loader(80, seed=2), make_loader(24, seed=3)]
    runs = {}
    for label, loaders, kwargs in (
        ("multilabel task", text, dict(task="multilabel")),
        ("multilabel_bce", text, dict(loss=multilabel_bce)),
        ("multiclass default", images, dict()),
        ("cross_entropy", images, dict(loss=cross_entropy)),
    ):
        model = TinyTextModel() if loaders is text else tiny_model()
        result = nablatau.unlearn(model, *loaders, alpha0=0.5, epochs=3, progress=False, **kwargs)
        runs[label] = (weights(model), result.history, result.config)
    for by_task, by_loss, task, loss in (("multilabel task", "multilabel_bce", "multilabel", "multilabel_bce"),
                                         ("multiclass default", "cross_entropy", "multiclass", "cross_entropy")):
        assert same_weights(runs[by_task][0], runs[by_loss][0])
        assert [row["forget_loss"] for row in runs[by_task][1]] == [row["forget_loss"] for row in runs[by_loss][1]]
        assert runs[by_task][2]["task"] == task and runs[by_task][2]["loss"] == runs[by_loss][2]["loss"] == loss
    assert runs["multilabel_bce"][2]["task"] == "multiclass"  # an explicit loss is used whatever the task


# --- Bad inputs -----------------------------------------------------------------------------------

def test_empty_loaders_are_reported_together():
    empty = DataLoader(TensorDataset(torch.empty(0, 4), torch.empty(0, dtype=torch.long)), batch_size=8)
    with pytest.raises(ConfigError, match=r"(?s)2 problems.*forget loader is empty.*val loader is empty"):
        nablatau.unlearn(tiny_model(), empty, make_loader(80, seed=2), empty, progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha0": 1.5}, r"alpha0 must be in \[0, 1\], got 1.5"),
    ({"epochs": -1}, "epochs must be >= 0"),
    ({"lr": 0}, "lr must be > 0"),
    ({"refresh_every": 0}, "refresh_every must be >= 1"),
])
def test_out_of_range_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        nablatau.unlearn(tiny_model(), make_loader(16, seed=1), make_loader(80, seed=2),
                         make_loader(24, seed=3), progress=False, **kwargs)


def test_an_unknown_task_is_refused_with_the_other_problems_before_the_model_is_touched():
    model = tiny_model()
    before = weights(model)
    with pytest.raises(ConfigError, match=r"(?s)2 problems.*task must be one of \('multiclass', 'multilabel'\), "
                                          r"got 'regression'.*lr must be > 0"):
        nablatau.unlearn(model, make_loader(16, seed=1), make_loader(80, seed=2), make_loader(24, seed=3),
                         task="regression", lr=0, progress=False)
    assert same_weights(before, weights(model))


def test_default_alpha0_above_one_asks_for_an_explicit_value():
    with pytest.raises(ConfigError, match="Pass alpha0 explicitly"):
        nablatau.unlearn(tiny_model(), make_loader(80, seed=1), make_loader(16, seed=2),
                         make_loader(24, seed=3), progress=False)


def test_targets_that_do_not_fit_the_loss():
    multi_hot = DataLoader(TensorDataset(torch.randn(16, 4), torch.ones(16, 3)), batch_size=8)
    with pytest.raises(ShapeError, match="multilabel_bce"):
        nablatau.unlearn(tiny_model(), multi_hot, multi_hot, multi_hot, progress=False)


class PoisonedLoader(CountingLoader):
    """Yields NaN inputs from the given pass on."""

    def __init__(self, loader, poisoned_pass):
        super().__init__(loader)
        self.poisoned_pass = poisoned_pass

    def __iter__(self):
        self.passes += 1
        for x, y in self.loader:
            yield (torch.full_like(x, math.nan) if self.passes >= self.poisoned_pass else x), y


def test_nan_loss_stops_reports_the_epoch_and_keeps_the_last_good_weights():
    model = tiny_model()
    snapshots = []
    with pytest.raises(DivergenceError, match="at epoch 2, step 0") as caught:
        nablatau.unlearn(model, PoisonedLoader(make_loader(16, seed=1), poisoned_pass=3),
                         make_loader(80, seed=2), make_loader(24, seed=3), epochs=5,
                         callback=lambda epoch, m: snapshots.append(weights(m)), progress=False)
    assert caught.value.epoch == 2
    assert len(caught.value.history) == 2  # the finished epochs are not lost
    assert same_weights(weights(model), snapshots[-1])
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_alpha_zero_skips_the_target_loss_and_forget_pass():
    val = CountingLoader(make_loader(24, seed=3))
    result = nablatau.unlearn(tiny_model(), make_loader(16, seed=1), make_loader(80, seed=2), val,
                              alpha0=0.0, epochs=6, progress=False)
    assert val.passes == 0
    assert all(math.isnan(row["forget_loss"]) and math.isnan(row["target_loss"]) for row in result.history)


def test_callback_time_is_kept_out_of_the_wall_time():
    import time as clock

    result = nablatau.unlearn(tiny_model(), make_loader(16, seed=1), make_loader(80, seed=2),
                              make_loader(24, seed=3), epochs=2, progress=False,
                              callback=lambda epoch, model: clock.sleep(0.3))
    assert result.config["callback_s"] >= 0.6
    assert result.wall_time_s < result.config["callback_s"]  # two tiny epochs take far less than 0.6 s
