"""Population membership-inference attacks (MIA), as in the paper and the NeurIPS'23 unlearning kit.

An attacker who sees one score per sample (its loss, or the entropy of the prediction) tries to tell
forget-set samples (members, label 1) from held-out test samples (non-members, label 0). The two sides
are balanced by random subsampling of the larger one, and a scikit-learn ``LogisticRegression`` is
scored with 10-split ``StratifiedShuffleSplit`` cross-validation. Accuracy 0.5 means the attacker cannot
tell forget samples from unseen ones: the goal of unlearning (the retrained model's value is the
reference, since it is rarely exactly 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit, cross_validate
from torch import nn
from torch.utils.data import DataLoader
from .progress import progress_bar

from .batches import forward, model_device, unpack
from .errors import DataError
from .loop import autocast
from .losses import PerSampleLoss, cross_entropy, per_sample, prediction_entropy


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, *, progress: bool = False,
            desc: str = "predict") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32) and targets of ``model`` over ``loader``, on the CPU, in eval mode.

    The model's train/eval mode is restored afterwards.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    logits, targets = [], []
    try:
        for batch in progress_bar(loader, desc=desc, unit="batch", leave=False, enabled=progress):
            inputs, batch_targets = unpack(batch, device)
            with autocast(device):
                logits.append(forward(model, inputs).float().cpu())
            targets.append(batch_targets.cpu())
    finally:
        model.train(was_training)
    if not logits:
        raise DataError(f"the loader for {desc!r} is empty; pass a DataLoader over at least one sample")
    return torch.cat(logits), torch.cat(targets)


def sample_scores(logits: torch.Tensor, targets: torch.Tensor,
                  loss: PerSampleLoss = cross_entropy) -> dict[str, np.ndarray]:
    """Per-sample attack scores: ``loss`` and prediction ``entropy``."""
    return {
        "loss": per_sample(loss, logits, targets).numpy().astype(np.float64),
        "entropy": prediction_entropy(logits).numpy().astype(np.float64),
    }


@dataclass(frozen=True)
class MIAResult:
    """Cross-validated attack accuracy (mean and std over splits) and ROC AUC."""

    accuracy: float
    accuracy_std: float
    auc: float
    n_per_side: int


def _clean(scores: np.ndarray, name: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.size < 5:
        raise DataError(f"the {name} scores need at least 5 samples for a 10-split attack, got {scores.size}; "
                        "use a larger forget/test set")
    if not np.all(np.isfinite(scores)):
        raise DataError(f"the {name} scores contain NaN or inf ({int(np.sum(~np.isfinite(scores)))} of "
                        f"{scores.size}); check the model for divergence before attacking it")
    return scores


def population_mia(members: np.ndarray, nonmembers: np.ndarray, *, n_splits: int = 10,
                   seed: int = 0) -> MIAResult:
    """Attack separating ``members`` from ``nonmembers`` by their scores (one float per sample).

    The larger side is randomly subsampled (``seed``) to the smaller one's size so that 0.5 is chance.
    """
    members, nonmembers = _clean(members, "member"), _clean(nonmembers, "non-member")
    rng = np.random.default_rng(seed)
    n = min(members.size, nonmembers.size)
    members = rng.choice(members, n, replace=False)
    nonmembers = rng.choice(nonmembers, n, replace=False)
    features = np.concatenate([members, nonmembers]).reshape(-1, 1)
    labels = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    splitter = StratifiedShuffleSplit(n_splits=n_splits, random_state=seed)
    scores = cross_validate(LogisticRegression(), features, labels, cv=splitter,
                            scoring=("accuracy", "roc_auc"))
    return MIAResult(
        accuracy=float(np.mean(scores["test_accuracy"])),
        accuracy_std=float(np.std(scores["test_accuracy"])),
        auc=float(np.mean(scores["test_roc_auc"])),
        n_per_side=n,
    )
