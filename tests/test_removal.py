"""The image removal experiments (run_removal): schema, resuming, class removal, failures, bad inputs.

Real CIFAR-10 in the smoke profile (400 training images, 2 training epochs): seconds per run.
"""

import json
import shutil

import pytest

import nablatau.runner as runner
from nablatau import baselines, methods
from nablatau.data import load_cifar
from nablatau.errors import ConfigError, DivergenceError
from nablatau.profiles import IMAGE_METHOD_SETTINGS
from nablatau.removal import run_removal, run_train_original, shortened_training_note
from nablatau.runs import RemovalRun
from nablatau.setups import TRACKED_METHODS
from nablatau.spec import Spec
from nablatau.tables import closest_to_retrain

SCHEMA = {"retain_acc", "forget_acc", "test_acc", "mia_loss", "mia_entropy", "runtime_s", "mia_loss_auc", "forget_ks",
          "forget_ks_pvalue", "kl_forget", "kl_test"}
METHODS = ["nablatau", "ssd"]


@pytest.fixture(scope="module")
def cifar(real_data_dir):
    return load_cifar("cifar10", real_data_dir)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    # One cache for the module's runs (the original trains once); results go to each test's tmp_path.
    folder = tmp_path_factory.getbasetemp() / "removal-checkpoints"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NABLATAU_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, cifar, cache):
    """One smoke subset removal (∇τ and SSD): the schema test reads it, the resume test copies and resumes it."""
    return _run(tmp_path_factory.mktemp("first-run"), cifar)


def _run(tmp_path, cifar, **kwargs):
    options = dict(profile="smoke", forget_fraction=0.15, methods=METHODS, output_dir=tmp_path, data=cifar,
                   progress=False)
    return run_removal("subset_removal", **{**options, **kwargs})


@pytest.mark.slow  # run_removal: trains ResNet-18s on real CIFAR-10
def test_subset_removal_writes_the_schema_for_every_model(first_run):
    run = first_run
    saved = json.loads(run.path.read_text())
    assert run.path.parent.name == "subset_removal"
    assert list(saved["models"]) == ["original", "retrain", "retrain_2", *METHODS]
    for name, metrics in saved["models"].items():
        assert SCHEMA <= metrics.keys(), name
        # Both loss attacks on every model; a reference calibrated by the other only. 100 held-out samples resolve
        # a 1 % false-positive rate.
        assert {"population_auc", "calibrated_auc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr"} <= metrics.keys(), name
        assert metrics["calibrated_by"] == [r for r in ("retrain", "retrain_2") if r != name], name
        assert all(0 <= metrics[k] <= 1 for k in SCHEMA - {"runtime_s", "kl_forget", "kl_test"}), name
        assert metrics["kl_forget"] >= 0 and metrics["kl_test"] >= 0
        assert metrics["runtime_s"] > 0, name
    retrained = saved["models"]["retrain"]
    assert retrained["forget_ks"] == 0 and retrained["kl_test"] == pytest.approx(0, abs=1e-9)  # itself
    assert saved["models"]["original"]["kl_forget"] > 0
    assert isinstance(retrained["reference_problems"], list) and retrained["config"]["last_batch"] == "dropped"
    second = saved["models"]["retrain_2"]
    assert second["config"]["seed"] == retrained["config"]["seed"] + 1000 and second["n_test"] == 100
    assert 0 < saved["models"]["original"]["label_prior_test_acc"] < 0.5
    history = saved["models"]["nablatau"]["history"]
    assert len(history) == saved["models"]["nablatau"]["config"]["epochs"]
    assert {"mia_loss", "test_acc", "alpha", "forget_loss"} <= history[0].keys()  # tracked after every epoch
    assert len(saved["models"]["retrain"]["history"]) == saved["config"]["settings"]["recipe"]["epochs"]
    losses = saved["models"]["original"]["sample_losses"]
    assert len(losses["forget"]) == 60 and len(losses["test"]) == 100  # 15 % of 400; half of 200 held out
    assert saved["config"]["forget_fraction"] == 0.15 and saved["config"]["split_seed"] == 42
    assert saved["config"]["method_settings"] == json.loads(json.dumps(IMAGE_METHOD_SETTINGS))
    assert {"torch", "device"} <= saved["environment"].keys()
    assert list(run.table.index) == ["original", "retrain", "retrain_2", *METHODS]
    assert run.table.loc["retrain", "runtime_vs_retrain"] == 1.0


@pytest.mark.slow  # run_removal: trains ResNet-18s on real CIFAR-10
def test_a_rerun_reuses_finished_results_and_resumes_missing_models(tmp_path, cifar, first_run, monkeypatch):
    first = first_run
    shutil.copytree(first.path.parent, tmp_path / "subset_removal")  # the same parameters: the same file name
    copied = tmp_path / "subset_removal" / first.path.name
    monkeypatch.setattr(runner, "original_model", _must_not_run)
    again = _run(tmp_path, cifar)  # everything measured: no model is even loaded
    assert again.path == copied and again.models == json.loads(json.dumps(first.models))

    monkeypatch.undo()
    saved = json.loads(copied.read_text())
    del saved["models"]["ssd"]
    copied.write_text(json.dumps(saved))
    calls = []
    monkeypatch.setitem(methods.METHODS, "ssd", _counting(baselines.ssd, calls))
    retrained, load_retrained = [], runner.retrained_model  # loaded to compare with, never trained again
    monkeypatch.setattr(runner, "retrained_model", lambda setup, reference="retrain":
                        retrained.append(load_retrained(setup, reference)) or retrained[-1])
    resumed = _run(tmp_path, cifar)
    assert [info["cached"] for _, info in retrained] == [True]
    assert calls == ["ssd"] and resumed.models["nablatau"] == saved["models"]["nablatau"]
    assert SCHEMA <= resumed.models["ssd"].keys()


@pytest.mark.slow  # run_removal: trains ResNet-18s on real CIFAR-10
def test_class_removal_attacks_against_held_out_samples_of_the_forgotten_class(tmp_path, cifar, cache):
    run = run_removal("class_removal", profile="smoke", forget_classes=[0], methods=["bad_teacher"],
                      output_dir=tmp_path, data=cifar, progress=False)
    original = run.models["original"]
    assert {"test_forget_class_acc", "test_other_classes_acc"} <= original.keys()
    assert set(original["sample_losses"]) == {"forget", "test_forget_class"}
    assert run.models["retrain"]["forget_acc"] == 0.0  # never saw the class, so never predicts it
    assert run.models["retrain"]["test_forget_class_acc"] == 0.0
    assert {"test_forget_class_acc", "test_other_classes_acc"} <= set(run.table.columns)


@pytest.mark.slow  # run_removal: trains ResNet-18s on real CIFAR-10
def test_a_diverging_method_is_recorded_and_the_others_still_run(tmp_path, cifar, cache, monkeypatch):
    def diverges(*args, **kwargs):
        raise DivergenceError("loss became nan; lower lr", epoch=0, step=3)

    monkeypatch.setitem(methods.METHODS, "ssd", diverges)
    run = _run(tmp_path, cifar, methods=["ssd", "bad_teacher"])
    assert "loss became nan" in run.failed["ssd"]
    assert SCHEMA <= run.models["bad_teacher"].keys()
    assert "ssd" not in run.measured and "ssd" not in run.table.index


@pytest.mark.slow  # run_removal: trains ResNet-18s on real CIFAR-10
def test_train_original_measures_the_membership_gap_and_reuses_its_results(tmp_path, cifar, cache, monkeypatch, capsys):
    run = run_train_original(profile="smoke", output_dir=tmp_path, data=cifar, progress=False)
    original = run.models["original"]
    assert original["n_train"] == 400 and original["n_test"] == 100
    assert {"train_acc", "test_acc", "mia_loss", "history"} <= original.keys()
    assert run.path.parent == tmp_path / "train_original"

    # Run again with the same parameters: the results file is reused as it is; no data is loaded (data=None would
    # load CIFAR-10), no model trained or measured, and the file is not rewritten.
    written = run.path.stat().st_mtime_ns
    monkeypatch.setattr("nablatau.setups.load_cifar", lambda *args, **kwargs: pytest.fail("loaded the data again"))
    again = run_train_original(profile="smoke", output_dir=tmp_path, data=None, progress=False)
    assert again.path == run.path and again.models == run.models and run.path.stat().st_mtime_ns == written
    assert "already measured" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, message", [
    (dict(forget_fraction=None), "pass exactly one of forget_fraction"),
    (dict(forget_fraction=0.1, forget_classes=[1]), "pass exactly one of forget_fraction"),
    (dict(forget_fraction=1.5), r"forget_fraction must be in \(0, 1\)"),
    (dict(forget_fraction=None, forget_classes=[]), "non-empty list of class ids"),
    (dict(forget_fraction=None, forget_classes=["cat"]), "non-empty list of class ids"),
    (dict(forget_fraction=None, forget_classes=[3, 10]), "cifar10 has classes 0 to 9; pick class ids below 10"),
    (dict(forget_fraction=None, forget_classes=list(range(10))), "removes every class"),
    (dict(forget_fraction=0.01), r"forgets 4, fewer than one unlearning batch \(8\); use forget_fraction >= 0.02"),
    (dict(dataset="mnist"), "unknown image data set 'mnist'"),
    (dict(train_epochs=0), "train_epochs must be a positive integer"),
    (dict(train_epochs=2.5), "train_epochs must be a positive integer"),
])
def test_bad_forget_settings_are_errors(kwargs, message):
    options = dict(notebook="nb", dataset="cifar10", profile="smoke", forget_fraction=0.1, forget_classes=None,
                   seed=0, split_seed=42)
    with pytest.raises(ConfigError, match=message):
        Spec("removal", "original", **{**options, **kwargs})


@pytest.mark.parametrize("methods, message", [
    (["nablatau", "sdd"], "unknown method 'sdd'"),
    (["retrain"], "always run as the reference models"),
])
def test_bad_methods_fail_before_any_training(tmp_path, methods, message, monkeypatch):
    monkeypatch.setattr(runner, "original_model", _must_not_run)
    with pytest.raises(ConfigError, match=message):
        run_removal("subset_removal", profile="smoke", forget_fraction=0.1, methods=methods, output_dir=tmp_path)


@pytest.mark.slow  # run_removal: trains ResNet-18s on real CIFAR-10
def test_an_unsound_retrained_model_is_flagged_in_the_results_file(tmp_path, cifar, cache, monkeypatch):
    def untrained(setup, reference="retrain"):  # retrained models that never trained: test accuracy near chance
        return setup.build_model().to(setup.device).eval(), {"wall_time_s": 1.0, "history": [{"loss": 9.9}]}

    monkeypatch.setattr(runner, "retrained_model", untrained)
    run = _run(tmp_path, cifar, methods=["ssd"])
    saved = json.loads(run.path.read_text())
    problems = saved["models"]["retrain"]["reference_problems"]
    # Each reference's loss is far above the original's (whether two untrained models agree is beside the point).
    health = [problem for problem in problems if "final training loss" in problem]
    assert run.reference_problems == problems and len(health) == 2
    assert "retrain's final training loss 9.900" in health[0] and "retrain_2's final training loss 9.900" in health[1]


@pytest.mark.slow  # run_removal: trains ResNet-18s on real CIFAR-10
def test_the_curves_measure_chosen_epochs_and_the_numbers_do_not_depend_on_which(tmp_path, cifar, cache, monkeypatch):
    # Forgetting 3 % of smoke's 400 images runs ∇τ for more epochs than the curves measure. Finetuning is
    # tracked through the same callback (setups.TRACKED_METHODS); running it too would only double the cost.
    assert set(TRACKED_METHODS) == {"nablatau", "finetune"}
    options = dict(forget_fraction=0.03, methods=["nablatau"])
    thinned = _run(tmp_path / "thinned", cifar, **options)
    monkeypatch.setattr(runner, "TRACKED_EVERY", 1)  # every epoch measured, as before the curves were thinned
    every = _run(tmp_path / "every", cifar, **options)
    for name in options["methods"]:
        history, full = thinned.models[name]["history"], every.models[name]["history"]
        last = len(history) - 1
        assert last >= runner.TRACKED_FIRST_EPOCHS + 2 * 5, (name, last)  # thinning happened
        measured = [row["epoch"] for row in history if "mia_loss" in row]
        assert measured == [epoch for epoch in range(last) if epoch < 10 or (epoch + 1) % 5 == 0] + [last], name
        assert all("mia_loss" in row for row in full), name
        for row in history:  # the measured epochs are the ones an every-epoch run measures, to the digit
            if "mia_loss" in row:
                assert {key: row[key] for key in runner.TRACKED_METRICS} == \
                    {key: full[row["epoch"]][key] for key in runner.TRACKED_METRICS}, (name, row["epoch"])
        # the last point is the final measurement, and measuring fewer epochs changes no number
        assert {key: history[-1][key] for key in runner.TRACKED_METRICS} == \
            {key: thinned.models[name][key] for key in runner.TRACKED_METRICS}, name
        assert {key: thinned.models[name][key] for key in SCHEMA - {"runtime_s"}} == \
            {key: every.models[name][key] for key in SCHEMA - {"runtime_s"}}, name


def test_shortened_training_is_recorded_and_said_and_an_unshortened_config_is_unchanged():
    options = dict(notebook="subset_removal", dataset="cifar10", profile="paper", forget_fraction=0.15,
                   forget_classes=None, seed=1, split_seed=42)
    def removal_config(**kwargs):
        return Spec("removal", "original", **kwargs).config

    plain, shortened = removal_config(**options), removal_config(**options, train_epochs=25)
    assert "shortened_training" not in plain and plain["settings"]["recipe"].epochs == 50
    assert removal_config(**options, train_epochs=50) == plain  # the profile's own epochs: the same run id
    assert shortened["shortened_training"] == {"profile_epochs": 50, "epochs": 25}
    assert shortened["settings"]["recipe"] == plain["settings"]["recipe"].replace(epochs=25)
    assert shortened["method_settings"] == plain["method_settings"]  # ∇τ and the baselines untouched
    runs = {1: RemovalRun(json.loads(json.dumps(shortened, default=str)), {}, None)}
    assert shortened_training_note(runs).startswith("SHORTENED TRAINING: the original and the retrained model "
                                                    "trained 25 epochs, not the paper profile's 50")
    assert shortened_training_note({1: RemovalRun(plain, {}, None)}) == ""


def test_a_text_fraction_too_small_for_one_batch_fails_before_loading_anything(monkeypatch):
    from nablatau import removal, setups

    monkeypatch.setattr(setups, "text_setup", _must_not_run)
    with pytest.raises(ConfigError, match=r"forgets 4, fewer than one unlearning batch \(8\)"):
        removal.run_text_removal(profile="smoke", forget_fraction=0.05)


def test_closest_to_retrain_says_when_nablatau_is_not_closest():
    models = {"original": {"mia_loss": 0.9}, "retrain": {"mia_loss": 0.5}, "nablatau": {"mia_loss": 0.6},
              "finetune": {"mia_loss": 0.52}}
    sentence = closest_to_retrain(models)
    assert sentence.startswith("Closest to the retrained model's mia_loss: finetune (0.020), nablatau (0.100)")
    assert "∇τ is NOT the closest method: it ranks 2 of 2" in sentence
    models["nablatau"]["mia_loss"] = 0.5
    assert "∇τ is the closest method" in closest_to_retrain(models)
    models["finetune"]["mia_loss"] = 0.5002  # the same gap as printed: a tie, not a win
    assert "∇τ is tied for the closest method with finetune" in closest_to_retrain(models)


def _must_not_run(*args, **kwargs):
    raise AssertionError("this should have come from the results file")


def _counting(function, calls):
    def wrapper(*args, **kwargs):
        calls.append(function.__name__)
        return function(*args, **kwargs)
    return wrapper
