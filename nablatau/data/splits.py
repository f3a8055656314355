"""Deterministic splits of a training set into *retain* and *forget* parts (random or by class) and of a
held-out set into *validation* (drives the unlearning target loss) and *test* (attack and accuracy),
reproducing the ``random_split`` calls of the reference implementation index for index.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from ..checks import forget_fraction_problems
from ..errors import ConfigError, raise_if_any


def forget_size(n: int, fraction: float) -> int:
    """How many of ``n`` samples :func:`random_forget_split` forgets at ``fraction`` (torch's rounding)."""
    return _fraction_sizes(n, [1 - fraction, fraction])[1]


def random_forget_split(n: int, fraction: float, seed: int = 42) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into ``(retain_indices, forget_indices)`` with ``fraction`` forgotten at random.

    Same call, hence same indices, as the reference: ``random_split(range(n), [1 - fraction, fraction],
    generator=torch.Generator().manual_seed(seed))``.
    """
    raise_if_any(forget_fraction_problems(fraction, name="fraction"))
    sizes = _fraction_sizes(n, [1 - fraction, fraction])
    if min(sizes) == 0:
        raise ConfigError(
            f"Forgetting a fraction {fraction} of {n} samples gives {sizes[0]} to retain and {sizes[1]} to "
            "forget; both must be non-empty. Use more samples or a fraction further from 0 and 1."
        )
    retain, forget = torch.utils.data.random_split(
        range(n), [1 - fraction, fraction], generator=torch.Generator().manual_seed(seed)
    )
    return torch.tensor(retain.indices, dtype=torch.long), torch.tensor(forget.indices, dtype=torch.long)


def _fraction_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    # torch's rule for fractional random_split: floor each share, then hand the remainder out round-robin.
    sizes = [int(n * f) for f in fractions]
    for i in range(n - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


def class_forget_split(
    labels: torch.Tensor, classes: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into ``(retain_indices, forget_indices)``: forget every sample of ``classes``."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise ConfigError(
            f"Class removal needs one integer label per sample (shape [N]); got labels of shape "
            f"{tuple(labels.shape)}. Multi-label targets cannot be split by class this way."
        )
    wanted = _as_list(classes)
    present = set(torch.unique(labels).tolist())
    valid = f"{min(present)}..{max(present)}" if present else "none (no labels)"
    problems = [f"forget_classes is empty; pass at least one class id in {valid}."] if not wanted else []
    problems += [
        f"Class id {c!r} is not among the labels; valid class ids are {valid}."
        for c in wanted
        if c not in present
    ]
    raise_if_any(problems)
    mask = torch.isin(labels, torch.tensor(wanted, dtype=labels.dtype))
    if mask.all():
        raise ConfigError(
            f"Forgetting classes {wanted} would forget all {len(labels)} samples and leave nothing to "
            "retain; keep at least one class."
        )
    return torch.nonzero(~mask).flatten(), torch.nonzero(mask).flatten()


def _as_list(classes: int | Sequence[int] | torch.Tensor) -> list:
    # Accept a single id, a sequence, numpy integers or a tensor; anything not an integer is kept as is
    # so that the "not among the labels" message shows it.
    if isinstance(classes, torch.Tensor):
        classes = classes.tolist()
    if isinstance(classes, numbers.Integral):
        return [int(classes)]
    return [int(c) if isinstance(c, numbers.Integral) else c for c in classes]


def split_heldout(n: int, seed: int = 42) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` in halves ``(val_indices, test_indices)`` as the reference does.

    The reference calls ``test_set, val_set = random_split(held_out, [0.5, 0.5], generator)`` with a
    generator seeded with ``seed``: the *first* part is the test set. The validation half feeds the
    unlearning target loss, the test half the membership attack and accuracy.
    """
    if n < 2:
        raise ConfigError(
            f"The held-out set needs at least 2 samples to split into validation and test; got {n}."
        )
    test, val = torch.utils.data.random_split(
        range(n), [0.5, 0.5], generator=torch.Generator().manual_seed(seed)
    )
    return torch.tensor(val.indices, dtype=torch.long), torch.tensor(test.indices, dtype=torch.long)


def subset(dataset: Dataset, n: int, seed: int) -> Subset:
    """A deterministic random subset of ``n`` items of ``dataset`` (indices in ascending order)."""
    size = len(dataset)
    if not 0 < n <= size:
        raise ConfigError(
            f"Cannot take a subset of {n} items from a data set of {size}; pass 1 <= n <= {size}."
        )
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, perm[:n].sort().values.tolist())


def labels_of(dataset: Dataset) -> torch.Tensor:
    """The labels of ``dataset``.

    Handles a ``TensorDataset`` (its second tensor), a ``Subset`` of a supported data set (recursively) and
    any data set with a ``.targets`` attribute.
    """
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[1]
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets)
    raise ConfigError(
        f"Cannot read the labels of a {type(dataset).__name__}: expected a TensorDataset (inputs, labels), a "
        "Subset of one, or a data set with a .targets attribute. Pass the labels explicitly instead."
    )


@dataclass
class UnlearningSplits:
    """The four data sets of an unlearning run, plus optional extras.

    ``retain`` and ``forget`` partition the training set; ``val`` and ``test`` halve the held-out set. For
    class removal, ``extras`` holds ``"test_forget_class"`` and ``"test_other_classes"``: the test half
    split by whether the label is one of the forgotten classes.
    """

    retain: Dataset
    forget: Dataset
    val: Dataset
    test: Dataset
    extras: dict[str, Dataset] = field(default_factory=dict)

    def items(self) -> Iterator[tuple[str, Dataset]]:
        """``(name, dataset)`` pairs of the four splits, then the extras."""
        yield from (("retain", self.retain), ("forget", self.forget), ("val", self.val), ("test", self.test))
        yield from self.extras.items()


def make_splits(
    train: Dataset,
    heldout: Dataset,
    *,
    forget_fraction: float | None = None,
    forget_classes: int | Sequence[int] | None = None,
    seed: int = 42,
    heldout_seed: int | None = None,
    heldout_labels: torch.Tensor | None = None,
) -> UnlearningSplits:
    """Build retain/forget from ``train`` and val/test from ``heldout``; give exactly one forget option.

    ``forget_fraction`` forgets a random fraction (:func:`random_forget_split`, drawn with ``seed``);
    ``forget_classes`` forgets whole classes (:func:`class_forget_split`, labels via :func:`labels_of`).
    The held-out halves are drawn with ``heldout_seed`` (default ``seed``; the reference's α₀ sweep
    keeps them fixed while its seeds vary the forget set). ``heldout_labels`` overrides the held-out
    labels used to fill ``extras`` for class removal.
    """
    if (forget_fraction is None) == (forget_classes is None):
        raise ConfigError(
            "Pass exactly one of forget_fraction (random forgetting, e.g. 0.1) and forget_classes (class "
            f"removal, e.g. [3]); got forget_fraction={forget_fraction!r}, forget_classes={forget_classes!r}."
        )
    if forget_fraction is not None:
        retain_idx, forget_idx = random_forget_split(len(train), forget_fraction, seed)
    else:
        retain_idx, forget_idx = class_forget_split(labels_of(train), forget_classes)
    val_idx, test_idx = split_heldout(len(heldout), seed if heldout_seed is None else heldout_seed)
    splits = UnlearningSplits(
        retain=Subset(train, retain_idx.tolist()),
        forget=Subset(train, forget_idx.tolist()),
        val=Subset(heldout, val_idx.tolist()),
        test=Subset(heldout, test_idx.tolist()),
    )
    if forget_classes is not None:
        labels = labels_of(heldout) if heldout_labels is None else torch.as_tensor(heldout_labels)
        if len(labels) != len(heldout):
            raise ConfigError(
                f"heldout_labels has {len(labels)} entries but the held-out set {len(heldout)}."
            )
        classes = _as_list(forget_classes)
        in_forget = torch.isin(labels[test_idx], torch.tensor(classes, dtype=labels.dtype))
        splits.extras["test_forget_class"] = Subset(heldout, test_idx[in_forget].tolist())
        splits.extras["test_other_classes"] = Subset(heldout, test_idx[~in_forget].tolist())
    return splits
