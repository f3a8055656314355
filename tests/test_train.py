import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no Hub access here; read when huggingface_hub imports

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nablatau.errors import CheckpointError, ConfigError
from nablatau.losses import multilabel_bce
from nablatau.train import (
    CIFAR_RECIPE,
    GOEMOTIONS_RECIPE,
    CheckpointCache,
    TrainRecipe,
    TrainResult,
    augment_cifar,
    make_optimizer,
    recipe_spec,
    train,
)

SMALL = TrainRecipe(optimizer="sgd", lr=0.1, momentum=0.9, epochs=8, batch_size=32, lr_end_factor=0.1)


def blobs(n: int = 256, seed: int = 0) -> TensorDataset:
    """Three well separated Gaussian blobs in 2-D."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    return TensorDataset(centres[labels] + torch.randn(n, 2, generator=g), labels)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).relu().mean(dim=(2, 3)))


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def accuracy(model: nn.Module, data: TensorDataset) -> float:
    inputs, labels = data.tensors
    with torch.no_grad():
        return (model(inputs).argmax(1) == labels).float().mean().item()


# --- recipes ----------------------------------------------------------------------------------


def test_reference_recipes():
    assert dataclasses.astuple(CIFAR_RECIPE) == ("sgd", 0.1, 0.9, 5e-4, 50, 256, 0.001, "cifar", 1e-8)
    assert GOEMOTIONS_RECIPE.optimizer == "adamw"
    # transformers.AdamW(params, lr=5e-05) of TRAIN_GoEmotions: weight decay 0, eps 1e-6.
    assert (GOEMOTIONS_RECIPE.lr, GOEMOTIONS_RECIPE.weight_decay, GOEMOTIONS_RECIPE.eps) == (5e-5, 0.0, 1e-6)
    optimizer = make_optimizer([nn.Parameter(torch.zeros(1))], GOEMOTIONS_RECIPE)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert (optimizer.defaults["eps"], optimizer.defaults["weight_decay"]) == (1e-6, 0.0)
    assert (GOEMOTIONS_RECIPE.epochs, GOEMOTIONS_RECIPE.batch_size) == (10, 128)
    assert (GOEMOTIONS_RECIPE.lr_end_factor, GOEMOTIONS_RECIPE.augment) == (0.1, None)
    assert recipe_spec(CIFAR_RECIPE)["lr_end_factor"] == 0.001


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"optimizer": "adam"}, "optimizer must be one of"),
        ({"lr": 0.0}, "lr must be a positive number; got 0.0"),
        ({"lr": -1}, "lr must be a positive number"),
        ({"epochs": 0}, "epochs must be a positive integer; got 0"),
        ({"epochs": 2.5}, "epochs must be a positive integer"),
        ({"batch_size": -4}, "batch_size must be a positive integer"),
        ({"lr_end_factor": 0.0}, r"lr_end_factor must be in \(0, 1\]"),
        ({"augment": "imagenet"}, "augment must be one of"),
        ({"optimizer": "adamw"}, "momentum applies to optimizer='sgd' only"),
    ],
)
def test_recipe_validation(changes, match):
    with pytest.raises(ConfigError, match=match):
        CIFAR_RECIPE.replace(**changes)


def test_recipe_reports_every_problem_and_is_frozen():
    with pytest.raises(ConfigError, match="Found 2 problems"):
        CIFAR_RECIPE.replace(lr=0, batch_size=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CIFAR_RECIPE.lr = 1.0
    assert CIFAR_RECIPE.replace(epochs=3).epochs == 3 and CIFAR_RECIPE.epochs == 50


# --- augmentation ----------------------------------------------------------------------------


def test_augment_cifar_shape_and_determinism():
    images = torch.randn(64, 3, 32, 32)
    out = augment_cifar(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    again = augment_cifar(images, torch.Generator().manual_seed(1))
    other = augment_cifar(images, torch.Generator().manual_seed(2))
    assert torch.equal(out, again)
    assert not torch.equal(out, other)


def test_augment_cifar_crops_and_flips():
    # A ramp along the width: crops shift it by a constant, flips reverse its direction.
    ramp = torch.arange(1.0, 33.0).expand(256, 3, 32, 32).clone()
    out = augment_cifar(ramp, torch.Generator().manual_seed(0))
    middle = out[:, 0, 16]  # a row away from the vertical padding
    flipped = middle[:, 10] > middle[:, 20]
    assert 0.3 < flipped.float().mean() < 0.7  # about half the images are flipped
    unflipped = torch.where(flipped[:, None], middle.flip(1), middle)
    shift = unflipped[:, 12] - 13.0  # every image keeps the ramp, shifted by its crop offset
    assert set(shift.long().tolist()) == set(range(-4, 5))
    assert torch.equal(unflipped[:, 8:24] - shift[:, None], ramp[:, 0, 16, 8:24])
    # Vertical crops shift rows in too: zero padding appears at the top or bottom of some images.
    zero_rows = (out[:, 0] == 0).all(dim=2)
    assert zero_rows[:, 0].any() and zero_rows[:, -1].any() and not zero_rows[:, 4:28].any()


def test_augment_cifar_rejects_non_images():
    with pytest.raises(ConfigError, match="float image batch"):
        augment_cifar(torch.randn(4, 2))


# --- training --------------------------------------------------------------------------------


def test_train_learns_a_separable_problem():
    data = blobs()
    torch.manual_seed(0)
    model = mlp()
    loader = DataLoader(data, batch_size=SMALL.batch_size, shuffle=True)
    result = train(model, loader, SMALL, progress=False)
    assert isinstance(result, TrainResult)
    assert [row["epoch"] for row in result.history] == list(range(1, SMALL.epochs + 1))
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy(model, data) > 0.97
    assert not model.training  # left in eval mode
    assert result.wall_time_s >= result.history[-1]["elapsed_s"] > 0


def test_history_follows_the_linear_lr_decay():
    recipe = SMALL.replace(epochs=4, lr=0.2, lr_end_factor=0.1)
    loader = DataLoader(blobs(64), batch_size=recipe.batch_size)
    history = train(mlp(), loader, recipe, progress=False).history
    # LinearLR from 1.0 to end_factor over `epochs` steps, one step per epoch.
    expected = [0.2 * (1 + (0.1 - 1) * e / 4) for e in range(4)]
    assert [row["lr"] for row in history] == pytest.approx(expected)
    assert set(history[0]) == {"epoch", "loss", "lr", "elapsed_s"}


def _trained_cnn(seed: int) -> nn.Module:
    torch.manual_seed(123)  # same initial weights; only train's seed varies
    model = TinyCNN()
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(48, 3, 8, 8, generator=g), torch.arange(48) % 2)
    recipe = SMALL.replace(epochs=2, batch_size=16, augment="cifar")
    train(model, DataLoader(data, batch_size=16, shuffle=True), recipe, seed=seed, progress=False)
    return model


def test_same_seed_gives_identical_weights():
    first, second, other = _trained_cnn(0), _trained_cnn(0), _trained_cnn(1)
    assert same_weights(first, second)
    assert not same_weights(first, other)


def test_empty_loader_is_a_config_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ConfigError, match="at least one batch"):
        train(mlp(), empty, SMALL.replace(batch_size=1), progress=False)
    with pytest.raises(ConfigError, match="yielded none"):
        train(mlp(), iter([]), SMALL, progress=False)


def test_loader_batch_size_mismatch_warns():
    loader = DataLoader(blobs(32), batch_size=8)
    with pytest.warns(UserWarning, match="batch_size is 8 but the recipe says 32"):
        train(mlp(), loader, SMALL.replace(epochs=1), progress=False)


class BagOfWords(nn.Module):
    """A text-style model: keyword inputs, multi-hot outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(20, 4, mode="sum")

    def forward(self, input_ids, attention_mask=None):
        return self.embed(input_ids, per_sample_weights=attention_mask.float())


def test_dict_batches_train_with_multilabel_bce():
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 20, (64, 6), generator=g)
    labels = torch.stack([(input_ids % 4 == k).any(1) for k in range(4)], 1).float()
    batches = [
        {"input_ids": ids, "attention_mask": torch.ones(16, 6), "labels": targets}
        for ids, targets in zip(input_ids.split(16), labels.split(16))
    ]
    recipe = TrainRecipe(optimizer="adamw", lr=0.05, epochs=15, batch_size=16)
    history = train(BagOfWords(), batches, recipe, loss=multilabel_bce, progress=False).history
    assert len(history) == 15 and math.isfinite(history[-1]["loss"])
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


@pytest.mark.slow  # trains a transformer
def test_text_classifier_trains_on_tokenized_batches():
    from nablatau.models import TextClassifier, load_tokenizer

    tokenizer = load_tokenizer()
    texts = ["so happy today", "this is terrible", "thanks a lot", "I am scared"]
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    batch["labels"] = torch.eye(4)[:, :3]  # multi-hot over 3 labels
    torch.manual_seed(0)
    model = TextClassifier(num_labels=3)
    before = model.classifier.weight.detach().clone()
    recipe = GOEMOTIONS_RECIPE.replace(epochs=1, batch_size=4, lr=1e-3)
    history = train(model, [batch], recipe, loss=multilabel_bce, progress=False).history
    assert len(history) == 1 and math.isfinite(history[0]["loss"])
    assert not torch.equal(before, model.classifier.weight)


# --- checkpoint cache ------------------------------------------------------------------------

SPEC = {"dataset": "blobs", "n": 256, "model": "mlp", "recipe": recipe_spec(SMALL), "seed": 0}


def _trainer(calls: list):
    def train_fn(model: nn.Module) -> TrainResult:
        calls.append(1)
        loader = DataLoader(blobs(), batch_size=SMALL.batch_size, shuffle=True)
        return train(model, loader, SMALL.replace(epochs=2), progress=False)

    return train_fn


def test_cache_key_is_stable_and_order_free(tmp_path):
    cache = CheckpointCache(tmp_path)
    reordered = dict(reversed(list(SPEC.items())))
    assert cache.key(SPEC) == cache.key(reordered) and len(cache.key(SPEC)) == 16
    assert cache.key(SPEC) != cache.key({**SPEC, "seed": 1})
    assert cache.path(SPEC) == tmp_path / f"{cache.key(SPEC)}.pt"


def test_cache_root_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NABLATAU_CACHE_DIR", str(tmp_path / "env"))
    assert CheckpointCache().root == tmp_path / "env"
    monkeypatch.delenv("NABLATAU_CACHE_DIR")
    assert str(CheckpointCache().root) == "checkpoints"


def test_save_load_round_trip(tmp_path):
    cache = CheckpointCache(tmp_path / "ckpt")
    model, fresh = mlp(), mlp()
    assert cache.load(SPEC, fresh) is False
    path = cache.save(SPEC, model, {"note": "hi"})
    assert path.exists() and cache.load(SPEC, fresh) is True
    assert same_weights(model, fresh)
    assert os.listdir(tmp_path / "ckpt") == [path.name]  # the temp file was renamed, none left over
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["spec"] == SPEC and payload["extra"] == {"note": "hi"}


def test_get_or_train_trains_once_and_keeps_the_training_time(tmp_path):
    cache = CheckpointCache(tmp_path)
    calls: list = []
    torch.manual_seed(0)
    trained, info = cache.get_or_train(SPEC, mlp(), _trainer(calls))
    assert calls == [1] and info["cached"] is False and len(info["history"]) == 2
    loaded, again = cache.get_or_train(SPEC, mlp(), _trainer(calls))
    assert calls == [1] and again["cached"] is True
    assert again["wall_time_s"] == info["wall_time_s"] > 0
    assert again["history"] == info["history"] and again["path"] == info["path"]
    assert same_weights(trained, loaded)


def test_spec_is_stored_as_plain_json(tmp_path):
    cache = CheckpointCache(tmp_path)
    spec = {"recipe": recipe_spec(SMALL), "classes": (1, 2), "root": tmp_path}
    cache.save(spec, mlp())
    payload = torch.load(cache.path(spec), map_location="cpu", weights_only=True)
    assert payload["spec"]["classes"] == [1, 2] and payload["spec"]["root"] == str(tmp_path)
    assert cache.load(spec, mlp())  # the tuple and Path compare equal after the JSON round trip


def test_failed_save_leaves_no_temp_file_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    cache = CheckpointCache(tmp_path)
    path = cache.save(SPEC, mlp())
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cache.save(SPEC, mlp())
    assert os.listdir(tmp_path) == [path.name] and path.read_bytes() == before


def test_spec_mismatch_is_a_checkpoint_error(tmp_path):
    cache = CheckpointCache(tmp_path)
    other = {**SPEC, "seed": 1}
    cache.save(other, mlp())
    os.replace(cache.path(other), cache.path(SPEC))  # e.g. a file copied under the wrong name
    with pytest.raises(CheckpointError, match="another configuration.*Delete"):
        cache.load(SPEC, mlp())


def test_state_dict_that_does_not_fit_is_a_checkpoint_error(tmp_path):
    cache = CheckpointCache(tmp_path)
    cache.save(SPEC, nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3)))
    model = mlp()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(CheckpointError, match="does not fit"):
        cache.load(SPEC, model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # untouched


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupted_checkpoint_is_a_checkpoint_error_and_never_retrained_over(tmp_path, damage):
    cache = CheckpointCache(tmp_path)
    path = cache.save(SPEC, mlp())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a checkpoint\x00" * 10)
    calls: list = []
    with pytest.raises(CheckpointError, match="corrupted") as info:
        cache.get_or_train(SPEC, mlp(), _trainer(calls))
    assert str(path) in str(info.value) and "Delete" in str(info.value)
    assert calls == []


class Custom:
    pass


def test_checkpoints_load_with_weights_only(tmp_path):
    cache = CheckpointCache(tmp_path)
    # A pickled arbitrary object would run code on load; weights_only refuses it.
    torch.save({"spec": SPEC, "state_dict": mlp().state_dict(), "extra": Custom()}, cache.path(SPEC))
    with pytest.raises(CheckpointError, match="corrupted"):
        cache.load(SPEC, mlp())
    with pytest.raises(ConfigError, match="JSON-like"):
        cache.save(SPEC, mlp(), {"tensor": torch.zeros(2)})
    assert not any(tmp_path.glob("*.tmp")) and not any(tmp_path.glob(".*.tmp"))


def test_diverging_training_raises_and_is_not_cached(tmp_path):
    from nablatau.errors import DivergenceError
    from nablatau.train import CheckpointCache, TrainRecipe, train

    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    x[5] = float("nan")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    recipe = TrainRecipe(optimizer="sgd", lr=0.1, epochs=2, batch_size=8)
    cache = CheckpointCache(tmp_path)
    with pytest.raises(DivergenceError, match="training loss became nan in epoch 1"):
        cache.get_or_train({"run": "nan"}, torch.nn.Linear(4, 3),
                           lambda model: train(model, loader, recipe, progress=False))
    assert not list(tmp_path.iterdir())
