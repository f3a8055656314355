"""Runs specs: trains (or loads) the models, runs the method, measures, and records the results file.

Every experiment is a set of :class:`~nablatau.spec.Spec` s, and :func:`run_spec` runs any one of them and
returns its measured model:

1. the original is trained once on the whole training set, then loaded from the checkpoint cache
   (:func:`original_model`; keys from :func:`nablatau.spec.checkpoint_key`, the one definition of them);
2. the gold standard is trained from scratch on the retain split with the original's recipe
   (:func:`retrained_model`);
3. a method runs on its own copy of the original, with fresh loaders seeded alike (:func:`run_method`),
   so its batches do not depend on which methods ran before it in the same process;
4. every model is measured the same way, on loaders in a fixed order (:func:`measuring_loaders`): the
   attack's cross-validation folds follow the sample order, and a shuffled loader's order depends on
   how often it was iterated. A comparison's models are also compared with the retrained model's
   predictions (KL divergence, KS test).

:func:`record` writes a measured model into its experiment's results file (atomically; the models a file
already holds are kept), so a rerun, or one after a crash, skips every model already measured and gives
the numbers of an uninterrupted run. :func:`run_experiment` runs an experiment's specs in this process,
sharing one :class:`Context` (data, models, predictions); :mod:`nablatau.grid` runs them as Ray tasks.
A method that raises :class:`~nablatau.errors.DivergenceError` is recorded with its error.

∇τ and finetuning are also measured after their first epochs and then every few epochs on image
removal runs, for the curves (:func:`is_tracked_epoch`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .audits import FPRS, loss_attacks
from .batches import default_device
from .data import UnlearningSplits, labels_of, loaders
from .errors import DivergenceError
from .losses import PerSampleLoss, cross_entropy
from .methods import method
from .metrics import accuracy, evaluate, label_prior_accuracy
from .mia import predict
from .nabla_tau import UnlearnResult
from .results import load_results, plain, save_results
from .runs import RemovalRun
from .setups import Setup, setup_of
from .references import final_loss, health_problems, reference_problems
from .spec import Spec, checkpoint_key, reference_seed
from .train import LAST_BATCH, CheckpointCache, TrainRecipe, recipe_spec, train, training_loader

#: The splits on which every model's predictions are compared with the retrained model's (KL divergence).
RETRAIN_COMPARED = ("forget", "test")

#: What the per-epoch measurement records.
TRACKED_METRICS = ("mia_loss", "mia_entropy", "test_acc", "forget_acc")

#: The curves measure every one of a method's first :data:`TRACKED_FIRST_EPOCHS` epochs (∇τ's dip and
#: recovery happen there), then every :data:`TRACKED_EVERY`-th, and always the last.
TRACKED_FIRST_EPOCHS = 10
TRACKED_EVERY = 5


def is_tracked_epoch(epoch: int) -> bool:
    """Whether the curves measure the model after ``epoch`` (0-based); the last epoch is added from the final
    measurement (:func:`run_spec`).

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
        key: what else determines the weights (:func:`nablatau.spec.checkpoint_key`); the training-set size, recipe
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


# --- Running a spec --------------------------------------------------------------------------------


def _trained(setup: Setup, role: str, train_set: Dataset, seed: int) -> tuple[nn.Module, dict]:
    key = checkpoint_key(setup.settings, role, dataset=setup.dataset, **(setup.forget if role == "retrain" else {}))
    return trained_model(setup.build_model, train_set, setup.settings, key=key, loss=setup.loss,
                         collate_fn=setup.collate_fn, seed=seed, cache=setup.cache, device=setup.device,
                         progress=setup.progress)


def original_model(setup: Setup) -> tuple[nn.Module, dict]:
    """The original: trained once on the whole training set, then loaded from the checkpoint cache."""
    return _trained(setup, "original", setup.train_set, setup.seed)


def retrained_model(setup: Setup, reference: str = "retrain") -> tuple[nn.Module, dict]:
    """A retrained reference: trained from scratch on the retain split with the original's recipe (cached too).
    ``"retrain"``, the gold standard, trains with the experiment's seed, ``"retrain_k"`` with
    :func:`nablatau.spec.reference_seed`."""
    return _trained(setup, "retrain", setup.splits.retain, reference_seed(setup.seed, reference))


class Context:
    """An experiment's :class:`~nablatau.setups.Setup` and what its specs share in one process: the original and
    retrained models, the measuring loaders and the retrained model's predictions, each made on first use."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self._references: dict[str, tuple[nn.Module, dict]] = {}

    @cached_property
    def original(self) -> tuple[nn.Module, dict]:
        return original_model(self.setup)

    @property
    def retrained(self) -> tuple[nn.Module, dict]:
        """The gold standard, the first retrained reference."""
        return self.trained("retrain")

    def trained(self, model: str) -> tuple[nn.Module, dict]:
        """The original or a retrained reference, trained (or loaded) once per process."""
        if model == "original":
            return self.original
        if model not in self._references:
            self._references[model] = retrained_model(self.setup, model)
        return self._references[model]

    @cached_property
    def measured(self) -> dict[str, Any]:
        setup = self.setup
        return measuring_loaders(setup.measured_splits or setup.splits, setup.settings["unlearn_batch_size"],
                                 collate_fn=setup.collate_fn, device=setup.device)

    @cached_property
    def reference(self) -> dict[str, torch.Tensor] | None:
        """The retrained model's logits on the forget and test samples, which every model is compared with."""
        if not self.setup.compare_with_retrain:
            return None
        retrained = self.retrained[0]
        return {name: predict(retrained, self.measured[name])[0] for name in RETRAIN_COMPARED if name in self.measured}

    def measure(self, model: nn.Module, sample_losses: bool = False) -> dict[str, Any]:
        setup = self.setup
        return evaluate(model, self.measured, task=setup.task, attack=setup.attack, seed=setup.seed,
                        sample_losses=sample_losses and setup.sample_losses, reference=self.reference)

    def track(self, epoch: int, model: nn.Module) -> dict[str, Any]:
        """The curves' measurement after ``epoch`` (:func:`is_tracked_epoch`), on the attack's splits and test."""
        if not is_tracked_epoch(epoch):
            return {}
        setup = self.setup
        scores = evaluate(model, {name: self.measured[name] for name in dict.fromkeys([*setup.attack, "test"])},
                          task=setup.task, attack=setup.attack, seed=setup.seed)
        return {key: scores[key] for key in TRACKED_METRICS}


def train_spec(spec: Spec, *, context: Context | None = None, **runtime: Any) -> dict[str, Any]:
    """Train ``spec``'s model into the checkpoint cache (or find it there), without measuring it.

    ``runtime``: :func:`nablatau.setups.setup_of`'s ``data``, ``device``, ``cache`` and ``progress``.
    Returns whether it was cached, its path and the training's wall time.
    """
    context = context or Context(setup_of(spec, **runtime))
    _, info = context.trained(spec.model)
    return {key: info[key] for key in ("cached", "path", "wall_time_s")}


def run_spec(spec: Spec, *, context: Context | None = None, **runtime: Any) -> dict[str, Any]:
    """Run ``spec`` and return its measured model, the entry its results file holds for it.

    Trains what it needs that the checkpoint cache lacks. A method that diverges returns its error and
    history instead of metrics. ``context``: shared with the experiment's other specs (else built from
    ``runtime``: :func:`nablatau.setups.setup_of`'s ``data``, ``device``, ``cache`` and ``progress``).
    """
    context = context or Context(setup_of(spec, **runtime))
    setup = context.setup
    if spec.model == "original":
        model, info = context.original
        if not spec.saves:  # the sweep's original only trains
            return {"runtime_s": info["wall_time_s"], "cached": info["cached"]}
        test = setup.test_set
        return {**context.measure(model, sample_losses=True), "runtime_s": info["wall_time_s"],
                "label_prior_test_acc": label_prior_accuracy(labels_of(setup.train_set), labels_of(test), setup.task),
                "n_train": len(setup.train_set), "n_test": len(test), "history": info.get("history", [])}
    if spec.trains:
        model, info = context.trained(spec.model)
        entry = {**context.measure(model, sample_losses=True), "runtime_s": info["wall_time_s"],
                 "n_test": len(setup.test_set), "history": info.get("history", []),
                 "config": {"recipe": setup.settings["recipe"], "seed": spec.training_seed, "last_batch": LAST_BATCH,
                            **setup.forget}}
        if "original" not in spec.file_models:  # a sweep cell's file holds no original to check it against
            entry.update(original_check(context, entry))
        return entry
    model = setup.start(context.original[0])
    tracked = spec.model in setup.tracked
    try:
        result = run_method(spec.model, model, setup.splits, spec.method_kwargs,
                            batch_size=setup.settings["unlearn_batch_size"], seed=setup.seed, task=setup.task,
                            collate_fn=setup.collate_fn, device=setup.device,
                            callback=context.track if tracked else None, progress=setup.progress)
    except DivergenceError as error:  # recorded, and the other methods still run
        print(f"{spec.model} diverged: {error}")
        return {"error": str(error), "history": getattr(error, "history", [])}
    metrics = context.measure(model, sample_losses=True)
    return {**metrics, "runtime_s": result.wall_time_s, "config": result.config,
            "history": curve_end(result.history, metrics) if tracked else result.history}


def original_check(context: Context, retrained: Mapping[str, Any]) -> dict[str, Any]:
    """The retrained model checked against the original measured on the same test split
    (:func:`reference_problems`): the original's test accuracy and final training loss, and the problems."""
    original, info = context.original
    original_loss = final_loss(info)
    return {"original_test_acc": accuracy(*predict(original, context.measured["test"])),
            "original_final_loss": original_loss,
            "reference_problems": health_problems(original_loss, "the retrained model", final_loss(retrained))}


def record(spec: Spec, entry: Mapping[str, Any], output_dir: str | Path,
           environment: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Write ``entry`` as ``spec``'s model into its results file, keeping every model the file holds, and return
    the file's models. The file lists the spec's experiment's models in order, then any others it held
    (e.g. methods of an earlier call). Once the file holds both references, the retrained model carries
    its soundness check (:func:`reference_problems`). ``environment``: where ``entry`` was computed, when
    not in this process (:func:`nablatau.results.environment` of a Ray worker)."""
    path = spec.path(output_dir)
    held = load_results(path)["models"] if path.exists() else {}
    held[spec.model] = entry
    models = {name: held[name] for name in dict.fromkeys([*spec.file_models, *held]) if name in held}
    references = [name for name in spec.references if name in models and "error" not in models[name]]
    if "original" in models and references == list(spec.references) and references:
        models["retrain"]["reference_problems"] = reference_problems(
            models["original"], {name: models[name] for name in references}, n_test=models["original"].get("n_test"))
    score_attacks(models, references)
    save_results(output_dir, spec.notebook, config=spec.config, models=models, worker_environment=environment)
    return models


def score_attacks(models: Mapping[str, dict[str, Any]], references: Sequence[str]) -> None:
    """Add both loss attacks (:func:`nablatau.audits.loss_attacks`) to every model of ``models`` that kept its
    per-sample losses, in place: the population AUC, and the attack calibrated by the ``references``
    (a reference itself by the others: leave-one-out, so its own score is retraining's floor). Computed from
    the losses the file holds, so a resumed file scores as an uninterrupted one."""
    for name, entry in models.items():
        losses = entry.get("sample_losses")
        if not losses:
            continue
        members, nonmembers = list(losses)
        calibrated_by = [r for r in references if r != name and "sample_losses" in models[r]]
        calibrators = [models[r]["sample_losses"] for r in calibrated_by]
        for key in ("calibrated_auc", "calibrated_pvalue", *(f"tpr_at_{fpr * 100:g}pct_fpr" for fpr in FPRS)):
            entry.pop(key, None)
        entry.update(loss_attacks(losses[members], losses[nonmembers], [c[members] for c in calibrators],
                                  [c[nonmembers] for c in calibrators]), calibrated_by=calibrated_by)


def run_experiment(specs: Sequence[Spec], *, output_dir: str | Path, **runtime: Any) -> RemovalRun:
    """Run (or resume) one experiment's specs in this process and return its results.

    Its results file is written after every model (:func:`record`); models it already holds are not run
    again, and when it holds them all nothing is loaded. The specs share one :class:`Context`: the data
    is loaded, and each model trained or loaded, once.

    Args:
        specs: the experiment's specs (:func:`nablatau.spec.experiment_specs`), in the order they run.
        output_dir: root folder of the results files, ``<output_dir>/<notebook>/<run-id>.json``.
        runtime: :func:`nablatau.setups.setup_of`'s ``data``, ``device``, ``cache`` and ``progress``.

    Returns:
        A :class:`RemovalRun` of the specs' models, as plain JSON values (as a resumed run reads them).
        A method that diverges is recorded with its error and the others still run; ``run.failed`` lists them.
    """
    first = specs[0]
    path, wanted = first.path(output_dir), [spec.model for spec in specs]
    models: dict[str, dict[str, Any]] = load_results(path)["models"] if path.exists() else {}
    todo = [spec for spec in specs if spec.model not in models]
    if not todo:
        print(f"Every model is already measured in {path}; delete that file to measure again.")
        return RemovalRun.load(path, wanted)
    if models:
        print(f"Resuming {path}: {[name for name in wanted if name in models]} already measured, running "
              f"{[spec.model for spec in todo]}.")
    context = Context(setup_of(first, **runtime))
    for spec in todo:
        models = record(spec, run_spec(spec, context=context), output_dir)
    return RemovalRun(plain(first.config), plain({name: models[name] for name in wanted}), path)
