"""The experiment runner: original → split → retrain → every method → measure → save, written once.

Every removal experiment — random subset and class removal on images, text removal, the quickstart,
the benchmark — is a :class:`Setup` (its data, model and task, built by :mod:`nablatau.removal`) run
by :func:`run_experiment`:

1. the original model is trained once on the whole training set, then loaded from the checkpoint
   cache (:func:`original_model`; keys from :func:`checkpoint_key`, the one definition of them);
2. the gold standard is trained from scratch on the retain split with the original's recipe
   (:func:`retrained_model`);
3. every method runs on its own copy of the original, with fresh loaders seeded alike
   (:func:`run_method`), so its batches do not depend on which methods ran before it;
4. every model is measured the same way, on loaders in a fixed order (:func:`measuring_loaders`):
   the attack's cross-validation folds follow the sample order, and a shuffled loader's order
   depends on how often it was iterated;
5. the results file is saved after every model, so a rerun (or one after a crash) skips every model
   already measured and gives the numbers of an uninterrupted run. A method that raises
   :class:`~nablatau.errors.DivergenceError` is recorded with its error and the others go on.

∇τ and finetuning (:data:`TRACKED_METHODS`) are also measured after their first epochs and then every
few epochs on image runs, for the curves (:func:`is_tracked_epoch`). The α₀ sweep's cells
(:func:`nablatau.sweep.run_cell`) use the same pieces one model at a time: :func:`checkpoint_key`,
:func:`trained_model` and :func:`default_device`.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from .batches import default_device
from .data import UnlearningSplits, labels_of, loaders
from .errors import ConfigError, DivergenceError, raise_if_any
from .metrics import evaluate, label_prior_accuracy
from .mia import predict
from .losses import PerSampleLoss, cross_entropy
from .methods import method
from .results import load_results, plain, results_path, save_results
from .tables import TABLE_COLUMNS, TEXT_TABLE_COLUMNS, results_table, round_accuracy
from .train import LAST_BATCH, CheckpointCache, TrainRecipe, recipe_spec, train, training_loader
from .nabla_tau import UnlearnResult

#: Models every removal run has besides the methods.
REFERENCE_MODELS = ("original", "retrain")

#: Methods measured over their epochs (:func:`is_tracked_epoch`), for the MIA and test-accuracy curves.
TRACKED_METHODS = ("nablatau", "finetune")

#: The splits on which every model's predictions are compared with the retrained model's (KL divergence).
RETRAIN_COMPARED = ("forget", "test")

#: The largest drop in test accuracy from the original to the retrained model that :func:`reference_problems`
#: accepts for random-subset removal, and how far above the original's final training loss the retrained
#: model's may end (both more than this many times it and more than this much above it, to be flagged).
MAX_RETRAIN_TEST_DROP = 0.05
MAX_RETRAIN_LOSS_RATIO = 2.0
MAX_RETRAIN_LOSS_GAP = 0.1

#: What the per-epoch measurement records.
TRACKED_METRICS = ("mia_loss", "mia_entropy", "test_acc", "forget_acc")

#: The curves measure every one of a method's first :data:`TRACKED_FIRST_EPOCHS` epochs (∇τ's dip and
#: recovery happen there), then every :data:`TRACKED_EVERY`-th, and always the last.
TRACKED_FIRST_EPOCHS = 10
TRACKED_EVERY = 5


def is_tracked_epoch(epoch: int) -> bool:
    """Whether the curves measure the model after ``epoch`` (0-based); the last epoch is added from the final
    measurement (:func:`run_experiment`).

    Forgetting a small fraction gives ∇τ and finetuning many short epochs, and measuring after each of them
    would cost more than the unlearning itself; the dip and recovery happen in the first epochs.

        >>> [epoch for epoch in range(30) if is_tracked_epoch(epoch)]
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 19, 24, 29]
    """
    return epoch < TRACKED_FIRST_EPOCHS or (epoch + 1) % TRACKED_EVERY == 0


def curve_end(history: Sequence[Mapping[str, Any]], final: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``history`` whose last epoch carries the final measurement's :data:`TRACKED_METRICS`: the curve ends where
    the model ended (the last epoch need not be a tracked one).

        >>> curve_end([{"epoch": 0}, {"epoch": 1}], {"mia_loss": 0.5, "mia_entropy": 0.5, "test_acc": 0.4,
        ...                                            "forget_acc": 0.6, "kl_test": 0.1})[-1]
        {'epoch': 1, 'mia_loss': 0.5, 'mia_entropy': 0.5, 'test_acc': 0.4, 'forget_acc': 0.6}
    """
    if not history:
        return list(history)
    return [*history[:-1], {**history[-1], **{key: final[key] for key in TRACKED_METRICS}}]


# --- Trained models, cached ------------------------------------------------------------------------


def checkpoint_key(settings: Mapping[str, Any], role: str = "original", *, dataset: str,
                   **forget: Any) -> dict[str, Any]:
    """What determines a trained model's weights besides its training set, recipe and seed.

    The one definition of checkpoint keys, for every notebook, the sweep, the benchmark and the tests,
    so they share cached checkpoints. Image models (``settings["experiment"] == "image"``) are ResNet-18s;
    text models add the encoder, pooling, maximum length and the dev/test subset sizes.

        >>> from nablatau.profiles import resolve_profile
        >>> checkpoint_key(resolve_profile("smoke"), "retrain", dataset="cifar10", forget_classes=[3])
        {'role': 'retrain', 'dataset': 'cifar10', 'model': 'resnet18', 'forget_classes': [3]}

    Args:
        settings: the resolved profile (:func:`nablatau.profiles.resolve_profile`).
        role: ``"original"`` (the whole training set) or ``"retrain"`` (the retain split only).
        dataset: the data set's name, e.g. ``"cifar10"`` or ``"goemotions"``.
        forget: for ``"retrain"``, what was removed: ``forget_fraction`` and ``split_seed``, or
            ``forget_classes``.

    Raises:
        ConfigError: an unknown role or forget key, or a retrained model without a forget set.
    """
    problems = []
    if role not in REFERENCE_MODELS:
        problems.append(f"role must be one of {list(REFERENCE_MODELS)}, got {role!r}")
    unknown = sorted(set(forget) - {"forget_fraction", "split_seed", "forget_classes"})
    if unknown:
        problems.append(f"unknown forget keys {unknown}; pass forget_fraction and split_seed, or forget_classes")
    if (role == "retrain") != bool(forget):
        problems.append("a retrained model's key names its forget set (forget_fraction and split_seed, or "
                        f"forget_classes) and the original's names none; got role {role!r} with {forget}")
    raise_if_any(problems)
    if settings["experiment"] == "text":
        model = {"model": "text-classifier", **{name: settings[name] for name in
                                                 ("encoder", "pooling", "max_length", "n_val", "n_test")}}
    else:
        model = {"model": "resnet18"}
    return {"role": role, "dataset": dataset, **model, **forget}


def trained_model(build_model: Callable[[], nn.Module], train_set: Dataset, settings: Mapping[str, Any], *,
                  key: Mapping[str, Any], loss: PerSampleLoss = cross_entropy, collate_fn: Callable | None = None,
                  seed: int = 0, cache: CheckpointCache | None = None, device: torch.device | None = None,
                  progress: bool = True) -> tuple[nn.Module, dict]:
    """``build_model()`` trained on ``train_set`` with the profile's recipe, or loaded from the cache.

    The model is built right after seeding torch with ``seed``, so its initial weights, and with them
    the trained weights on the CPU, are the same for the same seed.

    Args:
        build_model: makes the untrained model.
        train_set: what it trains on.
        settings: the resolved profile; its ``recipe`` is the training recipe.
        key: what else determines the weights (:func:`checkpoint_key`); the training-set size, recipe
            and seed are added.
        loss, collate_fn: the per-sample loss and the batch collation (text).
        seed: initial weights and batch order.
        cache: default ``CheckpointCache()`` (``$NABLATAU_CACHE_DIR`` or ``./checkpoints``).
        device: default :func:`default_device`.
        progress: show a progress bar while training.

    Returns:
        ``(model on device, info)``: ``info`` holds ``cached``, ``path``, the training wall time and
        history (recorded at training time, so also when the model comes from the cache).
    """
    device = device or default_device()
    recipe: TrainRecipe = settings["recipe"]
    spec = {**key, "n_train": len(train_set), "recipe": recipe_spec(recipe), "seed": seed, "last_batch": LAST_BATCH}
    loader = training_loader(train_set, recipe.batch_size, generator=torch.Generator().manual_seed(seed),
                             collate_fn=collate_fn, device=device)
    torch.manual_seed(seed)
    cache = cache or CheckpointCache()
    # Per-epoch progress beside the cache: on a CPU a paper-scale training can outlast the process running it.
    model, info = cache.get_or_train(
        spec, build_model().to(device),
        lambda fresh: train(fresh, loader, recipe, loss=loss, seed=seed, progress=progress,
                            resume_from=cache.progress_path(spec)))
    return model.to(device), info


# --- Methods -------------------------------------------------------------------------------------


#: Settings the runner itself reads (and removes) before calling a method.
RUNNER_SETTINGS = ("batch_size",)


def check_methods(methods: Sequence[str], method_settings: Mapping[str, Mapping[str, Any]]) -> None:
    """Fail before any work on an unknown method, a setting a method does not take, or settings of no method.

    Methods are looked up in :data:`nablatau.methods.METHODS`. A method that also takes ``**kwargs``
    (the baselines' shared settings) refuses unknown ones itself, with a ``TypeError``, when it is called.

    Raises:
        ConfigError: listing every problem, with the valid names.
    """
    problems = []
    for name in methods:
        try:
            parameters = inspect.signature(method(name)).parameters
        except ConfigError as error:
            problems.append(str(error))
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            continue
        unknown = sorted(set(method_settings.get(name, {})) - set(parameters) - set(RUNNER_SETTINGS))
        if unknown:
            problems.append(f"{name} takes no settings {unknown}; its settings are "
                            f"{sorted(set(parameters) - {'model', 'forget', 'retain', 'val'})}")
    unused = sorted(set(method_settings) - set(methods))
    if unused:
        problems.append(f"method_settings names methods that are not run: {unused}; add them to methods")
    raise_if_any(problems)


def run_method(name: str, model: nn.Module, splits: UnlearningSplits, settings: Mapping[str, Any], *,
               batch_size: int, seed: int = 0, task: str = "multiclass", collate_fn: Callable | None = None,
               device: torch.device | None = None, callback: Callable | None = None,
               progress: bool = True) -> UnlearnResult:
    """Run method ``name`` of :data:`nablatau.methods.METHODS` on ``model`` (in place) with fresh loaders over
    ``splits``, seeded with ``seed``.

    Fresh, identically seeded loaders for every method: its batches do not depend on which methods
    ran before it, so a resumed run gives the numbers of an uninterrupted one. ``settings`` are the
    method's keyword arguments; a ``batch_size`` among them replaces ``batch_size`` for its loaders, and
    ``task`` is the experiment's unless they name one, so every method's config records the task it ran.

    Raises:
        DivergenceError: the method diverged (its history is attached).
    """
    settings = {"task": task, **settings}
    batches = loaders(splits, batch_size=settings.pop("batch_size", batch_size), seed=seed, collate_fn=collate_fn,
                      device=device)
    return method(name)(model, batches["forget"], batches["retain"], batches["val"], seed=seed, progress=progress,
                        callback=callback, **settings)


def measuring_loaders(splits: UnlearningSplits | Mapping[str, Dataset], batch_size: int, *,
                      collate_fn: Callable | None = None, device: torch.device | None = None) -> dict[str, Any]:
    """Loaders in a fixed order of every split but ``val``: what every model is measured on."""
    in_order = loaders(splits, batch_size=batch_size, collate_fn=collate_fn, device=device, shuffle=False)
    return {name: loader for name, loader in in_order.items() if name != "val"}


# --- Is the gold standard sound? -------------------------------------------------------------------


def reference_problems(original: Mapping[str, Any], retrained: Mapping[str, Any], *,
                       subset_removal: bool = True) -> list[str]:
    """Why the retrained model is not a sound gold standard to compare with; empty when it is.

    Retraining without a random few percent of the data should land near the original. Two signs that
    it did not train properly (the failure they were made for: every epoch ended on a 4-sample batch at
    lr 0.1, which :func:`nablatau.train.training_loader` drops; docs/profiles.md):

    - random-subset removal only: its test accuracy more than :data:`MAX_RETRAIN_TEST_DROP` below the
      original's (removing classes lowers the test accuracy by design);
    - its final training loss more than :data:`MAX_RETRAIN_LOSS_RATIO` times the original's and more
      than :data:`MAX_RETRAIN_LOSS_GAP` above it. The gap matters near zero, where a sound retraining
      on fewer images can end at several times the original's tiny loss.

    The runner stores the result in the results file (``models["retrain"]["reference_problems"]``)
    and the notebooks show it above every comparison; nothing is dropped or retrained.

        >>> problems = reference_problems({"test_acc": 0.79, "history": [{"loss": 0.50}]},
        ...                               {"test_acc": 0.50, "history": [{"loss": 1.44}]})
        >>> print(problems[0][:60])
        the retrained model's test accuracy 0.500 is 0.290 below the
    """
    problems = []
    drop = round_accuracy(original["test_acc"] - retrained["test_acc"])
    if subset_removal and drop > MAX_RETRAIN_TEST_DROP:
        problems.append(f"the retrained model's test accuracy {retrained['test_acc']:.3f} is {drop:.3f} below the "
                        f"original's {original['test_acc']:.3f} (more than {MAX_RETRAIN_TEST_DROP}): check its "
                        "training curve before comparing any method with it")
    losses = [history[-1]["loss"] if history else None
              for history in (original.get("history"), retrained.get("history"))]
    if (None not in losses and losses[1] > MAX_RETRAIN_LOSS_RATIO * losses[0]
            and losses[1] - losses[0] > MAX_RETRAIN_LOSS_GAP):
        problems.append(f"the retrained model's final training loss {losses[1]:.3f} is more than "
                        f"{MAX_RETRAIN_LOSS_RATIO:g} times the original's {losses[0]:.3f} and {MAX_RETRAIN_LOSS_GAP} "
                        "above it: it did not train as the original did")
    return problems


# --- One experiment --------------------------------------------------------------------------------


@dataclass
class Setup:
    """A removal experiment, loaded: its data, its model and how each model is trained and measured.

    :mod:`nablatau.removal` builds one per experiment (images, text); :func:`run_experiment` runs it.
    """

    settings: dict[str, Any]  # the resolved profile: recipe, unlearn_batch_size, ...
    dataset: str  # names the checkpoints (:func:`checkpoint_key`)
    train_set: Dataset  # the original's training set
    splits: UnlearningSplits  # retain/forget from train_set; val/test (and extras) held out
    build_model: Callable[[], nn.Module]
    forget: dict[str, Any]  # what is removed: forget_fraction and split_seed, or forget_classes
    method_settings: Mapping[str, Mapping[str, Any]]  # keyword arguments per method
    seed: int = 0  # model initialisation, loader order, every method's seed and the attack's
    loss: PerSampleLoss = cross_entropy
    task: str = "multiclass"
    collate_fn: Callable | None = None
    attack: tuple[str, str] = ("forget", "test")
    start: Callable[[nn.Module], nn.Module] = copy.deepcopy  # each method's copy of the original
    tracked: Sequence[str] = TRACKED_METHODS
    device: torch.device = field(default_factory=default_device)
    cache: CheckpointCache | None = None
    progress: bool = True

    def trained(self, role: str, train_set: Dataset) -> tuple[nn.Module, dict]:
        """The ``role`` model trained on ``train_set`` (or loaded from the cache)."""
        key = checkpoint_key(self.settings, role, dataset=self.dataset, **(self.forget if role == "retrain" else {}))
        return trained_model(self.build_model, train_set, self.settings, key=key, loss=self.loss,
                             collate_fn=self.collate_fn, seed=self.seed, cache=self.cache, device=self.device,
                             progress=self.progress)


def original_model(setup: Setup) -> tuple[nn.Module, dict]:
    """The original: trained once on the whole training set, then loaded from the checkpoint cache."""
    return setup.trained("original", setup.train_set)


def retrained_model(setup: Setup) -> tuple[nn.Module, dict]:
    """The gold standard: trained from scratch on the retain split with the original's recipe (cached too)."""
    return setup.trained("retrain", setup.splits.retain)


@dataclass
class RemovalRun:
    """What one run measured, as saved in its results file at ``path``."""

    config: dict[str, Any]
    models: dict[str, dict[str, Any]]
    path: Path

    @classmethod
    def load(cls, path: Path, wanted: Sequence[str]) -> RemovalRun:
        """The run as its results file holds it (plain JSON values), restricted to the ``wanted`` models."""
        saved = load_results(path)
        return cls(saved["config"], {name: saved["models"][name] for name in wanted}, path)

    @property
    def columns(self) -> list[str]:
        """The metrics its table shows: text runs add F1, class removal the forgotten classes' test accuracy."""
        text = self.config.get("settings", {}).get("experiment") == "text"
        columns = list(TEXT_TABLE_COLUMNS if text else TABLE_COLUMNS)
        if self.config.get("forget_classes") is not None:
            columns[3:3] = ["test_forget_class_acc", "test_other_classes_acc"]
        return columns

    @property
    def table(self) -> pd.DataFrame:
        """One row per model: its metrics, runtime and runtime relative to retraining."""
        return results_table(self.measured, columns=self.columns)

    @property
    def measured(self) -> dict[str, dict[str, Any]]:
        """The models that finished, without the ones that failed."""
        return {name: m for name, m in self.models.items() if "error" not in m}

    @property
    def reference_problems(self) -> list[str]:
        """Why the retrained model is not a sound reference (:func:`reference_problems`); empty when it is."""
        return list(self.models.get("retrain", {}).get("reference_problems", []))

    @property
    def failed(self) -> dict[str, str]:
        """``{method: error message}`` for the methods that diverged."""
        return {name: m["error"] for name, m in self.models.items() if "error" in m}

    def history(self, name: str) -> pd.DataFrame:
        """The per-epoch history of model ``name`` (training epochs for original and retrain)."""
        return pd.DataFrame(self.models[name].get("history", []))


def check_runs(runs: Mapping[int, RemovalRun], methods: Sequence[str]) -> None:
    """Assert what every seed's results file must hold: the original, the retrained model and every method
    of ``methods``, in order, each measured model with its table's fractions in [0, 1] and finite,
    non-negative KL divergences. The notebooks end with it, so nbval fails on a wrong results file.

    Raises:
        AssertionError: naming the seed, the model and the metric.
    """
    for seed, run in runs.items():
        assert list(run.models) == [*REFERENCE_MODELS, *methods], (seed, list(run.models))
        for name, metrics in run.measured.items():
            for key in run.columns:
                value = metrics[key]
                if key.startswith("kl_"):
                    assert math.isfinite(value) and value >= 0, (seed, name, key, value)
                elif key != "runtime_s":
                    assert 0 <= value <= 1, (seed, name, key, value)


def reference_report(runs: Mapping[int, RemovalRun]) -> str:
    """One line per seed whose retrained model is an unsound reference (:func:`reference_problems`), or one
    line saying every seed's is sound."""
    unsound = {seed: run.reference_problems for seed, run in runs.items() if run.reference_problems}
    if not unsound:
        return f"The retrained gold standard passed its checks for every seed ({', '.join(map(str, runs))})."
    return "\n".join(f"UNSOUND REFERENCE, seed {seed}: {'; '.join(problems)}. Its comparisons below are not "
                     "evidence either way." for seed, problems in unsound.items())


def saved_models(output_dir: str | Path, notebook: str, config: dict[str, Any],
                 wanted: Sequence[str]) -> tuple[Path, dict[str, dict[str, Any]], RemovalRun | None]:
    """What the results file of ``config`` already holds: ``(path, models, run)``.

    ``run`` is the saved :class:`RemovalRun` when every ``wanted`` model is measured (nothing is left to
    compute), else None; ``models`` are the ones measured so far, for a run to resume from.
    """
    path = results_path(output_dir, notebook, config)
    models: dict[str, dict[str, Any]] = load_results(path)["models"] if path.exists() else {}
    if not all(name in models for name in wanted):
        return path, models, None
    print(f"Every model is already measured in {path}; delete that file to measure again.")
    return path, models, RemovalRun.load(path, wanted)


def run_experiment(notebook: str, config: dict[str, Any], setup: Callable[[], Setup], *,
                   methods: Sequence[str], method_settings: Mapping[str, Mapping[str, Any]],
                   output_dir: str | Path) -> RemovalRun:
    """Run (or resume) one removal experiment: the original, the retrained model, then every method.

    Args:
        notebook: names the results folder, ``<output_dir>/<notebook>/<run-id>.json``.
        config: everything that determines the numbers; its hash names the results file.
        setup: builds the :class:`Setup` (loads the data); called only when a model is still missing.
        methods: names in :data:`nablatau.methods.METHODS` (∇τ is ``"nablatau"``); original and retrain always run.
        method_settings: keyword arguments per method (checked against each method before any work).
        output_dir: root folder of the results files.

    Returns:
        A :class:`RemovalRun`. A method that diverges is recorded with its error and the others still
        run; ``run.failed`` lists them.

    Raises:
        ConfigError: an unknown method or setting, or a reference model among ``methods``.
    """
    methods = list(dict.fromkeys(methods))
    clash = sorted(set(methods) & set(REFERENCE_MODELS))
    if clash:
        raise ConfigError(f"{clash} always run as the reference models; remove them from methods")
    check_methods(methods, {name: method_settings[name] for name in methods if name in method_settings})
    wanted = [*REFERENCE_MODELS, *methods]
    path, models, saved = saved_models(output_dir, notebook, config, wanted)
    if saved is not None:
        return saved
    todo = [name for name in wanted if name not in models]
    if models:
        print(f"Resuming {path}: {sorted(set(wanted) - set(todo))} already measured, running {todo}.")

    run = setup()
    original, original_info = original_model(run)
    batch_size = run.settings["unlearn_batch_size"]
    measured = measuring_loaders(run.splits, batch_size, collate_fn=run.collate_fn, device=run.device)
    # The retrained model first (cached after its first training): every model, the original included,
    # is compared with its predictions on the forget and test samples.
    retrained, retrained_info = retrained_model(run)
    reference = {name: predict(retrained, measured[name])[0] for name in RETRAIN_COMPARED if name in measured}

    def measure(model: nn.Module, keep_losses: bool = False) -> dict[str, Any]:
        return evaluate(model, measured, task=run.task, attack=run.attack, seed=run.seed, sample_losses=keep_losses,
                        reference=reference)

    def track(epoch: int, model: nn.Module) -> dict[str, Any]:
        if not is_tracked_epoch(epoch):
            return {}
        scores = evaluate(model, {name: measured[name] for name in dict.fromkeys([*run.attack, "test"])},
                          task=run.task, attack=run.attack, seed=run.seed)
        return {key: scores[key] for key in TRACKED_METRICS}

    for name in todo:
        if name == "original":
            models[name] = {**measure(original, keep_losses=True), "runtime_s": original_info["wall_time_s"],
                            "label_prior_test_acc": label_prior_accuracy(labels_of(run.train_set),
                                                                         labels_of(run.splits.test), run.task),
                            "history": original_info.get("history", [])}
        elif name == "retrain":
            models[name] = {**measure(retrained, keep_losses=True), "runtime_s": retrained_info["wall_time_s"],
                            "history": retrained_info.get("history", []),
                            "config": {"recipe": run.settings["recipe"], "seed": run.seed,
                                       "last_batch": LAST_BATCH, **run.forget}}
        else:
            model = run.start(original)
            try:
                result = run_method(name, model, run.splits, run.method_settings.get(name, {}), batch_size=batch_size,
                                    seed=run.seed, task=run.task, collate_fn=run.collate_fn, device=run.device,
                                    callback=track if name in run.tracked else None, progress=run.progress)
            except DivergenceError as error:  # recorded, and the other methods still run
                models[name] = {"error": str(error), "history": getattr(error, "history", [])}
                print(f"{name} diverged: {error}")
            else:
                metrics = measure(model, keep_losses=name == "nablatau")
                models[name] = {**metrics, "runtime_s": result.wall_time_s, "config": result.config,
                                "history": curve_end(result.history, metrics) if name in run.tracked
                                else result.history}
            del model
        if "original" in models and "retrain" in models:
            models["retrain"]["reference_problems"] = reference_problems(
                models["original"], models["retrain"], subset_removal="forget_classes" not in run.forget)
        save_results(output_dir, notebook, config=config, models=models)
    del retrained
    # As plain JSON values, the types a resumed run reads from its file: a fresh run returns the same thing.
    return RemovalRun(plain(config), plain({name: models[name] for name in wanted}), path)
