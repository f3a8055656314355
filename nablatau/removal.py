"""The paper's experiments as the notebooks run them: one call each over :mod:`nablatau.runner`.

- :func:`run_removal`: random subset removal or class removal on CIFAR (``subset_removal`` and
  ``class_removal`` notebooks; the benchmark, with profile overrides);
- :func:`run_quickstart`: ∇τ alone against retraining on a random subset (``quickstart``);
- :func:`run_text_removal`: ∇τ and the baselines on GoEmotions (``text_removal``);
- :func:`run_train_original`: the original model and its membership gap (``train_original``).

Each trains (or loads) the original model, retrains the gold standard without the forget set, runs
every method on its own copy of the original and measures each model the same way; the results file
is saved after every model, so a rerun with the same parameters (or one after a crash) reuses the
cached checkpoints and skips every model already measured.

What is measured (the retrained model is the reference for every number):

- random subset removal: accuracy on retain, forget and test; the loss and entropy attacks between
  the forget set and the test set.
- class removal: the same, plus accuracy on the test samples of the forgotten classes and of the other
  classes; the attacks compare forget-class training samples with held-out samples of the same
  classes (``test_forget_class``), so the attack sees membership, not the class.
- text removal: the same as subset removal, plus micro/macro-F1 (multilabel). ∇τ's target loss comes
  from the dev split and the attack's non-members from the test split, as in the reference.

∇τ and finetuning are also measured over their epochs on images (:func:`nablatau.runner.is_tracked_epoch`),
for the curves. Text runs are not: measuring mid-run iterates DataLoaders, which draw from the global random generator that
the methods' dropout uses, so it would change their numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from . import __version__
from .checks import forget_fraction_problems, is_int
from .data import (GOEMOTIONS_TRAIN_SIZE, ImageData, TextData, TextDataset, TextSplit, UnlearningSplits,
                   forget_size, image_dataset_size, labels_of, load_cifar, load_goemotions, make_splits,
                   random_forget_split, split_heldout, subset, text_collate)
from .errors import ConfigError, raise_if_any
from .metrics import evaluate, label_prior_accuracy
from .losses import multilabel_bce
from .profiles import (IMAGE_METHOD_SETTINGS, IMAGE_METHODS, TEXT_METHOD_SETTINGS, TEXT_METHODS, plain_settings,
                       resolve_profile)
from .results import save_results
from .runner import (RemovalRun, Setup, check_methods, checkpoint_key, default_device, measuring_loaders,
                     run_experiment, saved_models, trained_model)
from .tables import shortened_trainings

# --- Data of a profile ---------------------------------------------------------------------------


def profile_data(data: ImageData, settings: Mapping[str, Any], seed: int = 0) -> tuple[Dataset, Dataset]:
    """Training and held-out sets of a profile: seeded subsets, or the full sets when sizes are None."""
    train_set, heldout = data.train, data.test
    if settings["n_train"] is not None:
        train_set = subset(train_set, settings["n_train"], seed=seed)
    if settings["n_heldout"] is not None:
        heldout = subset(heldout, settings["n_heldout"], seed=seed)
    return train_set, heldout


def _text_subset(split: TextSplit, n: int | None, seed: int, tokenizer: Any, max_length: int) -> TextDataset:
    index = torch.arange(len(split)) if n is None else subset(range(len(split)), n, seed=seed).indices
    index = torch.as_tensor(index)
    return TextDataset([split.texts[i] for i in index], split.targets[index], tokenizer, max_length)


def text_splits(data: TextData, settings: Mapping[str, Any], tokenizer: Any, *, forget_fraction: float,
                seed: int = 42, subset_seed: int = 0) -> tuple[TextDataset, UnlearningSplits]:
    """The tokenised training set, and retain/forget from it with val from dev and test from test.

    As in the reference text notebooks, ∇τ's target loss comes from the dev split and the attack
    compares forget samples with the test split. Subsets (``n_train``, ``n_val``, ``n_test``) are drawn
    with ``subset_seed``; the forget split uses ``seed`` (the reference's 42). Every text is tokenised
    once, here.
    """
    tokenise = dict(tokenizer=tokenizer, max_length=settings["max_length"], seed=subset_seed)
    train_set = _text_subset(data.train, settings["n_train"], **tokenise)
    retain, forget = random_forget_split(len(train_set), forget_fraction, seed)
    return train_set, UnlearningSplits(
        retain=Subset(train_set, retain.tolist()), forget=Subset(train_set, forget.tolist()),
        val=_text_subset(data.dev, settings["n_val"], **tokenise),
        test=_text_subset(data.test, settings["n_test"], **tokenise))


# --- Setups: what the runner trains and measures --------------------------------------------------


def image_setup(dataset: str, settings: dict[str, Any], *, forget_fraction: float | None = None,
                forget_classes: Sequence[int] | None = None, seed: int = 0, split_seed: int = 42,
                data: ImageData | None = None, device: torch.device | None = None,
                progress: bool = True) -> Setup:
    """ResNet-18 on the profile's CIFAR images, forgetting a random fraction or whole classes.

    The attack compares the forget set with the test half, or for class removal with the test samples
    of the forgotten classes (``test_forget_class``). ``data`` defaults to :func:`nablatau.data.load_cifar`.
    """
    from .models import resnet18  # imported here: the runner's callers that never train stay light

    data = data if data is not None else load_cifar(dataset)
    train_set, heldout = profile_data(data, settings, seed=seed)
    splits = make_splits(train_set, heldout, forget_fraction=forget_fraction, forget_classes=forget_classes,
                         seed=split_seed)
    classes = forget_classes is not None
    return Setup(settings, dataset, train_set, splits, lambda: resnet18(data.num_classes),
                 forget={"forget_classes": forget_classes} if classes else
                 {"forget_fraction": forget_fraction, "split_seed": split_seed},
                 method_settings=IMAGE_METHOD_SETTINGS, seed=seed,
                 attack=("forget", "test_forget_class") if classes else ("forget", "test"),
                 device=device or default_device(), progress=progress)


def text_setup(settings: dict[str, Any], *, forget_fraction: float, seed: int = 0, split_seed: int = 42,
               data: TextData | None = None, device: torch.device | None = None, progress: bool = True) -> Setup:
    """The profile's text classifier on GoEmotions (multilabel BCE), forgetting a random fraction.

    Texts are tokenised once (:func:`text_splits`, subsets drawn with ``seed``). Every method starts
    from :func:`nablatau.models.without_head_dropout` of the original, as the reference rebuilds the
    classifier with head dropout 0 before unlearning.
    """
    from .models import TextClassifier, load_tokenizer, without_head_dropout

    data = data if data is not None else load_goemotions()
    tokenizer = load_tokenizer(settings["encoder"])
    train_set, splits = text_splits(data, settings, tokenizer, forget_fraction=forget_fraction, seed=split_seed,
                                    subset_seed=seed)
    return Setup(settings, "goemotions", train_set, splits,
                 lambda: TextClassifier(settings["encoder"], num_labels=len(data.labels), dropout=0.5,
                                        pooling=settings["pooling"]),
                 forget={"forget_fraction": forget_fraction, "split_seed": split_seed},
                 method_settings=TEXT_METHOD_SETTINGS, seed=seed, loss=multilabel_bce, task="multilabel",
                 collate_fn=text_collate(tokenizer), start=without_head_dropout, tracked=(),
                 device=device or default_device(), progress=progress)


# --- The experiments -------------------------------------------------------------------------------


def forget_size_problems(settings: Mapping[str, Any], forget_fraction: float, full_size: int) -> list[str]:
    """Why ``forget_fraction`` of the profile's training set is too small a forget set; empty when it is not.

    The forget set must fill at least one unlearning batch: ∇τ's epoch rule divides by the number of
    forget batches, and an attack on a handful of samples measures nothing.
    """
    n_train = settings["n_train"] if settings["n_train"] is not None else full_size
    n_forget, batch = forget_size(n_train, forget_fraction), settings["unlearn_batch_size"]
    if n_forget >= batch:
        return []
    needed = next(f / 100 for f in range(1, 100) if forget_size(n_train, f / 100) >= batch) \
        if forget_size(n_train, 0.99) >= batch else None
    fix = (f"use forget_fraction >= {needed:g}" if needed is not None else "use a larger training set") + \
        f" or a profile with more training samples (n_train > {n_train}) or a smaller unlearn_batch_size"
    return [f"forget_fraction {forget_fraction:g} of the {settings['profile']} profile's {n_train} training samples "
            f"forgets {n_forget}, fewer than one unlearning batch ({batch}); {fix}"]


def removal_config(*, notebook: str, dataset: str, profile: str, forget_fraction: float | None,
                   forget_classes: Sequence[int] | None, seed: int, split_seed: int,
                   overrides: Mapping[str, Any] | None = None, train_epochs: int | None = None) -> dict[str, Any]:
    """Everything that determines a run's numbers: its results file is named by a hash of this.

    ``train_epochs`` shortens (or lengthens) the training recipe of the original and the retrained model
    and nothing else; the config then records ``shortened_training`` (the profile's epochs and these), so
    that no table can pass the run off as the profile's. ``None`` (the default) adds nothing, and the run
    ids of unshortened runs stay what they were.

    Raises:
        ConfigError: not exactly one of ``forget_fraction`` and ``forget_classes``, a class id the data
            set does not have, a fraction whose forget set is smaller than one unlearning batch, or a
            ``train_epochs`` that is not a positive integer.
    """
    problems = []
    if train_epochs is not None and not (is_int(train_epochs) and train_epochs >= 1):
        problems.append(f"train_epochs must be a positive integer (or None for the profile's), got {train_epochs!r}")
    if (forget_fraction is None) == (forget_classes is None):
        problems.append("pass exactly one of forget_fraction (subset removal, e.g. 0.1) and forget_classes "
                        f"(class removal, e.g. [3]); got {forget_fraction!r} and {forget_classes!r}")
    if forget_fraction is not None:
        problems += forget_fraction_problems(forget_fraction, example="the paper uses 0.03, 0.15 and 0.30")
    num_classes, n_images = image_dataset_size(dataset)
    if forget_classes is not None:
        forget_classes = [forget_classes] if isinstance(forget_classes, int) else list(forget_classes)
        if not forget_classes or not all(is_int(c) and c >= 0
                                         for c in forget_classes):
            problems.append(f"forget_classes must be a non-empty list of class ids, got {forget_classes!r}")
        elif max(forget_classes) >= num_classes:
            problems.append(f"forget_classes {forget_classes}: {dataset} has classes 0 to {num_classes - 1}; "
                            f"pick class ids below {num_classes}")
        elif len(set(forget_classes)) == num_classes:
            problems.append(f"forget_classes {forget_classes} removes every class of {dataset}; leave at least one")
    settings = resolve_profile(profile, dataset=dataset, **(overrides or {}))
    if forget_fraction is not None and not problems:
        problems += forget_size_problems(settings, forget_fraction, n_images)
    raise_if_any(problems)
    config = {"notebook": notebook, "dataset": dataset, "profile": profile, "forget_fraction": forget_fraction,
              "forget_classes": sorted(forget_classes) if forget_classes is not None else None, "seed": seed,
              "split_seed": split_seed, "settings": settings,
              "method_settings": IMAGE_METHOD_SETTINGS, "nablatau_version": __version__}
    if train_epochs is not None and train_epochs != settings["recipe"].epochs:
        config["shortened_training"] = {"profile_epochs": settings["recipe"].epochs, "epochs": train_epochs}
        settings["recipe"] = settings["recipe"].replace(epochs=train_epochs)
    return config


def shortened_training_note(runs: Mapping[int, RemovalRun]) -> str:
    """A warning line when the runs trained their models for fewer epochs than their profile's, else ``""``."""
    shortened = shortened_trainings(run.config for run in runs.values())
    if not shortened:
        return ""
    epochs, profile_epochs = shortened[0]
    return (f"SHORTENED TRAINING: the original and the retrained model trained {epochs} epochs, not the "
            f"{next(iter(runs.values())).config['profile']} profile's {profile_epochs} "
            "(same recipe otherwise: its learning-rate decay spans the shorter run). ∇τ and the baselines are untouched.")


def run_removal(notebook: str, *, dataset: str = "cifar10", profile: str = "quick",
                forget_fraction: float | None = None, forget_classes: Sequence[int] | None = None,
                seed: int = 0, split_seed: int = 42, methods: Sequence[str] = IMAGE_METHODS,
                output_dir: str | Path = "results", data: ImageData | None = None,
                device: torch.device | None = None, progress: bool = True,
                overrides: Mapping[str, Any] | None = None, train_epochs: int | None = None) -> RemovalRun:
    """Run (or resume) one image removal experiment and return its results; see the module docstring.

    Args:
        notebook: names the results folder, ``<output_dir>/<notebook>/<run-id>.json``.
        dataset: ``"cifar10"`` or ``"cifar100"``.
        profile: ``"smoke"``, ``"quick"`` or ``"paper"`` (:func:`nablatau.profiles.resolve_profile`).
        forget_fraction: random subset removal: the fraction of the training set to forget.
        forget_classes: class removal: the class ids to forget (give exactly one of the two).
        seed: model initialisation, loader order and the attack's splits.
        split_seed: the forget split and the validation/test halves (the reference's 42).
        methods: ∇τ (``"nablatau"``) and baselines by name; original and retrain always run.
        output_dir: root folder of the results files.
        data: the loaded data set (default: :func:`nablatau.data.load_cifar` of ``dataset``).
        device: default :func:`nablatau.runner.default_device`.
        progress: show progress bars.
        overrides: profile settings to replace (e.g. ``{"n_train": 5000}``); recorded in the config.
        train_epochs: training epochs of the original and the retrained model, when they must be fewer
            than the profile's (e.g. the paper point on a CPU); recorded as ``shortened_training``.

    Returns:
        A :class:`~nablatau.runner.RemovalRun`. A method that diverges is recorded with its error and
        the others still run; ``run.failed`` lists them.

    Raises:
        ConfigError: bad forget settings, an unknown method, or a reference model among ``methods``
            (before any training).
    """
    config = removal_config(notebook=notebook, dataset=dataset, profile=profile, forget_fraction=forget_fraction,
                            forget_classes=forget_classes, seed=seed, split_seed=split_seed, overrides=overrides,
                            train_epochs=train_epochs)
    return run_experiment(
        notebook, config, lambda: image_setup(dataset, config["settings"], forget_fraction=forget_fraction,
                                              forget_classes=config["forget_classes"], seed=seed,
                                              split_seed=split_seed, data=data, device=device, progress=progress),
        methods=methods, method_settings=IMAGE_METHOD_SETTINGS, output_dir=output_dir)


def run_quickstart(*, dataset: str = "cifar10", profile: str = "quick", forget_fraction: float = 0.15,
                   seed: int = 0, output_dir: str | Path = "results", data: ImageData | None = None,
                   device: torch.device | None = None, progress: bool = True) -> RemovalRun:
    """∇τ with its default rules against the original and the retrained model (``quickstart`` notebook).

    A random-subset run (forget split with the reference's seed 42) with ∇τ as the only method, saved
    as ``<output_dir>/quickstart/<run-id>.json``. Arguments as :func:`run_removal`'s.
    """
    settings = resolve_profile(profile, dataset=dataset)
    raise_if_any(forget_fraction_problems(forget_fraction)
                 or forget_size_problems(settings, forget_fraction, image_dataset_size(dataset)[1]))
    config = {"profile": profile, "dataset": dataset, "forget_fraction": forget_fraction, "seed": seed,
              "settings": settings, "nablatau": plain_settings(IMAGE_METHOD_SETTINGS["nablatau"])}
    return run_experiment(
        "quickstart", config, lambda: image_setup(dataset, settings, forget_fraction=forget_fraction, seed=seed,
                                                  data=data, device=device, progress=progress),
        methods=["nablatau"], method_settings=IMAGE_METHOD_SETTINGS, output_dir=output_dir)


def run_text_removal(*, profile: str = "quick", forget_fraction: float = 0.15, seed: int = 0,
                     encoder: str | None = None, methods: Sequence[str] = TEXT_METHODS,
                     output_dir: str | Path = "results", data: TextData | None = None,
                     device: torch.device | None = None, progress: bool = True) -> RemovalRun:
    """Run (or resume) the GoEmotions removal experiment (``text_removal`` notebook).

    Args:
        profile: ``"smoke"``, ``"quick"`` or ``"paper"`` (the text profiles of :mod:`nablatau.profiles`).
        forget_fraction: the fraction of the training comments to forget (the paper: 0.15 and 0.30).
        seed: model initialisation, subsets, loader order and the attack's splits; the forget split
            uses the reference's seed 42.
        encoder: a Hugging Face name or local folder; None = the profile's encoder.
        methods: ∇τ and baselines by name (settings: ``TEXT_METHOD_SETTINGS``).
        output_dir: root folder of the results files (``<output_dir>/text_removal/<run-id>.json``).
        data: the loaded GoEmotions (default :func:`nablatau.data.load_goemotions`).
        device: default :func:`nablatau.runner.default_device`.
        progress: show progress bars.

    Returns:
        A :class:`~nablatau.runner.RemovalRun`.

    Raises:
        ConfigError: an unknown profile, setting or method (before any training).
    """
    methods = list(dict.fromkeys(methods))
    check_methods(methods, {})
    settings = resolve_profile(profile, "text", **({"encoder": encoder} if encoder else {}))
    raise_if_any(forget_fraction_problems(forget_fraction, example="the paper uses 0.15 and 0.30")
                 or forget_size_problems(settings, forget_fraction, GOEMOTIONS_TRAIN_SIZE))
    config = {"profile": profile, "forget_fraction": forget_fraction, "seed": seed, "methods": methods,
              "settings": settings,
              "method_settings": {name: plain_settings(TEXT_METHOD_SETTINGS[name]) for name in methods}}
    return run_experiment(
        "text_removal", config, lambda: text_setup(settings, forget_fraction=forget_fraction, seed=seed, data=data,
                                                   device=device, progress=progress),
        methods=methods, method_settings=TEXT_METHOD_SETTINGS, output_dir=output_dir)


def check_seeds(seeds: Any) -> list[int]:
    """``seeds`` as a list of distinct non-negative integers, or a :class:`ConfigError` naming the fix."""
    if is_int(seeds):
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(is_int(s) and s >= 0 for s in seeds)):
        raise ConfigError(f"seeds must be a non-empty list of non-negative integers, e.g. [1, 2, 3] (the reference's "
                          f"seeds); got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {list(seeds)} repeat a seed; a repeated seed is the same run, not another sample")
    return list(seeds)


def over_seeds(experiment: Callable[..., RemovalRun], seeds: Sequence[int], **parameters: Any) -> dict[int, RemovalRun]:
    """``{seed: experiment(seed=seed, **parameters)}``: one run (or resumed run) per seed, in order.

    The seeds are checked first, and the runs differ only in their seed, so the first run's own checks
    (made before it trains anything) cover every run: a bad parameter fails before any training.
    """
    seeds = check_seeds(seeds)
    return {seed: experiment(seed=seed, **parameters) for seed in seeds}


def run_train_original(*, dataset: str = "cifar10", profile: str = "quick", seed: int = 0, split_seed: int = 42,
                       output_dir: str | Path = "results", data: ImageData | None = None,
                       device: torch.device | None = None, progress: bool = True,
                       overrides: Mapping[str, Any] | None = None) -> RemovalRun:
    """Train (or load from the cache) the original model and measure it: what there is to unlearn.

    The attacks compare the whole training set with the test half of the held-out set (the same half
    every removal run tests on), so the loss-MIA here is the original model's membership gap.
    Saved as ``<output_dir>/train_original/<run-id>.json`` with the training history; when that file
    exists, it is returned as it is (nothing is loaded, trained or measured), as removal runs reuse theirs.
    ``overrides`` replaces profile settings as in :func:`run_removal` (e.g. ``{"n_train": 5000}``; recorded
    in the config).
    """
    from .models import resnet18

    config = {"notebook": "train_original", "dataset": dataset, "profile": profile, "seed": seed,
              "split_seed": split_seed, "settings": resolve_profile(profile, dataset=dataset, **(overrides or {})),
              "nablatau_version": __version__}
    settings = config["settings"]
    # A fresh clone finds the committed results here: re-measuring would retrain the original (minutes)
    # and, on another CPU, overwrite the committed numbers with slightly different ones.
    _, _, saved = saved_models(output_dir, "train_original", config, ["original"])
    if saved is not None:
        return saved
    device = device or default_device()
    data = data if data is not None else load_cifar(dataset)
    train_set, heldout = profile_data(data, settings, seed=seed)
    original, info = trained_model(lambda: resnet18(data.num_classes), train_set, settings,
                                   key=checkpoint_key(settings, dataset=dataset), seed=seed, device=device,
                                   progress=progress)
    _, test_index = split_heldout(len(heldout), split_seed)
    splits = {"train": train_set, "test": Subset(heldout, test_index.tolist())}
    measured = measuring_loaders(splits, settings["unlearn_batch_size"], device=device)
    metrics = evaluate(original, measured, attack=("train", "test"), seed=seed, sample_losses=True)
    models = {"original": {**metrics, "runtime_s": info["wall_time_s"], "history": info.get("history", []),
                           "n_train": len(train_set), "n_test": len(splits["test"]),
                           "label_prior_test_acc": label_prior_accuracy(labels_of(train_set), labels_of(splits["test"]))}}
    path = save_results(output_dir, "train_original", config=config, models=models)
    return RemovalRun.load(path, ["original"])
