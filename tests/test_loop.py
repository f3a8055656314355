"""The loop ∇τ and the baselines share: timing, modes, seeding, history rows, divergence."""

import math
import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from nablatau.errors import DivergenceError
from nablatau.loop import (EpochLoop, RunningMean, UnlearnResult, autocast, cycle, dataset_size, finite_step)


def config(epochs=2, seed=None, train_mode=False):
    return dict(method="demo", epochs=epochs, seed=seed, train_mode=train_mode)


def tiny_model():
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def test_rows_hold_epoch_values_lr_and_elapsed_in_order():
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    with EpochLoop(model, config(), progress=False) as loop:
        for epoch in loop.epochs():
            loop.end_epoch(epoch, optimizer, loss=1.0, forget_loss=2.0)
    assert isinstance(loop.result, UnlearnResult) and loop.result.config["method"] == "demo"
    assert [list(row) for row in loop.result.history] == [["epoch", "loss", "forget_loss", "lr", "elapsed_s"]] * 2
    assert [row["epoch"] for row in loop.result.history] == [0, 1]
    assert all(row["lr"] == 0.5 for row in loop.result.history)
    without_optimizer = EpochLoop(model, config(epochs=1), progress=False)
    with without_optimizer:
        without_optimizer.end_epoch(0, alpha=0.1, lr=0.2, target_loss=0.3)
    assert list(without_optimizer.result.history[0]) == ["epoch", "alpha", "lr", "target_loss", "elapsed_s"]


def test_callback_time_is_kept_out_of_wall_time_and_elapsed():
    def slow(epoch, model):
        time.sleep(0.2)
        return {"probe": epoch}

    with EpochLoop(tiny_model(), config(), callback=slow, progress=False) as loop:
        for epoch in loop.epochs():
            loop.end_epoch(epoch)
    result = loop.result
    assert [row["probe"] for row in result.history] == [0, 1]
    assert result.config["callback_s"] >= 0.4
    assert result.wall_time_s < 0.2 and result.history[-1]["elapsed_s"] < 0.2


def test_train_mode_is_set_inside_restored_after_a_callback_and_the_callers_mode_after_exit():
    model = tiny_model().eval()
    modes = []

    def evaluating(epoch, m):
        m.eval()

    with EpochLoop(model, config(train_mode=True), callback=evaluating, progress=False) as loop:
        for epoch in loop.epochs():
            modes.append(model.training)
            loop.end_epoch(epoch)
            modes.append(model.training)
    assert modes == [True, True, True, True]
    assert not model.training


def test_the_callers_mode_is_restored_after_an_exception():
    model = tiny_model().train()
    with pytest.raises(RuntimeError, match="boom"):
        with EpochLoop(model, config(train_mode=False), progress=False) as loop:
            assert not model.training
            raise RuntimeError("boom")
    assert model.training
    assert loop.result.wall_time_s >= 0 and loop.result.config["callback_s"] == 0.0


def test_divergence_carries_the_finished_epochs():
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DivergenceError, match="demo loss became nan at epoch 1, step 3 \\(max pass\\)") as caught:
        with EpochLoop(model, config(epochs=3), progress=False) as loop:
            for epoch in loop.epochs():
                if epoch == 1:
                    finite_step(optimizer, torch.tensor(math.nan), method="demo", epoch=epoch, step=3,
                                detail="max pass")
                loop.end_epoch(epoch)
    assert caught.value.epoch == 1 and caught.value.step == 3
    assert [row["epoch"] for row in caught.value.history] == [0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # no step was taken


def test_seed_is_applied_on_entry():
    with EpochLoop(tiny_model(), config(seed=7), progress=False):
        drawn = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(drawn, torch.rand(3))


def test_finite_step_steps_on_a_finite_loss():
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.weight.detach().clone()
    finite_step(optimizer, model(torch.ones(2, 4)).sum(), method="demo", epoch=0, step=0)
    assert not torch.equal(before, model.weight)


def test_cycle_restarts_the_loader():
    loader = DataLoader(TensorDataset(torch.arange(3)), batch_size=2)
    batches = cycle(loader)
    assert [next(batches)[0].tolist() for _ in range(4)] == [[0, 1], [2], [0, 1], [2]]


class Stream(IterableDataset):
    def __iter__(self):
        return iter(range(5))


class StreamLoader:
    """Three batches of two over a dataset without a length."""

    dataset, batch_size = Stream(), 2

    def __len__(self):
        return 3


def test_dataset_size_counts_samples_or_falls_back_to_batches_times_batch_size():
    assert dataset_size(DataLoader(TensorDataset(torch.zeros(10, 1)), batch_size=4)) == 10
    assert dataset_size(StreamLoader()) == 6


def test_running_mean_weights_by_samples_and_is_nan_when_empty():
    mean = RunningMean()
    assert math.isnan(mean.value)
    mean.add(torch.tensor([1.0, 3.0]))
    mean.add(torch.tensor(6.0), count=2)
    assert mean.value == pytest.approx(4.0) and mean.count == 4


def test_autocast_is_off_on_the_cpu():
    with autocast(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cuda")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
