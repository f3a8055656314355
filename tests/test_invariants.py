"""The experiments compute the same numbers however they are reached: invariants that hold on every machine.

Smoke models are chaotic (a few hundred SGD steps at lr 0.1 on 400 images): two processors give two
different models from one seed, so no number of theirs can be pinned across machines (the portable,
pinned numbers are in ``tests/test_portable_numbers.py``). Within one process, on one machine, the CPU
kernels are deterministic, so the numbers must not depend on how a run was reached:

- **same seed, same numbers**: the original and the retrained model trained again in a fresh
  checkpoint cache, and every method recomputed, give identical metrics (images, class removal, text,
  the original's notebook and an α₀-sweep cell);
- **resumed = uninterrupted**: a run resumed from a results file cut after its first methods adds the
  missing models with the numbers of the uninterrupted run;
- **alone = after others**: a method run on its own equals the same method run after the others;
- **runner = library**: ∇τ called directly (``nablatau.unlearn`` and ``nablatau.evaluate`` on loaders
  built as documented) gives the numbers the runner saved, so a refactor of the runner cannot silently
  change what the notebooks measure.

Equal means equal: every saved number but the timings (keys ending in ``_s``) is compared exactly.
Finetuning and SCRUB, the two slowest smoke methods, are left out of these runs (the notebooks' own smoke
runs under nbval run them, and ``tests/test_baselines.py`` checks their seeding); every method's
arithmetic is pinned on the portable problem.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import nablatau
from nablatau.batches import default_device
from nablatau.data import load_cifar, load_goemotions, loaders, make_splits
from nablatau.mia import predict
from nablatau.profiles import resolve_profile
from nablatau.removal import run_removal, run_text_removal, run_train_original
from nablatau.metrics import evaluate
from nablatau.models import resnet18
from nablatau.runner import checkpoint_key, measuring_loaders, record, run_spec, trained_model
from nablatau.setups import profile_data
from nablatau.sweep import HELDOUT_SEED, MODEL_SEED, sweep_grid
from nablatau.train import CheckpointCache

pytestmark = pytest.mark.slow  # trains ResNet-18s and a text classifier on real data

SEED = 1  # the notebooks' default
FRACTION = 0.15
#: The image methods run here, in the order they run (see the module docstring for the two left out).
METHODS = ["nablatau", "ssd", "amnesiac", "neggrad_plus", "bad_teacher"]
TEXT_METHODS = ["nablatau", "ssd", "amnesiac", "bad_teacher"]


def numbers(value: Any) -> Any:
    """A results file's value without its timings (keys ending in ``_s``), as plain JSON values."""
    value = json.loads(json.dumps(value))
    if isinstance(value, dict):
        return {key: numbers(item) for key, item in value.items() if not key.endswith("_s")}
    if isinstance(value, list):
        return [numbers(item) for item in value]
    return value


def assert_same(found: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    found, expected = numbers(found), numbers(expected)
    changed = sorted(key for key in set(found) | set(expected) if found.get(key) != expected.get(key))
    assert not changed, f"{what}: {changed} differ, e.g. {changed[0]}: {found.get(changed[0])!r} != {expected.get(changed[0])!r}"


@contextmanager
def cache_dir(path: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NABLATAU_CACHE_DIR", str(path))
        yield path


@pytest.fixture(scope="module")
def cifar(real_data_dir):
    return load_cifar("cifar10", real_data_dir)


@pytest.fixture(scope="module")
def first(tmp_path_factory, cifar):
    """The uninterrupted smoke subset removal every image invariant compares with, and its checkpoint cache."""
    root = tmp_path_factory.mktemp("first")
    with cache_dir(root / "checkpoints"):
        run = subset_removal(root / "results", cifar, METHODS)
    return run, root / "checkpoints"


def subset_removal(output_dir: Path, cifar, methods):
    return run_removal("subset_removal", profile="smoke", forget_fraction=FRACTION, seed=SEED, methods=methods,
                       output_dir=output_dir, data=cifar, progress=False)


def test_the_reference_models_trained_again_in_a_fresh_cache_measure_the_same(first, cifar, tmp_path):
    run, _ = first
    with cache_dir(tmp_path / "checkpoints"):
        again = subset_removal(tmp_path / "results", cifar, [])
    for name in ("original", "retrain", "retrain_2"):
        assert_same(again.models[name], run.models[name], name)


def test_a_run_resumed_after_its_first_methods_equals_the_uninterrupted_run(first, cifar, tmp_path):
    run, checkpoints = first
    # The state a crash leaves: the results file is saved after every model, so it holds a prefix of them.
    kept = ["original", "retrain", "retrain_2", "nablatau", "ssd"]
    saved = json.loads(run.path.read_text())
    saved["models"] = {name: saved["models"][name] for name in kept}
    cut = tmp_path / "results" / "subset_removal" / run.path.name
    cut.parent.mkdir(parents=True)
    cut.write_text(json.dumps(saved))
    with cache_dir(checkpoints):
        resumed = subset_removal(tmp_path / "results", cifar, METHODS)
    assert resumed.path == cut and list(resumed.models) == ["original", "retrain", "retrain_2", *METHODS]
    # Every model is scored again from the stored losses as the file grows: the kept ones end as uninterrupted too.
    for name in ("retrain", "nablatau", "amnesiac", "neggrad_plus", "bad_teacher"):
        assert_same(resumed.models[name], run.models[name], name)


def test_a_method_run_alone_equals_the_same_method_run_after_the_others(first, cifar, tmp_path):
    run, checkpoints = first
    last = METHODS[-1]
    with cache_dir(checkpoints):
        alone = subset_removal(tmp_path / "results", cifar, [last])
    assert_same(alone.models[last], run.models[last], f"{last} alone")


def test_nablatau_called_directly_gives_the_numbers_the_runner_saved(first, cifar):
    run, checkpoints = first
    settings = resolve_profile("smoke", dataset="cifar10")
    train_set, heldout = profile_data(cifar, settings, seed=SEED)
    splits = make_splits(train_set, heldout, forget_fraction=FRACTION, seed=42)
    cache = nablatau.CheckpointCache(checkpoints)

    def trained(role, data, **forget):
        model, info = trained_model(lambda: nablatau.resnet18(10), data, settings, seed=SEED, cache=cache,
                                    key=checkpoint_key(settings, role, dataset="cifar10", **forget), progress=False)
        assert info["cached"], role  # the runner's models, not new ones
        return model

    original = trained("original", train_set)
    retrained = trained("retrain", splits.retain, forget_fraction=FRACTION, split_seed=42)
    # The loaders the runner builds: for the device it runs on (tensor data is then served resident), seeded
    # with the run's seed for unlearning, in order for measuring.
    batch, device = settings["unlearn_batch_size"], default_device()
    model = copy.deepcopy(original)
    batches = loaders(splits, batch_size=batch, seed=SEED, device=device)
    result = nablatau.unlearn(model, batches["forget"], batches["retain"], batches["val"], seed=SEED, progress=False)
    measured = {name: loader for name, loader in loaders(splits, batch_size=batch, shuffle=False, device=device).items()
                if name != "val"}
    reference = {name: predict(retrained, measured[name])[0] for name in ("forget", "test")}
    metrics = nablatau.evaluate(model, measured, seed=SEED, sample_losses=True, reference=reference)

    saved = run.models["nablatau"]
    assert_same(metrics, {key: saved[key] for key in metrics}, "nablatau")
    assert numbers(result.config) == numbers(saved["config"])
    assert [row["forget_loss"] for row in result.history] == [row["forget_loss"] for row in saved["history"]]


def test_class_removal_in_a_fresh_cache_measures_the_same(cifar, tmp_path):
    runs = []
    for attempt in ("one", "two"):
        with cache_dir(tmp_path / attempt / "checkpoints"):
            runs.append(run_removal("class_removal", profile="smoke", forget_classes=[0], seed=SEED, methods=["ssd"],
                                    output_dir=tmp_path / attempt / "results", data=cifar, progress=False))
    for name in ("original", "retrain", "ssd"):
        assert_same(runs[1].models[name], runs[0].models[name], name)


def test_the_original_models_notebook_measures_the_same_in_a_fresh_cache(cifar, tmp_path):
    runs = []
    for attempt in ("one", "two"):
        with cache_dir(tmp_path / attempt / "checkpoints"):
            runs.append(run_train_original(profile="smoke", seed=SEED, output_dir=tmp_path / attempt / "results",
                                           data=cifar, progress=False))
    assert_same(runs[1].models["original"], runs[0].models["original"], "original")


def test_text_removal_trained_again_and_a_method_run_alone_measure_the_same(real_data_dir, tmp_path):
    goemotions = load_goemotions(real_data_dir)

    def text_run(attempt, methods):
        with cache_dir(tmp_path / attempt / "checkpoints"):
            return run_text_removal(profile="smoke", forget_fraction=FRACTION, seed=SEED, methods=methods,
                                    output_dir=tmp_path / attempt / "results", data=goemotions, progress=False)

    first, again = text_run("one", TEXT_METHODS), text_run("two", TEXT_METHODS[-1:])
    for name in ("original", "retrain", TEXT_METHODS[-1]):
        assert_same(again.models[name], first.models[name], name)


def sweep_cell(cell, cifar, folder: Path) -> dict[str, Any]:
    """A sweep cell run as a Ray task runs it (:func:`nablatau.runner.run_spec`), recorded in ``folder``."""
    cache = CheckpointCache(folder / "checkpoints")
    record(cell.spec, run_spec(cell.spec, data=cifar, cache=cache, progress=False), folder)
    return json.loads(cell.spec.path(folder).read_text())


def test_a_sweep_cell_measures_the_same_in_fresh_folders(cifar, tmp_path):
    cell = sweep_grid("smoke").cells[0]
    saved = [sweep_cell(cell, cifar, tmp_path / attempt) for attempt in ("one", "two")]
    assert saved[0]["config"] == saved[1]["config"]
    assert_same(saved[1]["models"], saved[0]["models"], cell.label)


def test_a_sweep_cell_measures_as_the_removal_runs_measure(cifar, tmp_path):
    # One measuring convention: a retrain cell's saved metrics are the runner's fixed-order measurement of
    # the very model it trained (loaded back from the cache).
    cell = sweep_grid("smoke").retrain_cells[0]
    saved = sweep_cell(cell, cifar, tmp_path)["models"]["retrain"]
    settings = resolve_profile("smoke")
    train, heldout = profile_data(cifar, settings, seed=MODEL_SEED)
    splits = make_splits(train, heldout, forget_fraction=cell.fraction, seed=cell.split_seed,
                         heldout_seed=HELDOUT_SEED)
    model, info = trained_model(lambda: resnet18(cifar.num_classes), splits.retain, settings, seed=MODEL_SEED,
                                key=checkpoint_key(settings, "retrain", dataset="cifar10",
                                                   forget_fraction=cell.fraction, split_seed=cell.split_seed),
                                cache=CheckpointCache(tmp_path / "checkpoints"), progress=False)
    assert info["cached"]
    measured = evaluate(model, measuring_loaders(splits, settings["unlearn_batch_size"]), seed=MODEL_SEED)
    assert_same({key: saved[key] for key in measured}, measured, cell.label)


def test_equal_means_equal_and_timings_are_left_out():
    # The comparison must see a change in the last bit, and only timings may differ.
    assert_same({"mia_loss": 0.5, "runtime_s": 1.0, "history": [{"elapsed_s": 3}]},
                {"mia_loss": 0.5, "runtime_s": 2.0, "history": [{"elapsed_s": 4}]}, "timings")
    with pytest.raises(AssertionError, match="mia_loss"):
        assert_same({"mia_loss": 0.5}, {"mia_loss": 0.5 + 2 ** -53}, "one bit")
    with pytest.raises(AssertionError, match="kl_test"):
        assert_same({"mia_loss": 0.5}, {"mia_loss": 0.5, "kl_test": 0.1}, "a missing metric")
