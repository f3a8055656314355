"""One call that measures an unlearned model the way the paper reports it.

Accuracies are fractions in [0, 1]. For multilabel tasks the accuracy follows the reference text
notebooks (the arg-max of the logits equals the arg-max of the target vector) and micro/macro-F1 at
logit 0 (probability 0.5) are reported too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader

from .errors import ConfigError
from .losses import PerSampleLoss, cross_entropy, multilabel_bce_sum
from .mia import population_mia, predict, sample_scores

TASKS = ("multiclass", "multilabel")

#: The per-sample score the loss attack uses for each task (the reference sums BCE over labels).
ATTACK_LOSS: dict[str, PerSampleLoss] = {"multiclass": cross_entropy, "multilabel": multilabel_bce_sum}


def accuracy(logits: torch.Tensor, targets: torch.Tensor, task: str = "multiclass") -> float:
    """Fraction of samples whose arg-max prediction is right (arg-max of the targets if multilabel)."""
    truth = targets.argmax(dim=1) if task == "multilabel" else targets
    return float((logits.argmax(dim=1) == truth).float().mean())


def multilabel_f1(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Micro- and macro-F1 of multilabel predictions thresholded at logit 0."""
    predicted, truth = (logits > 0).numpy().astype(int), targets.numpy().astype(int)
    return {
        "f1_micro": float(f1_score(truth, predicted, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(truth, predicted, average="macro", zero_division=0)),
    }


def evaluate(
    model: nn.Module,
    splits: Mapping[str, DataLoader],
    *,
    task: str = "multiclass",
    attack: tuple[str, str] = ("forget", "test"),
    seed: int = 0,
    progress: bool = False,
    sample_losses: bool = False,
) -> dict[str, Any]:
    """Accuracy on every split plus the loss and entropy membership-inference attacks.

    Args:
        model: the model to measure (left in the mode it came in).
        splits: loaders by name; must contain the two names in ``attack`` and usually ``retain``,
            ``forget`` and ``test``. Each split ``s`` gives ``s_acc`` (and ``s_f1_micro``/``s_f1_macro``
            for multilabel tasks).
        task: ``"multiclass"`` (integer targets) or ``"multilabel"`` (multi-hot targets).
        attack: (members, non-members) split names for the attacks; class removal uses e.g.
            ``("forget", "test_forget_class")``.
        seed: seed of the attack's subsampling and cross-validation splits.
        sample_losses: also return ``"sample_losses"``: the attack's per-sample loss of every member
            and non-member, as lists keyed by split name (for loss histograms).

    Returns:
        ``{"retain_acc": …, "forget_acc": …, "test_acc": …, "mia_loss": …, "mia_entropy": …,
        "mia_loss_auc": …, "mia_entropy_auc": …}`` with one ``<split>_acc`` per split.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    missing = [name for name in attack if name not in splits]
    if missing:
        raise ConfigError(f"the attack needs splits {list(attack)} but {missing} are missing from splits "
                          f"(got {sorted(splits)}); pass them or change `attack=`")
    metrics: dict[str, Any] = {}
    scores = {}
    for name, loader in splits.items():
        logits, targets = predict(model, loader, progress=progress, desc=name)
        metrics[f"{name}_acc"] = accuracy(logits, targets, task)
        if task == "multilabel":
            metrics.update({f"{name}_{k}": v for k, v in multilabel_f1(logits, targets).items()})
        if name in attack:
            scores[name] = sample_scores(logits, targets, ATTACK_LOSS[task])
    members, nonmembers = attack
    for kind in ("loss", "entropy"):
        result = population_mia(scores[members][kind], scores[nonmembers][kind], seed=seed)
        metrics[f"mia_{kind}"] = result.accuracy
        metrics[f"mia_{kind}_auc"] = result.auc
        metrics[f"mia_{kind}_std"] = result.accuracy_std
    metrics[f"{members}_mean_loss"] = float(np.mean(scores[members]["loss"]))
    metrics[f"{nonmembers}_mean_loss"] = float(np.mean(scores[nonmembers]["loss"]))
    if sample_losses:
        metrics["sample_losses"] = {name: scores[name]["loss"].tolist() for name in attack}
    return metrics
