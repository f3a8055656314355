"""What a spec runs on: its data, splits, model and how each model is trained and measured (:class:`Setup`).

:func:`setup_of` loads the :class:`Setup` of any :class:`~nablatau.spec.Spec`; the specs of one experiment
share it (:class:`nablatau.runner.Context`):

- image experiments (removal, quickstart, the sweep's cells, ``train_original``): ResNet-18 on the profile's
  CIFAR subsets (:func:`profile_data`), forgetting a random fraction or whole classes; class removal
  attacks with the held-out samples of the forgotten classes (``test_forget_class``), so the attack sees
  membership, not the class; ``train_original`` attacks the whole training set against the test half;
- text: the profile's classifier on GoEmotions (multilabel BCE); ∇τ's target loss comes from the dev split
  and the attack's non-members from the test split, as in the reference.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from .batches import default_device
from .data import (ImageData, TextData, TextDataset, TextSplit, UnlearningSplits, load_cifar, load_goemotions,
                   make_splits, random_forget_split, split_heldout, subset, text_collate)
from .losses import PerSampleLoss, cross_entropy, multilabel_bce
from .spec import Spec
from .train import CheckpointCache

#: Methods measured over their epochs on image removal runs, for the MIA and test-accuracy curves. Text runs
#: are not: measuring mid-run iterates DataLoaders, which draw from the global random generator that the
#: methods' dropout uses, so it would change their numbers. Sweep cells are single numbers.
TRACKED_METHODS = ("nablatau", "finetune")


@dataclass
class Setup:
    """An experiment, loaded: its data, its model and how each model is trained and measured."""

    settings: dict[str, Any]  # the resolved profile: recipe, unlearn_batch_size, ...
    dataset: str  # names the checkpoints (:func:`nablatau.spec.checkpoint_key`)
    train_set: Dataset  # the original's training set
    splits: UnlearningSplits | None  # retain/forget from train_set; val/test (and extras) held out; None: no forget set
    build_model: Callable[[], nn.Module]
    forget: dict[str, Any]  # what the retrained model lacks: forget_fraction and split_seed, or forget_classes
    seed: int = 0  # model initialisation, loader order, every method's seed and the attack's
    loss: PerSampleLoss = cross_entropy
    task: str = "multiclass"
    collate_fn: Callable | None = None
    attack: tuple[str, str] = ("forget", "test")
    measured_splits: Mapping[str, Dataset] | None = None  # what models are measured on; None: the splits but val
    start: Callable[[nn.Module], nn.Module] = copy.deepcopy  # each method's copy of the original
    tracked: Sequence[str] = TRACKED_METHODS
    sample_losses: bool = True  # keep the attack's per-sample losses of the references and ∇τ (histograms)
    compare_with_retrain: bool = True  # KL and KS against the retrained model (a comparison's results file)
    device: torch.device = field(default_factory=default_device)
    cache: CheckpointCache | None = None
    progress: bool = True


    @property
    def test_set(self) -> Dataset:
        """The test split every model is measured on (the measured splits' where they are given)."""
        return self.measured_splits["test"] if self.measured_splits is not None else self.splits.test


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


def image_setup(spec: Spec, data: ImageData | None = None, **runtime: Any) -> Setup:
    """ResNet-18 on the profile's CIFAR images; ``data`` defaults to :func:`nablatau.data.load_cifar`."""
    from .models import resnet18  # here: callers that never train stay light

    settings = spec.settings
    data = data if data is not None else load_cifar(spec.dataset)
    train_set, heldout = profile_data(data, settings, seed=spec.seed)
    build = lambda: resnet18(data.num_classes)  # noqa: E731
    if spec.experiment == "original" or (spec.experiment == "sweep" and spec.model == "original"):
        _, test_index = split_heldout(len(heldout), spec.heldout_seed or spec.split_seed)
        test = Subset(heldout, test_index.tolist())
        # No forget set: the original is measured on its whole training set against the test half.
        return Setup(settings, spec.dataset, train_set, None, build, forget={}, seed=spec.seed, attack=("train", "test"),
                     measured_splits={"train": train_set, "test": test}, compare_with_retrain=False, **runtime)
    classes = spec.forget_classes is not None
    splits = make_splits(train_set, heldout, forget_fraction=spec.forget_fraction,
                         forget_classes=list(spec.forget_classes) if classes else None, seed=spec.split_seed,
                         heldout_seed=spec.heldout_seed)
    sweep = spec.experiment == "sweep"
    return Setup(settings, spec.dataset, train_set, splits, build,
                 forget={"forget_classes": list(spec.forget_classes)} if classes else
                 {"forget_fraction": spec.forget_fraction, "split_seed": spec.split_seed},
                 seed=spec.seed, attack=("forget", "test_forget_class") if classes else ("forget", "test"),
                 tracked=() if sweep else TRACKED_METHODS, sample_losses=not sweep, compare_with_retrain=not sweep,
                 **runtime)


def text_setup(spec: Spec, data: TextData | None = None, **runtime: Any) -> Setup:
    """The profile's text classifier on GoEmotions (multilabel BCE), forgetting a random fraction.

    Texts are tokenised once (:func:`text_splits`, subsets drawn with the spec's ``seed``). Every method
    starts from :func:`nablatau.models.without_head_dropout` of the original, as the reference rebuilds
    the classifier with head dropout 0 before unlearning.
    """
    from .models import TextClassifier, load_tokenizer, without_head_dropout

    settings = spec.settings
    data = data if data is not None else load_goemotions()
    tokenizer = load_tokenizer(settings["encoder"])
    train_set, splits = text_splits(data, settings, tokenizer, forget_fraction=spec.forget_fraction,
                                    seed=spec.split_seed, subset_seed=spec.seed)
    return Setup(settings, "goemotions", train_set, splits,
                 lambda: TextClassifier(settings["encoder"], num_labels=len(data.labels), dropout=0.5,
                                        pooling=settings["pooling"]),
                 forget={"forget_fraction": spec.forget_fraction, "split_seed": spec.split_seed},
                 seed=spec.seed, loss=multilabel_bce, task="multilabel", collate_fn=text_collate(tokenizer),
                 start=without_head_dropout, tracked=(), **runtime)


def setup_of(spec: Spec, *, data: ImageData | TextData | None = None, device: torch.device | None = None,
             cache: CheckpointCache | None = None, progress: bool = True) -> Setup:
    """The :class:`Setup` of ``spec``'s experiment, its data loaded (``data``: already loaded, e.g. in tests).

    Args:
        spec: any spec of the experiment (they all share one setup).
        data: the loaded data set; default loaded from ``$NABLATAU_DATA_DIR`` (downloaded where missing).
        device: default :func:`nablatau.batches.default_device`.
        cache: the checkpoint cache; default ``$NABLATAU_CACHE_DIR`` or ``./checkpoints``.
        progress: show progress bars.
    """
    runtime = dict(device=device or default_device(), cache=cache, progress=progress)
    if spec.experiment == "text":
        return text_setup(spec, data, **runtime)
    return image_setup(spec, data, **runtime)
