"""The CUDA path: what runs only on a GPU (bf16 autocast, channels-last, data resident on the GPU).

The rest of the suite runs on the CPU even where a GPU exists (``tests/conftest.py`` sets
``NABLATAU_DEVICE=cpu``); these tests pass a CUDA device explicitly and are skipped, with their reason,
where torch finds none.
"""

import copy
import math

import pytest
import torch
from torch.utils.data import TensorDataset

import nablatau
from nablatau.batches import default_device
from nablatau.data import UnlearningSplits, loaders
from nablatau.errors import ConfigError

from test_portable_numbers import differences, measure_all

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device here: the GPU path is tested only where torch finds one")


def test_nablatau_device_picks_the_device_and_names_the_fix_when_it_cannot(monkeypatch):
    monkeypatch.setenv("NABLATAU_DEVICE", "cpu")
    assert default_device() == torch.device("cpu")
    monkeypatch.setenv("NABLATAU_DEVICE", "tpu-please")
    with pytest.raises(ConfigError, match="NABLATAU_DEVICE='tpu-please' is not a device torch knows"):
        default_device()
    monkeypatch.delenv("NABLATAU_DEVICE")
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("NABLATAU_DEVICE", "cuda")
        with pytest.raises(ConfigError, match="finds no CUDA device here; unset it or set it to cpu"):
            default_device()


@needs_cuda
def test_float64_on_cuda_computes_the_cpus_pinned_numbers():
    # bf16 autocast leaves float64 alone, so the GPU's loaders, loops and measurements must give the CPU's
    # numbers on the pinned problem, to the tolerance that holds across CPU instruction sets.
    found = differences(measure_all("cuda"))
    assert not found, "\n".join(found)


@needs_cuda
def test_nablatau_unlearns_a_resnet_in_bf16_on_resident_cuda_data():
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(96, 3, 32, 32, generator=generator), torch.randint(0, 10, (96,), generator=generator)
    splits = UnlearningSplits(retain=TensorDataset(images[:64], labels[:64]), forget=TensorDataset(images[64:80], labels[64:80]),
                              val=TensorDataset(images[80:88], labels[80:88]), test=TensorDataset(images[88:], labels[88:]))
    batches = loaders(splits, 8, seed=0, device="cuda")
    assert type(batches["retain"]).__name__ == "ResidentLoader"  # the splits were copied to the GPU once
    model = nablatau.resnet18(10).cuda()
    before = copy.deepcopy(model.state_dict())
    result = nablatau.unlearn(model, batches["forget"], batches["retain"], batches["val"], epochs=2, seed=0,
                              progress=False)
    assert next(model.parameters()).device.type == "cuda"
    assert all(math.isfinite(row["forget_loss"]) for row in result.history)
    assert any(not torch.equal(before[name], value) for name, value in model.state_dict().items())
    metrics = nablatau.evaluate(model, {name: batches[name] for name in ("retain", "forget", "test")})
    assert all(0 <= metrics[name] <= 1 for name in ("retain_acc", "forget_acc", "test_acc", "mia_loss"))
