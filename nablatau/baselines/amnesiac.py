"""Amnesiac unlearning, relabelling variant: train on the forget set with random wrong labels.

Graves, Nagisetty, Ganesh, "Amnesiac Machine Learning", AAAI 2021, arXiv:2010.10981; run as the ∇τ
reference notebooks' ``amnesiac`` (from the SSD code).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Unpack

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate

from ..batches import Inputs, unpack
from ..errors import ConfigError, ShapeError, raise_if_any
from ..loop import RunningMean, UnlearnResult, loader_samples
from ..losses import per_sample
from .common import MethodLoop, Shared, SharedSettings, method_optimizer, task_problems


def random_wrong_labels(targets: torch.Tensor, num_classes_or_labels: int, task: str,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Random targets that are wrong for every sample: amnesiac unlearning's relabelling.

    ``"multiclass"``: a class drawn uniformly among the ``num_classes - 1`` classes other than the true
    one (Graves et al. 2021). ``"multilabel"``: a multi-hot vector drawn uniformly among those with the
    same number of positive labels (targets above 0.5) as the true vector, other than the true vector
    itself. A vector with no positive label, or with every label positive, has no such alternative; it
    gets a random vector with one positive label, or with all labels but one positive (our choice).

    Args:
        targets: class ids ``[batch]`` (multiclass) or multi-hot ``[batch, labels]`` (multilabel).
        num_classes_or_labels: number of classes (multiclass) or labels (multilabel).
        task: ``"multiclass"`` or ``"multilabel"``.
        generator: the CPU random generator to draw from (seed it for reproducible relabelling).

    Returns:
        Wrong targets with the dtype and device of ``targets``.

    Raises:
        ConfigError: unknown task, or fewer than 2 classes.
        ShapeError: targets of the wrong shape, or class ids outside ``[0, num_classes)``.
    """
    raise_if_any(task_problems(task))
    size = int(num_classes_or_labels)
    if task == "multiclass":
        if targets.ndim != 1 or targets.is_floating_point():
            raise ShapeError(
                f"multiclass relabelling expects integer class ids [batch], got {targets.dtype} targets of "
                f"shape {tuple(targets.shape)}. For multi-hot targets pass task='multilabel'."
            )
        if size < 2:
            raise ConfigError(f"relabelling needs at least 2 classes to pick a wrong one, got {size}")
        truth = targets.detach().cpu().long()
        if truth.numel() and (int(truth.min()) < 0 or int(truth.max()) >= size):
            raise ShapeError(
                f"class ids must lie in [0, {size}), got ids from {int(truth.min())} to {int(truth.max())}. "
                "Pass num_classes equal to the width of the model's output layer."
            )
        draw = torch.randint(0, size - 1, truth.shape, generator=generator)
        wrong = draw + (draw >= truth).long()  # skips the true class: uniform over the other classes
        return wrong.to(device=targets.device, dtype=targets.dtype)
    if targets.ndim != 2 or targets.shape[1] != size or size < 1:
        raise ShapeError(
            f"multilabel relabelling expects multi-hot targets [batch, {size}], got shape "
            f"{tuple(targets.shape)}. Pass the number of labels, or task='multiclass' for class ids."
        )
    truth = targets.detach().cpu() > 0.5
    positives = truth.sum(dim=1)
    positives = torch.where(positives == 0, 1, torch.where(positives == size, size - 1, positives))
    wrong = torch.zeros_like(truth)
    pending = torch.ones(truth.shape[0], dtype=torch.bool)
    while bool(pending.any()):  # redraw the rows that came out equal to the truth
        rows = pending.nonzero().squeeze(1)
        ranks = torch.rand(len(rows), size, generator=generator).argsort(dim=1).argsort(dim=1)
        draw = ranks < positives[rows, None]  # a uniformly random subset of that many labels
        wrong[rows] = draw
        pending[rows] = (draw == truth[rows]).all(dim=1)
    return wrong.to(device=targets.device, dtype=targets.dtype)


def amnesiac(model: nn.Module, forget: DataLoader, retain: DataLoader, val: DataLoader, *,
             epochs: int = 3, lr: float = 1e-4, batch_size: int = 128, num_classes: int | None = None,
             **shared: Unpack[SharedSettings]) -> UnlearnResult:
    """Amnesiac unlearning, relabelling variant (Graves et al. 2021): train on wrongly labelled forget data.

    As the ∇τ reference notebooks' ``amnesiac`` (from the SSD code): every forget sample gets a random
    wrong target once (:func:`random_wrong_labels`, from a generator seeded with ``seed``, or 0); the
    relabelled forget samples and the retain samples form one set, which every epoch shuffles sample by
    sample into batches of ``batch_size`` (the reference: 128) and trains on with Adam, the model in
    train mode (the reference's ``fit_one_unlearning_cycle`` calls ``model.train()``). The samples are those
    the loaders draw (:func:`~nablatau.loop.loader_samples`), batched with the retain loader's ``collate_fn``;
    the loaders' own batch sizes and order are not used.

    The shared parameters are described in :mod:`nablatau.baselines`. Here the loaders' ``dataset`` must
    yield samples of the same form as their batches; ``task`` also picks the relabelling;
    ``train_mode`` defaults to True (the reference); ``seed`` also seeds the relabelling and the sample
    order (0 when ``None``); ``val`` is unused.

    Args:
        epochs: default 3 (the reference notebooks, as the amnesiac code shared by Chundawat et al.'s
            bad-teaching code and Foster et al.'s selective-synaptic-dampening code).
        lr: Adam learning rate; default 1e-4 (same sources). Adam is run as AdamW with weight decay 0,
            which is the same update.
        batch_size: samples per step of the shuffled union; default 128 (the reference).
        num_classes: classes to relabel among (multiclass); default: the width of the model's output
            on the first forget batch.

    Returns:
        An :class:`~nablatau.nabla_tau.UnlearnResult`; history rows hold ``loss`` (all samples),
        ``forget_loss`` (against the wrong targets), ``retain_loss``, ``lr`` and ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task, out-of-range settings.
        ShapeError: targets that do not fit ``loss`` or the relabelling.
        DivergenceError: a NaN or infinite loss; the model keeps the last finite step's weights.
    """
    run = Shared.parse("amnesiac", shared, train_mode=True)
    problems = run.problems(forget, retain, val, lr=lr, epochs=epochs)
    if num_classes is not None and not num_classes >= 2:
        problems.append(f"num_classes must be >= 2, got {num_classes}; leave it None to read it from the "
                        "model's output width")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        problems.append(f"batch_size must be a positive integer, got {batch_size!r} (the reference uses 128)")
    raise_if_any(problems)
    loss, task = run.loss_function, run.task
    generator = torch.Generator().manual_seed(0 if run.seed is None else run.seed)
    config = run.config(forget, retain, val, epochs=epochs, lr=lr, optimizer="adam", momentum=None,
                        weight_decay=0.0, batch_size=batch_size, train_mode=run.train_mode, seed=run.seed)
    forget_samples = loader_samples(forget, method="amnesiac", role="forget")
    retain_samples = loader_samples(retain, method="amnesiac", role="retain")
    with MethodLoop(model, config, run) as loop:
        targets = torch.stack([torch.as_tensor(_sample_target(forget_samples[i])) for i in range(len(forget_samples))])
        if num_classes is None:
            inputs, _ = unpack(next(iter(forget)))
            num_classes = targets.shape[1] if task == "multilabel" else _output_width(loop, inputs)
        config["num_classes"] = num_classes
        union = ConcatDataset([_Relabelled(forget_samples, random_wrong_labels(targets, num_classes, task, generator)),
                               retain_samples])
        collate = getattr(retain, "collate_fn", None) or default_collate
        n_forget = len(forget_samples)
        opt = method_optimizer(model, "adamw", lr)
        for epoch in loop.epochs():
            totals, forgotten, retained = RunningMean(), RunningMean(), RunningMean()
            order = torch.randperm(len(union), generator=generator)
            for step, index in enumerate(order.split(batch_size)):
                inputs, targets = loop.unpack(collate([union[i] for i in index.tolist()]))
                losses = per_sample(loss, loop.logits(model, inputs), targets)
                loop.step(opt, losses.mean(), epoch, step)
                is_forget = (index < n_forget).to(losses.device)
                totals.add(losses)
                forgotten.add(losses[is_forget])
                retained.add(losses[~is_forget])
            loop.end_epoch(epoch, opt, loss=totals.value, forget_loss=forgotten.value,
                           retain_loss=retained.value)
    return loop.result


class _Relabelled(Dataset):
    """The samples of ``dataset`` with their targets replaced by ``targets`` (amnesiac's wrong labels)."""

    def __init__(self, dataset: Dataset, targets: torch.Tensor) -> None:
        self.dataset, self.targets = dataset, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> Any:
        sample = self.dataset[i]
        if isinstance(sample, Mapping):
            return {**sample, "labels": self.targets[i]}
        return (sample[0], self.targets[i])


def _sample_target(sample: Any) -> Any:
    """The target of one data-set sample: ``sample["labels"]`` or ``sample[1]``."""
    return sample["labels"] if isinstance(sample, Mapping) else sample[1]


@torch.no_grad()
def _output_width(loop: MethodLoop, inputs: Inputs) -> int:
    """The width of the model's output on ``inputs``, probed in eval mode (no BatchNorm statistics update)."""
    loop.model.eval()
    batch = {**inputs, "labels": torch.empty(0)} if isinstance(inputs, Mapping) else (inputs, torch.empty(0))
    width = loop.logits(loop.model, loop.unpack(batch)[0]).shape[1]
    loop.model.train(loop.train_mode)
    return int(width)
