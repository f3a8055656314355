"""NegGrad+: descent on the retain set and ascent on the forget set, weighted by β.

Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023,
arXiv:2302.09880; ``train_negrad`` in the SCRUB code.
"""

from __future__ import annotations

from typing import Unpack

from torch import nn
from torch.utils.data import DataLoader

from ..errors import raise_if_any
from ..loop import RunningMean, UnlearnResult, cycle
from ..losses import per_sample
from .common import MethodLoop, Shared, SharedSettings, method_optimizer, optimizer_problems, sgd_momentum


def neggrad_plus(model: nn.Module, forget: DataLoader, retain: DataLoader, val: DataLoader, *,
                 beta: float = 0.999, epochs: int = 5, lr: float = 0.01, optimizer: str = "sgd",
                 momentum: float = 0.9, weight_decay: float = 5e-4,
                 **shared: Unpack[SharedSettings]) -> UnlearnResult:
    """NegGrad+ (Kurmanji et al. 2023): β · mean retain loss − (1 − β) · mean forget loss per step.

    Each epoch is one pass over the retain loader; every step pairs a retain batch with the next forget
    batch, the forget loader cycling and restarting every epoch (as ``train_negrad`` in the SCRUB code).

    The shared parameters (``model``, the loaders, ``task``, ``loss``, ``train_mode``, ``seed``,
    ``progress``, ``callback``) are described in :mod:`nablatau.baselines`; ``val`` is unused.

    Args:
        beta: weight of the retain term, in [0, 1]; β = 1 is fine-tuning on the retain set. Default 0.999:
            our choice (the SCRUB code's NegGrad+ uses 0.95 with 10 epochs, plain SGD at 0.01 and an L2
            pull towards the original weights; we keep one optimizer recipe across baselines instead).
        epochs: passes over the retain loader; default 5, our choice.
        lr: learning rate; default 0.01 as in the SCRUB code.
        optimizer: ``"sgd"`` or ``"adamw"``; default SGD as in the SCRUB code.
        momentum: SGD momentum (ignored by AdamW); default 0.9, our choice (the ∇τ reference's SGD recipe).
        weight_decay: default 5e-4, our choice (the ∇τ reference's SGD recipe).

    Returns:
        An :class:`~nablatau.nabla_tau.UnlearnResult`; history rows hold ``loss``, ``retain_loss`` and
        ``forget_loss`` (sample means over the epoch), ``lr`` and ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task or optimizer, out-of-range settings.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite loss; the model keeps the last finite step's weights.
    """
    run = Shared.parse("neggrad_plus", shared)
    problems = run.problems(forget, retain, val, lr=lr, epochs=epochs)
    problems += optimizer_problems(optimizer, momentum, weight_decay)
    if not 0.0 <= beta <= 1.0:
        problems.append(f"beta must be in [0, 1], got {beta}; beta is the weight of the retain loss "
                        "(NegGrad+ default 0.999)")
    raise_if_any(problems)
    loss = run.loss_function
    config = run.config(forget, retain, val, epochs=epochs, lr=lr, optimizer=optimizer,
                        momentum=sgd_momentum(optimizer, momentum), weight_decay=weight_decay,
                        train_mode=run.train_mode, seed=run.seed, beta=beta)
    with MethodLoop(model, config, run) as loop:
        opt = method_optimizer(model, optimizer, lr, momentum, weight_decay)
        for epoch in loop.epochs():
            totals, retained, forgotten = RunningMean(), RunningMean(), RunningMean()
            forget_batches = cycle(forget)
            for step, retain_batch in enumerate(retain):
                retain_inputs, retain_targets = loop.unpack(retain_batch)
                forget_inputs, forget_targets = loop.unpack(next(forget_batches))
                retain_losses = per_sample(loss, loop.logits(model, retain_inputs), retain_targets)
                forget_losses = per_sample(loss, loop.logits(model, forget_inputs), forget_targets)
                total = beta * retain_losses.mean() - (1.0 - beta) * forget_losses.mean()
                loop.step(opt, total, epoch, step)
                totals.add(total, len(retain_losses))
                retained.add(retain_losses)
                forgotten.add(forget_losses)
            loop.end_epoch(epoch, opt, loss=totals.value, retain_loss=retained.value,
                           forget_loss=forgotten.value)
    return loop.result
