"""Fine-tuning on the retain set, the ∇τ reference notebooks' baseline: ∇τ with α = 0.

As in the ∇τ reference notebooks (Trippa et al. 2024, arXiv:2403.14339), fine-tuning is ∇τ's own loop
with α₀ = 0, for the notebooks' fine-tuning epochs (:func:`finetune_epochs`).
"""

from __future__ import annotations

from typing import Unpack

from torch import nn
from torch.utils.data import DataLoader

from ..errors import ConfigError, raise_if_any
from ..nabla_tau import UnlearnResult, default_epochs, unlearn
from .common import Shared, SharedSettings

#: The reference's fine-tuning epoch rules, by modality (see :func:`finetune_epochs`).
FINETUNE_EPOCH_RULES = ("images", "text")


def finetune_epochs(n_retain_batches: int, n_forget_batches: int, rule: str = "images") -> int:
    """Epochs of the fine-tuning baseline, exactly as the ∇τ reference notebooks count them.

    ``"images"``: ``int(|retain batches| / |forget batches| · 6)`` (Unlearning_main_Cifar10/100, the
    finetuning cell), which is ∇τ's :func:`~nablatau.nabla_tau.default_epochs` with multiplier 12, about
    twice ∇τ's epochs. ``"text"``: ``2 · int(|retain batches| / (2 · |forget batches|))``, exactly twice
    ∇τ's text epochs (Unlearning_main_NLP, ``forget_epochs*2``). The two differ from
    ``2 · default_epochs`` only through where ``int`` truncates.

        >>> finetune_epochs(23, 4, "images"), 2 * default_epochs(23, 4, 6), finetune_epochs(23, 4, "text")
        (34, 34, 4)
        >>> finetune_epochs(22, 4, "images"), 2 * default_epochs(22, 4, 6)
        (33, 32)

    Args:
        n_retain_batches, n_forget_batches: the lengths of the retain and forget loaders.
        rule: one of :data:`FINETUNE_EPOCH_RULES`.

    Returns:
        The number of epochs (passes over the forget loader's length).

    Raises:
        ConfigError: an unknown ``rule``.
    """
    if rule == "images":
        return default_epochs(n_retain_batches, n_forget_batches, multiplier=12)
    if rule == "text":
        return 2 * default_epochs(n_retain_batches, n_forget_batches, multiplier=1)
    raise ConfigError(f"finetune epoch_rule must be one of {FINETUNE_EPOCH_RULES}, got {rule!r}")


def finetune(model: nn.Module, forget: DataLoader, retain: DataLoader, val: DataLoader, *,
             epochs: int | None = None, epoch_rule: str = "images", lr: float = 1e-3,
             lr_end_factor: float | None = 0.1, **shared: Unpack[SharedSettings]) -> UnlearnResult:
    """Fine-tune on the retain set: ∇τ with α = 0 for the reference's fine-tuning epochs (:func:`finetune_epochs`).

    With α = 0 the ∇τ objective is the mean retain loss, so this is AdamW on retain batches with ∇τ's
    schedule; an "epoch" is, as in ∇τ, one pass over the forget loader's length (one retain batch per
    forget batch), and the retain iterator restarts after each full pass over the retain loader.

    The shared parameters (``model``, the loaders, ``task``, ``loss``, ``train_mode``, ``seed``,
    ``progress``, ``callback``) are described in :mod:`nablatau.baselines`; ``val`` sets ∇τ's target
    loss, which has no effect at α = 0.

    Args:
        epochs: default ``finetune_epochs(len(retain), len(forget), epoch_rule)``, the reference's.
        epoch_rule: ``"images"`` (``int(|R|/|F|·6)``, the reference image notebooks) or ``"text"``
            (twice ∇τ's text epochs, the reference text notebook); see :func:`finetune_epochs`.
        lr: AdamW learning rate: 1e-3 for images, 3e-4 for text (∇τ reference notebooks).
        lr_end_factor: linear decay to this factor over the epochs; ``None`` for a constant rate (the
            reference's text runs). Default 0.1 (∇τ reference notebooks, images).

    Returns:
        ∇τ's :class:`~nablatau.nabla_tau.UnlearnResult` with ``config["method"] == "finetune"``.

    Raises:
        ConfigError: empty loaders, unknown task, out-of-range settings.
        DivergenceError: a NaN or infinite loss.
    """
    run = Shared.parse("finetune", shared)
    problems = run.problems(forget, retain, val, lr=lr, epochs=epochs)
    if epoch_rule not in FINETUNE_EPOCH_RULES:
        problems.append(f"epoch_rule must be one of {FINETUNE_EPOCH_RULES}, got {epoch_rule!r}: 'images' is "
                        "the reference image notebooks' int(|R|/|F|·6), 'text' twice ∇τ's text epochs")
    raise_if_any(problems)
    if epochs is None:
        epochs = finetune_epochs(len(retain), len(forget), epoch_rule)
    result = unlearn(model, forget, retain, val, alpha0=0.0, epochs=epochs, lr=lr, lr_end_factor=lr_end_factor,
                     task=run.task, loss=run.loss, train_mode=run.train_mode, seed=run.seed, progress=run.progress,
                     callback=run.callback)
    result.config.update(method="finetune", epoch_rule=epoch_rule)
    return result
