"""Results files: atomic, keyed by the config, recording versions and device."""

import json

import pytest

from nablatau.results import load_results, run_id, save_results
from nablatau.train import CIFAR_RECIPE


def test_results_round_trip_with_environment_and_plain_recipe(tmp_path):
    config = {"profile": "smoke", "seed": 0, "settings": {"recipe": CIFAR_RECIPE}}
    models = {"original": {"test_acc": 0.5, "mia_loss": 0.7, "runtime_s": 1.0}}
    path = save_results(tmp_path, "quickstart", config=config, models=models)
    assert path.parent == tmp_path / "quickstart" and path.stem == run_id(config)
    saved = load_results(path)
    assert saved["models"] == models
    assert saved["config"]["settings"]["recipe"]["lr"] == CIFAR_RECIPE.lr
    assert {"torch", "torchvision", "device", "python", "finished_at"} <= saved["environment"].keys()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


def test_same_config_same_file_and_unserialisable_values_keep_the_old_file(tmp_path):
    first = save_results(tmp_path, "nb", config={"a": 1}, models={"m": {"x": 1}})
    assert save_results(tmp_path, "nb", config={"a": 1}, models={"m": {"x": 2}}) == first
    assert save_results(tmp_path, "nb", config={"a": 2}, models={}) != first
    with pytest.raises(TypeError, match="not JSON serialisable"):
        save_results(tmp_path, "nb", config={"a": 1}, models={"m": {"x": object()}})
    assert json.loads(first.read_text())["models"] == {"m": {"x": 2}}
    assert sorted(p.name for p in first.parent.iterdir()) == sorted({first.name, run_id({"a": 2}) + ".json"})


def test_results_path_is_where_save_results_writes(tmp_path):
    from nablatau.results import results_path
    config = {"profile": "smoke", "forget_fraction": 0.3}
    expected = results_path(tmp_path, "subset_removal", config)
    assert not expected.exists()
    assert save_results(tmp_path, "subset_removal", config=config, models={}) == expected
    assert expected.exists()
