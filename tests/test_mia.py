"""Population membership-inference attack: chance on identical scores, perfect on separable ones."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nablatau.errors import DataError
from nablatau.losses import cross_entropy
from nablatau.mia import population_mia, predict, sample_scores


def test_identically_distributed_scores_give_chance_accuracy():
    rng = np.random.default_rng(0)
    result = population_mia(rng.normal(size=3000), rng.normal(size=3000))
    # 10 splits × 600 test samples: the std of a chance accuracy is about 0.02/sqrt(10); 0.04 is ~6σ.
    assert abs(result.accuracy - 0.5) < 0.04
    assert abs(result.auc - 0.5) < 0.05


def test_separable_scores_give_perfect_accuracy():
    rng = np.random.default_rng(0)
    result = population_mia(rng.normal(0, 1, 500), rng.normal(10, 1, 500))
    assert result.accuracy > 0.99 and result.auc > 0.99


def test_larger_side_is_subsampled_to_balance_the_attack():
    rng = np.random.default_rng(0)
    result = population_mia(rng.normal(size=100), rng.normal(size=1000))
    assert result.n_per_side == 100


def test_same_seed_same_attack():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(0, 1, 400), rng.normal(0.5, 1, 700)
    assert population_mia(members, nonmembers, seed=3) == population_mia(members, nonmembers, seed=3)


def test_nan_scores_and_tiny_sets_are_refused():
    with pytest.raises(DataError, match="NaN or inf"):
        population_mia(np.array([0.1, np.nan, 0.3, 0.4, 0.5, 0.6]), np.ones(10))
    with pytest.raises(DataError, match="at least 5 samples"):
        population_mia(np.ones(3), np.ones(10))


def test_predict_and_scores_match_the_loss_and_restore_the_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    x, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    logits, targets = predict(model, DataLoader(TensorDataset(x, y), batch_size=6))
    assert model.training  # restored
    assert torch.equal(targets, y)
    assert torch.allclose(logits, model[0](x), atol=1e-6)  # eval mode: dropout off
    scores = sample_scores(logits, targets)
    assert np.allclose(scores["loss"], cross_entropy(logits, targets).numpy(), atol=1e-6)
    assert np.all(scores["entropy"] >= 0) and np.all(scores["entropy"] <= np.log(3) + 1e-6)
