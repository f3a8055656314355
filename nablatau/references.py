"""The retrained references of a comparison: their names, their training seeds, and whether they are sound.

Every comparison retrains from scratch on the retain split more than once, with different seeds: the first
reference, ``"retrain"``, is the gold standard every model is measured against; the others (``"retrain_2"``,
...) show how far an exact retraining lands from it, retraining's own spread (:mod:`nablatau.verdicts`), and
calibrate the per-example attack (:func:`nablatau.runner.score_attacks`). Light: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .tables import round_accuracy

#: The k-th retrained reference (k >= 2) trains with seed ``seed + (k - 1) * REFERENCE_SEED_STRIDE``: the same
#: retain split, another initialisation and batch order. The first, ``"retrain"``, keeps the comparison's seed.
REFERENCE_SEED_STRIDE = 1000


def reference_names(count: int) -> tuple[str, ...]:
    """The retrained references of a comparison: ``"retrain"`` (the gold standard), then ``"retrain_2"``, ...

        >>> reference_names(3)
        ('retrain', 'retrain_2', 'retrain_3')
    """
    return ("retrain", *(f"retrain_{k}" for k in range(2, count + 1)))


def reference_index(model: str) -> int | None:
    """1 for ``"retrain"``, k for ``"retrain_k"``, None for any other model."""
    if model == "retrain":
        return 1
    head, _, tail = model.partition("_")
    return int(tail) if head == "retrain" and tail.isdigit() and int(tail) >= 2 else None


def reference_seed(seed: int, model: str) -> int:
    """The training seed of reference ``model`` in a comparison of ``seed`` (:data:`REFERENCE_SEED_STRIDE`).

        >>> reference_seed(1, "retrain"), reference_seed(1, "retrain_2")
        (1, 1001)
    """
    return seed + (reference_index(model) - 1) * REFERENCE_SEED_STRIDE


#: How far above the original's final training loss a retrained reference's may end (both more than this many
#: times it and more than this much above it, to be flagged by :func:`reference_problems`).
MAX_RETRAIN_LOSS_RATIO = 2.0
MAX_RETRAIN_LOSS_GAP = 0.1

#: Two references agree when their test accuracies differ by at most this many standard errors of the
#: difference (two-sided 99 %). The standard error treats the two accuracies as independent binomial proportions
#: on the test set; they are measured on the same samples and positively correlated, so the true error is smaller
#: and the check errs towards "agree". 99 % rather than 95 %: every comparison of every notebook is checked,
#: and at 95 % one sound pair in twenty would be flagged by chance.
AGREEMENT_Z = 2.576


def agreement_problems(test_accuracies: Mapping[str, float], n_test: int) -> list[str]:
    """Why retrained references disagree: each pair's test accuracies more than :data:`AGREEMENT_Z` standard
    errors apart on ``n_test`` test samples. Empty when they agree, or with fewer than two.

        >>> agreement_problems({"retrain": 0.497, "retrain_2": 0.637}, n_test=1000)[0][:58]
        'retrain (test accuracy 0.497) and retrain_2 (0.637) differ'
        >>> agreement_problems({"retrain": 0.497, "retrain_2": 0.52}, n_test=1000)
        []
    """
    problems, names = [], list(test_accuracies)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a, b = test_accuracies[first], test_accuracies[second]
            error = math.sqrt((a * (1 - a) + b * (1 - b)) / n_test)
            gap = round_accuracy(abs(a - b))
            if gap > AGREEMENT_Z * error:
                problems.append(f"{first} (test accuracy {a:.3f}) and {second} ({b:.3f}) differ by {gap:.3f}, more "
                                f"than {AGREEMENT_Z} standard errors ({AGREEMENT_Z * error:.3f}) of {n_test} test "
                                "samples: two sound retrainings on the same data agree to within it")
    return problems


def health_problems(original_final_loss: float | None, name: str, final_loss: float | None) -> list[str]:
    """Why reference ``name`` did not train as the original did: a final training loss that is not finite, or
    more than :data:`MAX_RETRAIN_LOSS_RATIO` times the original's and more than :data:`MAX_RETRAIN_LOSS_GAP`
    above it (the gap matters near zero, where a sound retraining on fewer samples can end at several times the
    original's tiny loss). Empty when it trained normally or a loss is unknown."""
    if final_loss is None:
        return []
    if not math.isfinite(final_loss):
        return [f"{name}'s final training loss is {final_loss}: it diverged"]
    if (original_final_loss is not None and final_loss > MAX_RETRAIN_LOSS_RATIO * original_final_loss
            and final_loss - original_final_loss > MAX_RETRAIN_LOSS_GAP):
        return [f"{name}'s final training loss {final_loss:.3f} is more than {MAX_RETRAIN_LOSS_RATIO:g} times the "
                f"original's {original_final_loss:.3f} and {MAX_RETRAIN_LOSS_GAP} above it: it did not train as the "
                "original did"]
    return []


def final_loss(entry: Mapping[str, Any]) -> float | None:
    """The last training epoch's loss in ``entry``'s history, or None."""
    history = entry.get("history") or []
    return history[-1]["loss"] if history and "loss" in history[-1] else None


def reference_problems(original: Mapping[str, Any], references: Mapping[str, Mapping[str, Any]], *,
                       n_test: int | None = None) -> list[str]:
    """Why the retrained references are not a sound gold standard to compare with; empty when they are.

    Soundness from agreement and health, not from the accuracy that less data costs by itself:

    - the references agree with each other (:func:`agreement_problems`, on ``n_test`` test samples);
    - each trained normally (:func:`health_problems` of its final training loss against the original's).

    The failure these were made for (every epoch ended on a 4-sample batch at lr 0.1, which
    :func:`nablatau.train.training_loader` now drops; docs/profiles.md) left two retrainings of the same data at
    test accuracies 0.497 and 0.637: they disagree.

    The runner stores the result in the results file (``models["retrain"]["reference_problems"]``)
    and the notebooks show it above every comparison; nothing is dropped or retrained.

        >>> original = {"history": [{"loss": 0.02}]}
        >>> reference_problems(original, {"retrain": {"test_acc": 0.50, "history": [{"loss": 0.03}]},
        ...                               "retrain_2": {"test_acc": 0.51, "history": [{"loss": 0.02}]}}, n_test=1000)
        []
    """
    problems = []
    if n_test and len(references) > 1:
        problems += agreement_problems({name: entry["test_acc"] for name, entry in references.items()}, n_test)
    for name, entry in references.items():
        problems += health_problems(final_loss(original), name, final_loss(entry))
    return problems
