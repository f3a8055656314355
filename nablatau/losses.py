"""Per-sample losses: ``(logits, targets) -> Tensor[batch]``.

∇τ is task-agnostic because it only needs a per-sample loss (Trippa et al. 2024, Sec. 3). The two
built-ins cover the paper's settings: multiclass cross-entropy (CIFAR) and multilabel
BCE-with-logits averaged over labels (GoEmotions, as in the authors' text notebooks).
:data:`TRAIN_LOSS` maps each task to the one every method trains with when given no ``loss``.

    >>> TASKS, loss_name(TRAIN_LOSS["multilabel"])
    (('multiclass', 'multilabel'), 'multilabel_bce')
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .errors import ShapeError

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multiclass cross-entropy per sample; ``targets`` are class ids of shape ``[batch]``."""
    if logits.ndim != 2 or targets.ndim != 1 or targets.shape[0] != logits.shape[0]:
        raise ShapeError(
            f"cross_entropy expects logits [batch, classes] and integer targets [batch]; got logits "
            f"{tuple(logits.shape)} and targets {tuple(targets.shape)}. For multi-hot targets use "
            "nablatau.losses.multilabel_bce."
        )
    if targets.is_floating_point():
        raise ShapeError(
            f"cross_entropy expects integer class ids, got {targets.dtype} targets. For multi-hot "
            "targets use nablatau.losses.multilabel_bce; otherwise cast the targets with .long()."
        )
    return F.cross_entropy(logits, targets, reduction="none")


def _check_multilabel(logits: torch.Tensor, targets: torch.Tensor, name: str) -> None:
    if logits.shape != targets.shape or logits.ndim != 2:
        raise ShapeError(
            f"{name} expects logits and multi-hot targets of the same shape [batch, labels]; got "
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)}. For class-id targets use "
            "nablatau.losses.cross_entropy."
        )


def multilabel_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits averaged over labels, per sample (the reference's text training loss)."""
    _check_multilabel(logits, targets, "multilabel_bce")
    per_label = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none")
    return per_label.mean(dim=1)


def multilabel_bce_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits summed over labels, per sample (the reference's text attack score)."""
    _check_multilabel(logits, targets, "multilabel_bce_sum")
    per_label = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none")
    return per_label.sum(dim=1)


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax over logits, per sample (the entropy attack's score)."""
    log_probs = F.log_softmax(logits.float(), dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1)


#: The training loss each task uses when a method is given no ``loss`` (the reference notebooks' losses).
#: It lives here, beside the losses, so that ∇τ and the baselines (whose finetune runs ∇τ) both read it
#: without importing each other.
TRAIN_LOSS: dict[str, PerSampleLoss] = {"multiclass": cross_entropy, "multilabel": multilabel_bce}

#: The tasks: ``"multiclass"`` (class-id targets) and ``"multilabel"`` (multi-hot targets).
TASKS = tuple(TRAIN_LOSS)


def task_problems(task: str) -> list[str]:
    """``[]`` for a known task, else the one message that names the choices."""
    if task in TASKS:
        return []
    return [f"task must be one of {TASKS}, got {task!r}; use 'multiclass' for class-id targets and "
            "'multilabel' for multi-hot targets"]


def per_sample(loss: PerSampleLoss, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``loss(logits, targets)``, checked to be one value per sample: every method and attack needs that.

    A reduced loss (``nn.MSELoss()`` with its default mean, say) gives one number for the whole batch, and
    ∇τ's objective would then compare batch means where it needs samples: refused with the fix.

        >>> per_sample(cross_entropy, torch.zeros(2, 3), torch.tensor([0, 1])).shape
        torch.Size([2])
        >>> per_sample(lambda out, y: F.mse_loss(out, y), torch.zeros(2, 3), torch.zeros(2, 3))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        nablatau.errors.ShapeError: loss <lambda> returned shape () for a batch of 2 samples; ...
    """
    values = loss(logits, targets)
    batch = logits.shape[0]
    if not (isinstance(values, torch.Tensor) and values.shape == (batch,)):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ShapeError(
            f"loss {loss_name(loss)} returned shape {shape} for a batch of {batch} samples; a loss must return one "
            f"value per sample, shape ({batch},). With a torch loss pass reduction='none' and average any other "
            "dimension, e.g. loss=lambda out, y: F.mse_loss(out, y, reduction='none').mean(dim=1)"
        )
    return values


def loss_name(loss: PerSampleLoss) -> str:
    """How a config records ``loss``: its ``__name__``, or its repr."""
    return getattr(loss, "__name__", repr(loss))
