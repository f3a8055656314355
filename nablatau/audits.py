"""Did it forget? ``nablatau.audit`` of any model's forget set against held-out data.

Two attacks on the model's per-sample losses, forget samples (members, label 1) against held-out samples
(non-members, label 0):

- **population** (the paper's kind, no reference needed): one threshold on the loss for every sample. Its ROC
  AUC, and the two-sample Kolmogorov–Smirnov test between the two loss distributions;
- **calibrated per example** (with retrained references: models trained without the forget set): a sample's
  score is the references' mean log-loss on it minus the model's (difficulty calibration, Watson et al. 2022,
  arXiv:2111.08440; for cross-entropy, the offline fixed-variance LiRA of Carlini et al. 2022 on its logit scale). A sample that
  is simply hard has a high loss under every model; one the audited model fits far better than models that
  never saw it is exposed. Its AUC, the Mann–Whitney p-value of that AUC against 0.5, and the true-positive
  rate at 1 % and 5 % false positives, the low-FPR regime where membership leaks matter.

A model that forgot looks to both attacks as the references do: AUC near 0.5. Either side of 0.5 is a signal:
forget samples with higher losses than held-out ones (over-unlearning) are as recognisable as lower ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp, mannwhitneyu
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn
from torch.utils.data import DataLoader

from .errors import ConfigError, DataError, raise_if_any
from .losses import TRAIN_LOSS, PerSampleLoss, per_sample, task_problems
from .mia import predict

#: The false-positive rates whose true-positive rates are reported, and the held-out samples each needs
#: (one false positive at that rate).
FPRS = (0.01, 0.05)
MIN_FORGET = 5

#: A reference that never saw the forget set fits it about as it fits held-out data (mean loss ratio near 1);
#: one whose mean forget loss is under this fraction of its mean held-out loss looks as if it trained on it.
SUSPECT_RATIO = 0.5

#: Added to a loss before its logarithm: exact zeros (a saturated softmax in float32) stay finite.
TINY = 1e-12

#: Below this p-value an attack's AUC differs from 0.5: the forget set is distinguishable.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class AuditReport:
    """What :func:`audit` found; every AUC is 0.5 where the forget set looks like held-out data."""

    population_auc: float  # one threshold on the loss, forget vs held-out
    ks_statistic: float  # KS test between the forget and held-out loss distributions
    ks_pvalue: float
    calibrated_auc: float  # per-example attack calibrated by the references; NaN without references
    calibrated_pvalue: float  # Mann–Whitney test of calibrated_auc against 0.5; NaN without references
    tpr_at_1pct_fpr: float  # NaN without references
    tpr_at_5pct_fpr: float  # NaN without references
    n_forget: int
    n_heldout: int
    n_references: int
    suspect_references: tuple[int, ...] = ()  # indices of references whose forget losses look seen
    forget_loss: float = math.nan  # the model's mean loss on the forget set
    reference_forget_loss: float = math.nan  # the references' mean loss on it

    @property
    def distinguishable(self) -> bool:
        """Whether the forget set is still told apart from held-out data: by the calibrated attack where there
        are references, else by the KS test, at :data:`SIGNIFICANCE`."""
        pvalue = self.calibrated_pvalue if self.n_references else self.ks_pvalue
        return pvalue < SIGNIFICANCE

    def summary(self) -> str:
        """One sentence: is the forget set still distinguishable from held-out data, and by what."""
        if self.n_references:
            evidence = (f"the attack calibrated by {self.n_references} retrained reference(s) scores AUC "
                        f"{self.calibrated_auc:.3f} (p = {self.calibrated_pvalue:.2g}; TPR {self.tpr_at_1pct_fpr:.3f} "
                        f"at 1 % FPR); mean forget loss {self.forget_loss:.4g} against the references' "
                        f"{self.reference_forget_loss:.4g}")
        else:
            evidence = (f"its losses differ from held-out losses by KS {self.ks_statistic:.3f} (p = {self.ks_pvalue:.2g}; "
                        f"population AUC {self.population_auc:.3f}); pass retrained references for the stronger, "
                        "calibrated attack")
        verdict = ("The forget set is still distinguishable from held-out data" if self.distinguishable
                   else "The forget set is not distinguishable from held-out data")
        suspect = (f" Suspect references {list(self.suspect_references)}: they fit the forget set more than twice as "
                   "well as held-out data, as if they had trained on it." if self.suspect_references else "")
        return f"{verdict} ({self.n_forget} forget, {self.n_heldout} held-out samples): {evidence}.{suspect}"


def _losses(model: nn.Module, loader: DataLoader, loss: PerSampleLoss, name: str) -> np.ndarray:
    outputs, targets = predict(model, loader, desc=name)
    values = per_sample(loss, outputs, targets).double().numpy()
    if not np.all(np.isfinite(values)):
        raise DataError(f"{int(np.sum(~np.isfinite(values)))} {name} losses are NaN or infinite; check the model "
                        "for divergence before auditing it")
    if np.any(values < 0):
        raise DataError(f"{int(np.sum(values < 0))} {name} losses are negative; the audit compares losses as ratios "
                        "and needs a non-negative per-sample loss (cross-entropy, squared error, ...)")
    return values


def _log(losses: np.ndarray) -> np.ndarray:
    # Memorised samples sit at losses near zero, where a difference of 1e-4 matters as much as one of 0.1
    # elsewhere: on the log scale (for cross-entropy, -log ℓ ≈ the logit of the true class's probability,
    # LiRA's scale) the references' losses calibrate the model's as a ratio.
    return np.log(losses + TINY)


def _auc(members: np.ndarray, nonmembers: np.ndarray) -> tuple[float, float]:
    """ROC AUC of ``score`` for members against non-members, and the two-sided Mann–Whitney p-value against 0.5."""
    labels = np.r_[np.ones(members.size), np.zeros(nonmembers.size)]
    return (float(roc_auc_score(labels, np.r_[members, nonmembers])),
            float(mannwhitneyu(members, nonmembers, alternative="two-sided").pvalue))


def tpr_at_fpr(members: np.ndarray, nonmembers: np.ndarray, fpr: float) -> float:
    """The highest true-positive rate of a threshold on the score whose false-positive rate is at most ``fpr``."""
    labels = np.r_[np.ones(members.size), np.zeros(nonmembers.size)]
    false, true, _ = roc_curve(labels, np.r_[members, nonmembers])
    return float(true[false <= fpr].max())


def loss_attacks(forget: np.ndarray, heldout: np.ndarray, reference_forget: Sequence[np.ndarray] = (),
                 reference_heldout: Sequence[np.ndarray] = ()) -> dict[str, float]:
    """Both attacks on per-sample losses already computed: the one computation behind :func:`audit` and the
    results files (:func:`nablatau.runner.record` scores every model of a comparison with it).

    Args:
        forget, heldout: the audited model's per-sample losses on the forget and held-out samples.
        reference_forget, reference_heldout: each reference's losses on the same samples, in the same order.

    Returns:
        ``population_auc`` always; with references ``calibrated_auc``, ``calibrated_pvalue`` and
        ``tpr_at_<p>pct_fpr`` for each rate of :data:`FPRS` that the held-out samples can resolve (at least
        one false positive: 100 samples for 1 %); a rate they cannot resolve is left out, not guessed.
    """
    forget, heldout = np.asarray(forget, dtype=float), np.asarray(heldout, dtype=float)
    scores = {"population_auc": _auc(-forget, -heldout)[0]}  # a lower loss looks like a member
    if len(reference_forget):
        members, nonmembers = calibrated_scores(forget, heldout, reference_forget, reference_heldout)
        scores["calibrated_auc"], scores["calibrated_pvalue"] = _auc(members, nonmembers)
        scores.update({f"tpr_at_{fpr * 100:g}pct_fpr": tpr_at_fpr(members, nonmembers, fpr) for fpr in FPRS
                       if heldout.size >= math.ceil(1 / fpr)})
    return scores


def calibrated_scores(forget: np.ndarray, heldout: np.ndarray, reference_forget: Sequence[np.ndarray],
                      reference_heldout: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated attack's per-sample scores (references' mean log-loss minus the model's) of the forget
    and the held-out samples: what :func:`loss_attacks` ranks, for a bootstrap over samples."""
    return (_log(np.asarray(reference_forget, dtype=float)).mean(axis=0) - _log(np.asarray(forget, dtype=float)),
            _log(np.asarray(reference_heldout, dtype=float)).mean(axis=0) - _log(np.asarray(heldout, dtype=float)))


def audit(model: nn.Module, forget: DataLoader, heldout: DataLoader, *, references: Sequence[nn.Module] = (),
          loss: PerSampleLoss | None = None, task: str = "multiclass") -> AuditReport:
    """Audit whether ``model`` still tells its ``forget`` samples from ``heldout`` ones; see the module docstring.

    Args:
        model: the model to audit (unlearned, or any other); measured in eval mode, left as it was.
        forget, heldout: loaders of the forget samples and of samples no model trained on (batches as
            ``unlearn`` takes them: ``(inputs, targets)`` or dicts with ``"labels"``).
        references: models trained without the forget set (retrained from scratch on the retained data,
            e.g. with other seeds); with them the calibrated per-example attack runs. The audit cannot tell
            whether a reference saw the forget set; one whose mean forget loss is under half its mean held-out
            loss (:data:`SUSPECT_RATIO`) is reported in ``suspect_references``.
        loss: per-sample loss ``(outputs, targets) -> Tensor[batch]`` (regression included); default the
            task's training loss (:data:`nablatau.losses.TRAIN_LOSS`).
        task: ``"multiclass"`` or ``"multilabel"``; only picks the default ``loss``.

    Returns:
        An :class:`AuditReport`; ``report.summary()`` says in one sentence whether the forget set is still
        distinguishable from held-out data.

    Raises:
        ConfigError: references that are not modules, an unknown task, a loss that is not callable.
        DataError: fewer than 5 forget samples, or fewer held-out samples than the FPRs need with references
            (100 for 1 %), naming the minimum; losses that are not one finite value per sample.
    """
    problems = task_problems(task)
    if loss is not None and not callable(loss):
        problems.append(f"loss must be a per-sample loss function (outputs, targets) -> Tensor[batch], got {loss!r}")
    references = list(references)
    problems += [f"references[{i}] is a {type(r).__name__}, not a torch.nn.Module; pass models trained without the "
                 "forget set" for i, r in enumerate(references) if not isinstance(r, nn.Module)]
    raise_if_any(problems, ConfigError)
    loss = TRAIN_LOSS[task] if loss is None else loss
    forget_losses = _losses(model, forget, loss, "forget")
    heldout_losses = _losses(model, heldout, loss, "held-out")
    needed = max(math.ceil(1 / fpr) for fpr in FPRS) if references else MIN_FORGET
    if forget_losses.size < MIN_FORGET or heldout_losses.size < needed:
        raise DataError(f"the audit needs at least {MIN_FORGET} forget and {needed} held-out samples"
                        + (" (TPR at 1 % FPR needs one false positive in 100 held-out samples)" if references else "")
                        + f"; got {forget_losses.size} and {heldout_losses.size}")
    ks = ks_2samp(forget_losses, heldout_losses)
    suspect: list[int] = []
    reference_forget_loss = math.nan
    reference_forget = reference_heldout = np.empty((0, 0))
    if references:
        reference_forget = np.stack([_losses(r, forget, loss, f"reference {i} forget") for i, r in enumerate(references)])
        reference_heldout = np.stack([_losses(r, heldout, loss, f"reference {i} held-out")
                                      for i, r in enumerate(references)])
        ratios = reference_forget.mean(axis=1) / np.maximum(reference_heldout.mean(axis=1), TINY)
        suspect = [i for i, ratio in enumerate(ratios) if ratio < SUSPECT_RATIO]
        reference_forget_loss = float(reference_forget.mean())
    calibrated = dict(calibrated_auc=math.nan, calibrated_pvalue=math.nan, tpr_at_1pct_fpr=math.nan,
                      tpr_at_5pct_fpr=math.nan)
    scores = loss_attacks(forget_losses, heldout_losses, reference_forget, reference_heldout)
    population_auc = scores.pop("population_auc")
    calibrated.update(scores)
    return AuditReport(population_auc=population_auc, ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue),
                       n_forget=forget_losses.size, n_heldout=heldout_losses.size, n_references=len(references),
                       suspect_references=tuple(suspect), forget_loss=float(forget_losses.mean()),
                       reference_forget_loss=reference_forget_loss, **calibrated)
