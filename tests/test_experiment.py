"""Profiles are deltas over the paper's settings; unknown names and keys are errors."""

import pytest
import torch
from torch.utils.data import TensorDataset

from nablatau.data import ImageData
from nablatau.errors import ConfigError
from nablatau.models import resnet18
from nablatau.experiment import PAPER, profile_data, resolve_profile, trained_model
from nablatau.train import CIFAR_RECIPE, CheckpointCache


def test_paper_profile_is_the_reference_recipe_on_full_data():
    paper = resolve_profile("paper")
    assert paper["recipe"] == CIFAR_RECIPE and paper["n_train"] is None and paper["profile"] == "paper"


def test_overrides_apply_and_unknown_names_or_keys_are_refused():
    assert resolve_profile("quick", n_train=123)["n_train"] == 123
    with pytest.raises(ConfigError, match=r"profile must be one of \['paper', 'quick', 'smoke'\]"):
        resolve_profile("fast")
    with pytest.raises(ConfigError, match=r"unknown profile settings \['epochs'\]"):
        resolve_profile("quick", epochs=3)
    assert set(resolve_profile("smoke")) == set(PAPER) | {"profile"}


def _tiny_cifar():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(40, 3, 32, 32, generator=generator)
    labels = torch.arange(40) % 10
    return ImageData(train=TensorDataset(images[:30], labels[:30]), test=TensorDataset(images[30:], labels[30:]),
                     classes=[str(i) for i in range(10)], name="tiny")


def test_profile_data_subsets_and_the_model_is_cached_per_role(tmp_path):
    data = _tiny_cifar()
    settings = resolve_profile("smoke", n_train=20, n_heldout=None)
    settings["recipe"] = settings["recipe"].replace(epochs=1, batch_size=10)
    train_set, heldout = profile_data(data, settings)
    assert len(train_set) == 20 and len(heldout) == 10
    cache = CheckpointCache(tmp_path)
    key = {"role": "original", "dataset": data.name, "model": "resnet18"}
    model, info = trained_model(resnet18(10), train_set, settings, key=key, cache=cache, progress=False)
    again, again_info = trained_model(resnet18(10), train_set, settings, key=key, cache=cache, progress=False)
    assert not info["cached"] and again_info["cached"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    _, retrain_info = trained_model(resnet18(10), train_set, settings, cache=cache, progress=False,
                                    key={**key, "role": "retrain", "forget_fraction": 0.1})
    assert not retrain_info["cached"] and len(list(tmp_path.glob("*.pt"))) == 2
