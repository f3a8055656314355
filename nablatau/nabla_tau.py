"""∇τ: Gradient-based and Task-Agnostic machine Unlearning.

Daniel Trippa, Cesare Campagnano, Maria Sofia Bucarelli, Gabriele Tolomei, Fabrizio Silvestri (2024),
arXiv:2403.14339. Faithful to the authors' reference notebooks (GitHub dnl-trpp/Nabla-Tau) unless a
parameter says otherwise.

At every step, with one forget batch F and one retain batch R,

    L = α · ReLU(L̄_val − mean_{x∈F} ℓ(x))² + (1 − α) · mean_{x∈R} ℓ(x)

where ℓ is any per-sample loss (hence *task-agnostic*) and L̄_val is the mean per-sample loss on
held-out validation data. The first term is gradient *ascent* on the forget set that switches itself
off once the forget loss reaches the loss of unseen data (it has zero gradient when the forget loss is
at or above L̄_val), so forget samples end up looking like non-members rather than being destroyed.
The second term keeps the model good on the retained data. α starts at α₀ = 5/3 · forget fraction and
decays linearly to 0, so unlearning ends as fine-tuning on the retain set: no hyperparameter tuning.

The ascent term has two shapes in the authors' code (``ascent=``): the image notebooks square the ReLU,
``relu(L̄_val − mean ℓ_F)²`` (one-sided, the paper's equation, the default); the text notebook writes
``relu((L̄_val − mean ℓ_F)²)``, which is the plain square (two-sided): it also pulls a forget loss that
is *above* L̄_val back down to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .batches import forward, model_device, unpack
from .errors import ConfigError, raise_if_any
from .loop import (EpochCallback, EpochLoop, RunningMean, UnlearnResult, autocast, cycle, dataset_size,
                   finite_step)
from .losses import TRAIN_LOSS, PerSampleLoss, cross_entropy, loss_name, per_sample, task_problems

# The callback and result types live in :mod:`nablatau.loop`, shared with the baselines; they are part of
# unlearn's signature, so this module exports them with it.
__all__ = ["ASCENTS", "EpochCallback", "UnlearnResult", "alpha_at", "default_alpha0", "default_epochs",
           "mean_loss", "nablatau_objective", "refreshes_target_loss", "retain_restart_period", "unlearn"]


# --- The paper's hyperparameter rules ------------------------------------------------------------


def default_alpha0(n_forget: int, n_retain: int) -> float:
    """α₀ = 5/3 · |forget| / (|forget| + |retain|), the paper's rule (Sec. 4, "no tuning").

    The authors found this linear rule in their α₀ × forget-fraction sweep; it works for forget sets
    from 1 % to 50 % of the training data.
    """
    return 5.0 / 3.0 * n_forget / (n_forget + n_retain)


def default_epochs(n_retain_batches: int, n_forget_batches: int, multiplier: float = 6) -> int:
    """Epochs = int(|retain batches| / (2 · |forget batches|) · multiplier), the reference's rule.

    An epoch is one pass over the forget loader, so this sees the retain set about ``multiplier / 2``
    times. The reference notebooks use 6 for images and 1 for text.
    """
    return int(n_retain_batches / (2 * n_forget_batches) * multiplier)


def alpha_at(epoch: int, alpha0: float, epochs: int) -> float:
    """α used during ``epoch`` (0-based): α₀ minus α₀/epochs after every epoch, so 0 at the end."""
    return alpha0 * (1.0 - epoch / epochs)


def refreshes_target_loss(epoch: int, refresh_every: int) -> bool:
    """Whether L̄_val is recomputed at the start of ``epoch``: epoch 0 and every ``refresh_every``.

    The reference refreshes every 5 epochs: the retain term keeps lowering the validation loss, and a
    stale, too-high target would push forget samples above the loss of genuinely unseen data.
    """
    return epoch % refresh_every == 0


def retain_restart_period(n_retain_batches: int, n_forget_batches: int) -> int:
    """Epochs after which the retain iterator restarts: one full pass over the retain loader."""
    return max(1, n_retain_batches // n_forget_batches)


#: The shapes of the ascent term: ``"one_sided"`` = ReLU(Δ)², the paper's equation and the reference's
#: image notebooks; ``"two_sided"`` = ReLU(Δ²) = Δ², the reference's text notebook (Unlearning_main_NLP).
ASCENTS = ("one_sided", "two_sided")


def nablatau_objective(forget_losses: torch.Tensor, retain_losses: torch.Tensor, target_loss: float,
                       alpha: float, ascent: str = "one_sided") -> torch.Tensor:
    """α · ReLU(L̄_val − mean forget loss)² + (1 − α) · mean retain loss: the paper's Eq. for one step.

    One-sided (the default), the ascent term has zero gradient once the forget loss reaches
    ``target_loss`` (L̄_val): forget samples are pushed until they look like unseen data, not beyond.
    Two-sided (``ascent="two_sided"``, the reference text notebook's ``relu(delta_val_loss**2)``), it is
    (L̄_val − mean forget loss)², which also lowers a forget loss that is above L̄_val.
    """
    delta = target_loss - forget_losses.mean()
    pull = torch.relu(delta) ** 2 if ascent == "one_sided" else delta ** 2
    return alpha * pull + (1.0 - alpha) * retain_losses.mean()


# --- The loop ------------------------------------------------------------------------------------


@torch.no_grad()
def mean_loss(model: nn.Module, loader: DataLoader, loss: PerSampleLoss = cross_entropy) -> float:
    """Mean per-sample loss of ``model`` over ``loader``, without gradients (L̄_val in the paper)."""
    device = model_device(model)
    total, count = 0.0, 0
    for batch in loader:
        inputs, targets = unpack(batch, device)
        with autocast(device):
            values = per_sample(loss, forward(model, inputs).float(), targets)
        total += float(values.sum())
        count += values.numel()
    return total / count


def unlearn(
    model: nn.Module,
    forget: DataLoader,
    retain: DataLoader,
    val: DataLoader,
    *,
    alpha0: float | None = None,
    epochs: int | None = None,
    epochs_multiplier: float = 6,
    max_epochs: int | None = None,
    lr: float = 1e-3,
    lr_end_factor: float | None = 0.1,
    refresh_every: int = 5,
    ascent: str = "one_sided",
    task: str = "multiclass",
    loss: PerSampleLoss | None = None,
    train_mode: bool = False,
    seed: int | None = None,
    progress: bool = True,
    callback: EpochCallback | None = None,
) -> UnlearnResult:
    """Unlearn ``forget`` from ``model`` in place with ∇τ.

    ∇τ is called like every baseline (the convention is documented once in :mod:`nablatau.baselines`),
    so experiment loops look every method up by name in :data:`nablatau.methods.METHODS`.

    Args:
        model: a trained model; it is updated in place.
        forget, retain, val: loaders of the samples to forget, the samples to keep, and held-out
            samples that set the target loss L̄_val. Batches are ``(inputs, targets)`` or dicts with
            ``"labels"``.
        alpha0: initial weight of the ascent term; default :func:`default_alpha0`.
        epochs: passes over the forget loader; default :func:`default_epochs` with ``epochs_multiplier``.
        max_epochs: a cap on that rule, as the reference α₀ sweep's ``min(rule, 80)``; ignored when
            ``epochs`` is given. The config then records it and the rule's own ``rule_epochs``.
        lr: AdamW learning rate (reference: 1e-3 for images, 3e-4 for text).
        lr_end_factor: LinearLR goes 1 → this over the epochs, stepped per epoch; ``None`` keeps
            the learning rate constant (the reference's text runs).
        refresh_every: recompute L̄_val every this many epochs (:func:`refreshes_target_loss`).
        ascent: ``"one_sided"`` (default: ReLU(Δ)², the paper and the image notebooks) or
            ``"two_sided"`` (Δ², the reference text notebook); see :func:`nablatau_objective`.
        task: ``"multiclass"`` (class-id targets) or ``"multilabel"`` (multi-hot targets); it only picks
            the default ``loss``, since ∇τ needs nothing of the task but a per-sample loss.
        loss: per-sample loss ``(logits, targets) -> Tensor[batch]`` (see :mod:`nablatau.losses`);
            default the task's :data:`~nablatau.losses.TRAIN_LOSS`, ``cross_entropy`` (multiclass) or
            ``multilabel_bce`` (multilabel). An explicit ``loss`` is used whatever the task.
        train_mode: run the steps in train mode. The reference keeps vision models in eval mode so
            BatchNorm statistics stay frozen, and uses train mode (dropout) for text and in its α₀
            sweep. L̄_val is always measured in eval mode, as the reference does (``net.eval()``
            before the validation pass), so dropout does not inflate the target.
        seed: seeds torch before the loop (dropout in train mode); loaders carry their own seeds.
        progress: show progress over epochs (:mod:`nablatau.progress`: a live bar, or one line for a batch run).
        callback: called as ``callback(epoch, model)`` after each epoch; a returned mapping is added
            to that epoch's history row (e.g. MIA and accuracy for curves over epochs). Its time is
            kept out of ``wall_time_s`` and ``elapsed_s`` and reported as ``config["callback_s"]``.

    Returns:
        An :class:`UnlearnResult` with the resolved settings, a history row per epoch (forget loss,
        L̄_val, α, lr, elapsed seconds) and the wall time.

    Raises:
        ConfigError: empty loaders, an unknown task or out-of-range settings, all listed at once.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite loss; the model keeps the weights of the last good step and
            the error carries the history so far.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> data = lambda n: DataLoader(TensorDataset(torch.randn(n, 4), torch.randint(0, 3, (n,))), batch_size=8)
        >>> model = torch.nn.Linear(4, 3)
        >>> result = unlearn(model, data(16), data(80), data(32), progress=False)
        >>> result.config["epochs"], round(result.config["alpha0"], 3)
        (15, 0.278)
        >>> result.history[-1]["alpha"] > 0
        True
    """
    _validate(forget, retain, val, alpha0, epochs, lr, refresh_every, ascent, task, max_epochs)
    capped = epochs is None and max_epochs is not None
    alpha0, epochs = _resolve_rules(forget, retain, alpha0, epochs, epochs_multiplier)
    rule_epochs, epochs = epochs, min(epochs, max_epochs) if capped else epochs
    loss = TRAIN_LOSS[task] if loss is None else loss
    restart_every = retain_restart_period(len(retain), len(forget))
    config = dict(
        method="nablatau", task=task, alpha0=alpha0, epochs=epochs, lr=lr, optimizer="adamw",
        lr_end_factor=lr_end_factor, refresh_every=refresh_every, ascent=ascent, train_mode=train_mode,
        retain_restart_every=restart_every, loss=loss_name(loss), n_forget=dataset_size(forget),
        n_retain=dataset_size(retain), n_val=dataset_size(val), seed=seed,
    )
    if capped:
        config.update(max_epochs=max_epochs, rule_epochs=rule_epochs)
    if epochs == 0:
        return UnlearnResult(config=config)
    # With α₀ = 0 (fine-tuning, the reference's baseline) the forget pass and L̄_val would be computed
    # for nothing: skip them so the baseline's runtime is honest.
    ascends = alpha0 > 0
    with EpochLoop(model, config, callback=callback, progress=progress,
                   desc="∇τ" if ascends else "finetune (∇τ with α₀ = 0)") as loop:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        scheduler = (
            torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, lr_end_factor, total_iters=epochs)
            if lr_end_factor is not None else None
        )
        target_loss = math.nan
        retain_batches: Iterator[Any] = iter(())
        for epoch in loop.epochs():
            if ascends and refreshes_target_loss(epoch, refresh_every):
                model.eval()  # the loss of unseen data as the model predicts it, without dropout
                target_loss = mean_loss(model, val, loss)
                model.train(train_mode)
            if epoch % restart_every == 0:
                retain_batches = cycle(retain)
            alpha = alpha_at(epoch, alpha0, epochs)
            forget_loss = _epoch(loop, optimizer, forget, retain_batches, loss, epoch=epoch, ascends=ascends,
                                 alpha=alpha, target_loss=target_loss, ascent=ascent)
            loop.end_epoch(epoch, alpha=alpha, lr=optimizer.param_groups[0]["lr"], target_loss=target_loss,
                           forget_loss=forget_loss,
                           postfix=dict(alpha=alpha, forget=forget_loss, target=target_loss) if ascends
                           else dict(lr=optimizer.param_groups[0]["lr"]))
            if scheduler is not None:
                scheduler.step()
    return loop.result


def _epoch(loop: EpochLoop, optimizer: torch.optim.Optimizer, forget: DataLoader, retain_batches: Iterator[Any],
           loss: PerSampleLoss, *, epoch: int, ascends: bool, alpha: float, target_loss: float,
           ascent: str) -> float:
    """One ∇τ epoch: a step per forget batch, each with the next retain batch; the mean forget loss.

    Without ``ascends`` (α₀ = 0) every step is a plain retain step: the forget batches only count the
    steps, and the mean forget loss is NaN.
    """
    forget_mean = RunningMean()
    for step, forget_batch in enumerate(forget):
        # The retain batch is drawn before any forward pass: a new pass of a shuffling loader draws
        # from torch's generator, as dropout does, and the order of those draws fixes the run.
        retain_batch = next(retain_batches)
        if ascends:
            forget_losses = _losses(loop, forget_batch, loss)
            retain_losses = _losses(loop, retain_batch, loss)
            total = nablatau_objective(forget_losses, retain_losses, target_loss, alpha, ascent)
            forget_mean.add(forget_losses)
        else:
            total = _losses(loop, retain_batch, loss).mean()
        finite_step(optimizer, total, method="∇τ", epoch=epoch, step=step, detail=f"target loss {target_loss:.4g}")
    return forget_mean.value


def _losses(loop: EpochLoop, batch: Any, loss: PerSampleLoss) -> torch.Tensor:
    """Per-sample ``loss`` of the loop's model on ``batch``, the loss computed under autocast as well."""
    inputs, targets = loop.unpack(batch)
    with autocast(loop.device):
        return per_sample(loss, forward(loop.model, loop.fast(inputs)).float(), targets)


def _resolve_rules(forget: DataLoader, retain: DataLoader, alpha0: float | None, epochs: int | None,
                   epochs_multiplier: float) -> tuple[float, int]:
    """α₀ and the epochs, from the paper's rules where not given."""
    if alpha0 is None:
        alpha0 = default_alpha0(dataset_size(forget), dataset_size(retain))
        if alpha0 > 1.0:
            raise ConfigError(
                f"the default alpha0 = 5/3 · forget fraction is {alpha0:.3f} > 1 because the forget set "
                "is over 60 % of the data; the paper's rule covers up to 50 %. Pass alpha0 explicitly."
            )
    if epochs is None:
        epochs = default_epochs(len(retain), len(forget), epochs_multiplier)
    return alpha0, epochs


def _validate(forget: DataLoader, retain: DataLoader, val: DataLoader, alpha0: float | None,
              epochs: int | None, lr: float, refresh_every: int, ascent: str = "one_sided",
              task: str = "multiclass", max_epochs: int | None = None) -> None:
    """Raise one ConfigError listing every problem of the call, before the model is touched."""
    problems = task_problems(task)
    if max_epochs is not None and not (isinstance(max_epochs, int) and not isinstance(max_epochs, bool)
                                       and max_epochs >= 1):
        problems.append(f"max_epochs must be a positive integer (the reference sweep caps at 80) or None, "
                        f"got {max_epochs!r}")
    for name, loader in (("forget", forget), ("retain", retain), ("val", val)):
        if len(loader) == 0:
            problems.append(f"the {name} loader is empty; pass a DataLoader over at least one sample")
    if alpha0 is not None and not 0.0 <= alpha0 <= 1.0:
        problems.append(f"alpha0 must be in [0, 1], got {alpha0}")
    if epochs is not None and epochs < 0:
        problems.append(f"epochs must be >= 0, got {epochs}")
    if not lr > 0:
        problems.append(f"lr must be > 0, got {lr}")
    if refresh_every < 1:
        problems.append(f"refresh_every must be >= 1, got {refresh_every}")
    if ascent not in ASCENTS:
        problems.append(f"ascent must be one of {ASCENTS}, got {ascent!r}: 'one_sided' is the paper's equation "
                        "(image notebooks), 'two_sided' the reference text notebook's")
    raise_if_any(problems)
