"""The edges of the public API a user's own code meets: sampler-based loaders, losses that are not per sample,
and the precision switch of the CUDA fast path."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import (DataLoader, Subset, SubsetRandomSampler, TensorDataset, WeightedRandomSampler)

import nablatau
from nablatau import baselines
from nablatau.errors import ConfigError, ShapeError
from nablatau.loop import dataset_size, loader_samples, precision, precision_of
from nablatau.methods import METHODS
from nablatau.train import TrainRecipe

FORGET, RETAIN, VAL = range(0, 12), range(12, 60), range(60, 80)


def full_set(n: int = 80) -> TensorDataset:
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 4, generator=generator), torch.randint(0, 3, (n,), generator=generator))


def sampled(indices: range, batch_size: int = 8) -> DataLoader:
    """The common idiom: one loader over the full set, a sampler picking the part."""
    return DataLoader(full_set(), batch_size=batch_size, sampler=SubsetRandomSampler(list(indices),
                      generator=torch.Generator().manual_seed(1)))


def subset(indices: range, batch_size: int = 8) -> DataLoader:
    return DataLoader(Subset(full_set(), list(indices)), batch_size=batch_size)


def test_sizes_are_what_a_loader_yields_not_its_dataset():
    assert dataset_size(sampled(FORGET)) == len(FORGET) == dataset_size(subset(FORGET))
    assert dataset_size(DataLoader(full_set(), batch_size=8, drop_last=True, sampler=SubsetRandomSampler(FORGET))) == 8

    class Pairs:  # a custom batch sampler: pairs of indices
        def __iter__(self):
            return iter([[0, 1], [2, 3], [4]])

        def __len__(self):
            return 3

    assert dataset_size(DataLoader(full_set(), batch_sampler=Pairs())) == 5


def test_alpha0_and_epochs_of_a_sampler_based_loader_are_those_of_its_subset():
    # Counting len(loader.dataset) here would make α₀ 5/3 · ½ (the full set's forget "fraction") instead of
    # 5/3 · 12/60, and record 80 forget samples.
    by_sampler = nablatau.unlearn(nn.Linear(4, 3), sampled(FORGET), sampled(RETAIN), sampled(VAL), epochs=1,
                                  progress=False).config
    by_subset = nablatau.unlearn(nn.Linear(4, 3), subset(FORGET), subset(RETAIN), subset(VAL), epochs=1,
                                 progress=False).config
    assert by_sampler["alpha0"] == pytest.approx(5 / 3 * 12 / 60) == by_subset["alpha0"]
    assert (by_sampler["n_forget"], by_sampler["n_retain"], by_sampler["n_val"]) == (12, 48, 20)
    assert nablatau.default_epochs(len(sampled(RETAIN)), len(sampled(FORGET))) == \
        nablatau.default_epochs(len(subset(RETAIN)), len(subset(FORGET)))


def test_methods_that_rebatch_the_samples_take_only_the_sampled_ones():
    drawn = loader_samples(sampled(RETAIN), method="retrain", role="retain")
    assert sorted(drawn.indices) == list(RETAIN)  # not the forget samples behind the same full set
    whole = DataLoader(full_set(), batch_size=8, shuffle=True)
    assert loader_samples(whole, method="retrain", role="retain") is whole.dataset
    weighted = DataLoader(full_set(), batch_size=8, sampler=WeightedRandomSampler([1.0] * 80, 40))
    with pytest.raises(ConfigError, match=r"cannot tell which samples its WeightedRandomSampler draws; pass "
                                          r"DataLoader\(torch.utils.data.Subset"):
        loader_samples(weighted, method="retrain", role="retain")
    pairs = DataLoader(full_set(), batch_sampler=[[0, 1], [2, 3]])  # a custom batch sampler decides the draws
    with pytest.raises(ConfigError, match="cannot tell which samples its list draws"):
        loader_samples(pairs, method="ssd", role="retain")
    recipe = TrainRecipe(optimizer="sgd", lr=0.01, epochs=1, batch_size=8)
    with pytest.raises(ConfigError, match="retrain builds its own loader"):
        baselines.retrain(nn.Linear(4, 3), subset(FORGET), weighted, subset(VAL), recipe=recipe, progress=False)
    result = baselines.retrain(nn.Linear(4, 3), sampled(FORGET), sampled(RETAIN), sampled(VAL), recipe=recipe,
                               progress=False)
    assert len(result.history) == 1 and result.config["n_retain"] == 48


def mean_squared_error(outputs, targets):
    return F.mse_loss(outputs, F.one_hot(targets, 3).float())  # reduced to one number: the mistake


# Bad Teacher distils from its teachers and computes no task loss (its ``loss`` is only recorded).
@pytest.mark.parametrize("name", sorted(set(METHODS) - {"bad_teacher"}))
def test_a_loss_that_is_not_per_sample_is_refused_with_the_fix(name):
    with pytest.raises(ShapeError, match=r"loss mean_squared_error returned shape \(\) for a batch of (\d+) samples; "
                                         r"a loss must return one value per sample, shape \(\1,\)\. With a torch "
                                         r"loss pass reduction='none'"):
        METHODS[name](nn.Linear(4, 3), subset(FORGET), subset(RETAIN), subset(VAL), loss=mean_squared_error,
                      progress=False, **({"epochs": 1} if name in ("nablatau", "finetune") else {}))


def test_a_per_sample_regression_loss_runs():
    def squared_error(outputs, targets):
        return F.mse_loss(outputs, F.one_hot(targets, 3).float(), reduction="none").mean(dim=1)

    result = nablatau.unlearn(nn.Linear(4, 3), subset(FORGET), subset(RETAIN), subset(VAL), loss=squared_error,
                              epochs=2, progress=False)
    assert result.config["loss"] == "squared_error" and len(result.history) == 2


def test_precision_turns_bf16_off_on_cuda_only_inside_its_block():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert (precision_of(cuda), precision_of(cpu)) == ("bf16", "fp32")
    with precision("fp32"):
        assert precision_of(cuda) == "fp32"
        with precision("bf16"):
            assert precision_of(cuda) == "bf16"
        assert precision_of(cuda) == "fp32"
    assert precision_of(cuda) == "bf16"
    with pytest.raises(ConfigError, match=r"precision must be one of \('bf16', 'fp32'\), got 'fp16'"):
        with precision("fp16"):
            pass
    result = nablatau.unlearn(nn.Linear(4, 3), subset(FORGET), subset(RETAIN), subset(VAL), epochs=1, progress=False)
    assert result.config["precision"] == "fp32"  # what the CPU computed in, recorded


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA device here: bf16 autocast exists only on the GPU path")
def test_precision_fp32_computes_the_cuda_forward_in_float32():
    seen = []
    model = nn.Linear(4, 3).cuda()
    model.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    nablatau.unlearn(model, subset(FORGET), subset(RETAIN), subset(VAL), epochs=1, progress=False)
    with precision("fp32"):
        result = nablatau.unlearn(model, subset(FORGET), subset(RETAIN), subset(VAL), epochs=1, progress=False)
    half = len(seen) // 2
    assert set(seen[:half]) == {torch.bfloat16} and set(seen[half:]) == {torch.float32}
    assert result.config["precision"] == "fp32"
