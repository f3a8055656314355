"""The method registry: ∇τ is one ordinary entry, and every entry takes the shared calling convention."""

import inspect

import pytest
import torch

import nablatau
from nablatau import baselines
from nablatau.errors import ConfigError
from nablatau.methods import METHODS, method
from nablatau.profiles import IMAGE_METHODS, TEXT_METHODS

#: The shared keyword arguments and their defaults (documented in :mod:`nablatau.baselines`).
SHARED = {"task": "multiclass", "loss": None, "train_mode": False, "seed": None, "progress": True, "callback": None}


def test_nablatau_is_an_ordinary_entry_beside_the_baselines():
    assert METHODS["nablatau"] is nablatau.unlearn
    assert METHODS == {"nablatau": nablatau.unlearn, **baselines.METHODS}
    assert nablatau.METHODS is METHODS
    assert baselines.retrain not in METHODS.values()  # the reference, trained through the checkpoint cache
    assert set(IMAGE_METHODS) == set(TEXT_METHODS) == set(METHODS)  # every compared method is registered


def test_an_unknown_name_is_refused_with_the_known_ones():
    assert method("nablatau") is nablatau.unlearn
    with pytest.raises(ConfigError, match=r"unknown method 'sdd'; choose from \['amnesiac', 'bad_teacher', "
                                          r"'finetune', 'nablatau', 'neggrad_plus', 'scrub', 'ssd'\]"):
        method("sdd")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_entry_accepts_the_shared_arguments(name):
    signature = inspect.signature(METHODS[name])
    loaders = [torch.utils.data.DataLoader([]) for _ in range(3)]
    signature.bind(torch.nn.Linear(1, 1), *loaders, **SHARED)  # raises TypeError for an argument it lacks
    positional = [p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert positional == ["model", "forget", "retain", "val"]
    explicit = {key: p.default for key, p in signature.parameters.items() if key in SHARED}
    assert explicit == {key: SHARED[key] for key in explicit}  # an explicit shared argument has the shared default
    for key in explicit:
        assert signature.parameters[key].kind is inspect.Parameter.KEYWORD_ONLY
