"""One call that measures an unlearned model the way the paper reports it.

Accuracies are fractions in [0, 1]. For multilabel tasks the accuracy follows the reference text
notebooks (the arg-max of the logits equals the arg-max of the target vector) and micro/macro-F1 at
logit 0 (probability 0.5) are reported too.

Given the retrained model's logits (``reference=``), :func:`evaluate` also compares the model with the
retrained model directly (:func:`compare_with_retrained`): a two-sample Kolmogorov–Smirnov test between
the two models' per-sample forget losses ("forget quality": a high p-value means the losses are
indistinguishable from those of a model that never saw the forget set), and the mean KL divergence
from the retrained model's predictive distribution on the forget and on the test samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import ks_2samp
from sklearn.metrics import f1_score
from torch import nn
from torch.utils.data import DataLoader

from .errors import ConfigError
from .losses import TASKS, PerSampleLoss, cross_entropy, multilabel_bce_sum
from .mia import population_mia, predict, sample_scores

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


def label_prior_accuracy(train_targets: torch.Tensor, test_targets: torch.Tensor, task: str = "multiclass") -> float:
    """Test accuracy of the predictor that ignores its input and predicts the training set's commonest label.

    The floor a trained model must clear to have learned anything: for GoEmotions the commonest label
    ("neutral") alone scores about a third. Accuracy is measured as :func:`accuracy` measures it.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    train_targets, test_targets = torch.as_tensor(train_targets), torch.as_tensor(test_targets)
    if task == "multilabel":
        commonest = int(train_targets.float().sum(dim=0).argmax())
        return float((test_targets.argmax(dim=1) == commonest).float().mean())
    commonest = int(torch.bincount(train_targets.long()).argmax())
    return float((test_targets == commonest).float().mean())


def kl_from_reference(logits: torch.Tensor, reference_logits: torch.Tensor, task: str = "multiclass") -> float:
    """Mean over samples of KL(reference ‖ model) between the two models' predictive distributions.

    Multiclass: the softmax distributions. Multilabel: each label is an independent Bernoulli, and the
    per-sample divergence is the sum over labels. 0 means the model predicts as the reference does.
    """
    if logits.shape != reference_logits.shape:
        raise ConfigError(f"the model's logits {tuple(logits.shape)} and the reference's {tuple(reference_logits.shape)} "
                          "must have the same shape: measure both models on the same loader")
    logits, reference_logits = logits.double(), reference_logits.double()
    if task == "multilabel":
        log_p, log_q = F.logsigmoid(reference_logits), F.logsigmoid(logits)
        log_not_p, log_not_q = F.logsigmoid(-reference_logits), F.logsigmoid(-logits)
        per_sample = (log_p.exp() * (log_p - log_q) + log_not_p.exp() * (log_not_p - log_not_q)).sum(dim=1)
    else:
        log_p, log_q = F.log_softmax(reference_logits, dim=1), F.log_softmax(logits, dim=1)
        per_sample = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return float(per_sample.clamp_min(0).mean())


def compare_with_retrained(losses: np.ndarray, reference_losses: np.ndarray) -> dict[str, float]:
    """Two-sample Kolmogorov–Smirnov test of a model's per-sample forget losses against the retrained model's.

    Returns ``forget_ks`` (the statistic: the largest gap between the two empirical distribution
    functions, 0 = identical) and ``forget_ks_pvalue`` (scipy's two-sided p-value; a small value says
    the model's forget losses are distinguishable from the retrained model's).
    """
    result = ks_2samp(np.asarray(losses, dtype=np.float64), np.asarray(reference_losses, dtype=np.float64))
    return {"forget_ks": float(result.statistic), "forget_ks_pvalue": float(result.pvalue)}


def evaluate(
    model: nn.Module,
    splits: Mapping[str, DataLoader],
    *,
    task: str = "multiclass",
    attack: tuple[str, str] = ("forget", "test"),
    seed: int = 0,
    progress: bool = False,
    sample_losses: bool = False,
    reference: Mapping[str, torch.Tensor] | None = None,
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
        reference: the retrained model's logits by split name (from
            :func:`nablatau.mia.predict` on the same loaders). For each split ``s`` among them this adds
            ``kl_s`` (:func:`kl_from_reference`), and for the attack's members ``forget_ks`` and
            ``forget_ks_pvalue`` (:func:`compare_with_retrained` of the attack's per-sample losses).

    Returns:
        ``{"retain_acc": …, "forget_acc": …, "test_acc": …, "mia_loss": …, "mia_entropy": …,
        "mia_loss_auc": …, "mia_entropy_auc": …}`` with one ``<split>_acc`` per split.

    Raises:
        ConfigError: an unknown task, or an attack or reference split missing from ``splits``.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    missing = [name for name in attack if name not in splits]
    if missing:
        raise ConfigError(f"the attack needs splits {list(attack)} but {missing} are missing from splits "
                          f"(got {sorted(splits)}); pass them or change `attack=`")
    reference = dict(reference or {})
    unmeasured = sorted(set(reference) - set(splits))
    if unmeasured:
        raise ConfigError(f"reference logits of {unmeasured} have no loader in splits (got {sorted(splits)}); "
                          "measure the model on the splits the reference was measured on")
    metrics: dict[str, Any] = {}
    scores = {}
    for name, loader in splits.items():
        logits, targets = predict(model, loader, progress=progress, desc=name)
        metrics[f"{name}_acc"] = accuracy(logits, targets, task)
        if task == "multilabel":
            metrics.update({f"{name}_{k}": v for k, v in multilabel_f1(logits, targets).items()})
        if name in attack:
            scores[name] = sample_scores(logits, targets, ATTACK_LOSS[task])
        if name in reference:
            metrics[f"kl_{name}"] = kl_from_reference(logits, reference[name], task)
            if name == attack[0]:
                reference_losses = ATTACK_LOSS[task](reference[name].float(), targets).numpy()
                metrics.update(compare_with_retrained(scores[name]["loss"], reference_losses))
    members, nonmembers = attack
    for kind in ("loss", "entropy"):
        result = population_mia(scores[members][kind], scores[nonmembers][kind], seed=seed)
        metrics[f"mia_{kind}"] = result.accuracy
        metrics[f"mia_{kind}_auc"] = result.auc
        metrics[f"mia_{kind}_std"] = result.accuracy_std
    metrics[f"{members}_mean_loss"] = float(np.mean(scores[members]["loss"]))
    metrics[f"{nonmembers}_mean_loss"] = float(np.mean(scores[nonmembers]["loss"]))
    if sample_losses:
        # Six significant digits: the losses are float32 (about seven), and every model of a comparison keeps
        # them (the calibrated attack, :func:`nablatau.runner.score_attacks`), so the files stay small.
        metrics["sample_losses"] = {name: [float(f"{value:.6g}") for value in scores[name]["loss"].tolist()]
                                    for name in attack}
    return metrics
