"""Selective Synaptic Dampening: shrink the weights that matter far more to the forget set than to the whole set.

Foster, Schoepf, Brintrup, "Fast Machine Unlearning Without Retraining Through Selective Synaptic
Dampening", AAAI 2024, arXiv:2308.07707. No training: diagonal Fisher importances and one dampening.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Unpack

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader
from ..progress import progress_bar

from ..batches import channels_last, forward, model_device, unpack
from ..errors import ConfigError, DivergenceError, raise_if_any
from ..loop import UnlearnResult, autocast, loader_samples
from ..losses import PerSampleLoss, per_sample
from .common import MethodLoop, Shared, SharedSettings


def training_set_batches(retain: DataLoader, forget: DataLoader, seed: int | None = None) -> DataLoader:
    """Shuffled batches of the whole training set (retain ∪ forget), at the retain loader's batch size.

    SSD scores the full training set with a shuffled loader, so forget samples are mixed into batches
    with retain samples: squaring the gradient of such a batch mean dilutes what is specific to the
    forget set, which is what lets a forget importance exceed α times the full one. Concatenating
    whole retain batches and whole forget batches instead would bound the full importance below by
    ``n_forget / n`` times the forget importance, and α = 10 would select nothing once 10 % is forgotten.

    Args:
        retain, forget: the loaders whose datasets make up the training set.
        seed: seeds the shuffling (0 when ``None``).

    Returns:
        A shuffling DataLoader over both datasets, with the retain loader's ``collate_fn``.
    """
    union = ConcatDataset([loader_samples(retain, method="ssd", role="retain"),
                           loader_samples(forget, method="ssd", role="forget")])
    return DataLoader(union, batch_size=retain.batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(0 if seed is None else seed),
                      collate_fn=getattr(retain, "collate_fn", None))


def fisher_importance(model: nn.Module, batches: Iterable[Any], loss: PerSampleLoss, *,
                      progress: bool = False) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher importance of every trainable parameter: the mean squared batch gradient.

    For each batch, the gradient of the batch's mean ``loss`` is squared element-wise and added up; the
    sum is divided by the number of batches. This is ``calc_importance`` of the Selective Synaptic
    Dampening code (Foster et al. 2024), which :func:`ssd` compares between the forget set and the
    whole training set. The model runs in its current mode (put it in eval mode to keep BatchNorm
    statistics still) and its weights are not changed; its gradients are cleared at the end. On CUDA
    the forward pass runs under the same bf16 autocast as the methods; the sums are kept in float32.

    Args:
        model: the model whose parameters are scored; only parameters with ``requires_grad`` count.
        batches: ``(inputs, targets)`` tuples or dicts with ``"labels"``, e.g. a DataLoader.
        loss: per-sample loss ``(logits, targets) -> Tensor[batch]``.
        progress: show a live bar over the batches (nothing in a batch run: :mod:`nablatau.progress`).

    Returns:
        ``{parameter name: float32 tensor of the parameter's shape}``; a parameter that gets no gradient
        has importance 0.

    Raises:
        ConfigError: ``batches`` yielded no batch.
        DivergenceError: a NaN or infinite loss (``step`` is the batch's index).
    """
    device = model_device(model)
    parameters = {name: p for name, p in model.named_parameters() if p.requires_grad}
    importance = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in parameters.items()}
    count = 0
    total = len(batches) if hasattr(batches, "__len__") else None  # type: ignore[arg-type]
    bar = progress_bar(batches, desc="Fisher importance", unit="batch", total=total, leave=False, enabled=progress)
    with torch.enable_grad():
        for count, batch in enumerate(bar, start=1):
            inputs, targets = unpack(batch, device)
            if device.type == "cuda":
                inputs = channels_last(inputs)
            with autocast(device):
                logits = forward(model, inputs).float()
            mean = per_sample(loss, logits, targets).mean()
            if not torch.isfinite(mean):
                raise DivergenceError(
                    f"the loss became {float(mean.detach())} on batch {count - 1} while computing Fisher "
                    "importances; check the inputs and targets for NaN/inf.", epoch=0, step=count - 1)
            model.zero_grad(set_to_none=True)
            mean.backward()
            for name, p in parameters.items():
                if p.grad is not None:
                    importance[name] += p.grad.float() ** 2
    model.zero_grad(set_to_none=True)
    if count == 0:
        raise ConfigError("fisher_importance got no batch; pass a non-empty loader (the mean over batches "
                          "needs at least one)")
    return {name: value / count for name, value in importance.items()}


def ssd(model: nn.Module, forget: DataLoader, retain: DataLoader, val: DataLoader, *,
        alpha: float = 10.0, lam: float = 1.0, exponent: float = 1.0,
        **shared: Unpack[SharedSettings]) -> UnlearnResult:
    """Selective Synaptic Dampening (Foster et al. 2024): shrink the weights the forget set relies on.

    With :func:`fisher_importance` over the forget loader (``forget_imp``) and over shuffled batches of
    the whole training set (``full_imp``, :func:`training_set_batches`, as the SSD code's shuffled
    full-train loader), each trainable parameter element with ``forget_imp > alpha · full_imp`` is
    multiplied by ``min((lam · full_imp / forget_imp) ** exponent, 1)``; the others keep their value.
    The cap at 1 is the SSD code's lower bound: a weight never grows. No gradient step is taken: the
    cost is one pass of forward and backward over the forget set and one over the training set,
    reported as epoch 0; ``dampened_fraction`` in the history shows how much was selected.

    The shared parameters are described in :mod:`nablatau.baselines`. Here ``loss`` is the one whose
    batch mean is differentiated (default ``cross_entropy``, as the SSD code, or ``multilabel_bce``);
    ``train_mode`` is the model's mode while importances are computed, default eval, as the SSD code,
    so BatchNorm statistics do not move; ``seed`` seeds torch before the importances (dropout in train
    mode) and the training-set shuffle; ``progress`` also shows the importances' bars; ``callback`` is
    called as ``callback(0, model)`` after dampening; ``val`` is unused.

    Args:
        alpha: selection weighting α > 0; default 10 (∇τ reference settings, and the SSD paper's CIFAR
            setting).
        lam: dampening constant λ > 0; default 1 (same sources).
        exponent: exponent of the dampening factor, > 0; default 1 (the SSD code).

    Returns:
        An :class:`~nablatau.nabla_tau.UnlearnResult` with ``config["epochs"] == 1`` and one history row:
        ``dampened_fraction`` and ``dampened_parameters`` (share and number of the trainable parameter
        elements selected, all of which shrink when ``lam ≤ alpha``), ``mean_factor`` (mean factor over
        them, NaN when none) and ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task, a model without trainable parameters, out-of-range
            settings.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite loss; no weight is changed then.
    """
    run = Shared.parse("ssd", shared)
    problems = run.problems(forget, retain, val)
    for name, value in (("alpha", alpha), ("lam", lam), ("exponent", exponent)):
        if not value > 0:
            problems.append(f"{name} must be > 0, got {value}; SSD's defaults are alpha=10 (selection "
                            "weighting), lam=1 (dampening constant) and exponent=1")
    if not any(p.requires_grad for p in model.parameters()):
        problems.append("the model has no trainable parameter; SSD dampens the parameters with "
                        "requires_grad=True, so unfreeze the ones to dampen")
    raise_if_any(problems)
    loss = run.loss_function
    config = run.config(forget, retain, val, alpha=alpha, lam=lam, exponent=exponent, epochs=1,
                        train_mode=run.train_mode, seed=run.seed)
    with MethodLoop(model, config, run) as loop:
        for epoch in loop.epochs():
            forget_imp = _importance(model, forget, loss, "forget", run.progress)
            full_imp = _importance(model, training_set_batches(retain, forget, run.seed), loss, "training-set",
                                   run.progress)
            dampened, elements, factor_sum = 0, 0, 0.0
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    if name not in forget_imp:
                        continue  # frozen: not scored, not dampened
                    selected = forget_imp[name] > alpha * full_imp[name]
                    factor = (lam * full_imp[name][selected] / forget_imp[name][selected]) ** exponent
                    factor = factor.clamp(max=1.0)
                    parameter[selected] = parameter[selected] * factor.to(parameter.dtype)
                    dampened += int(selected.sum())
                    elements += selected.numel()
                    factor_sum += float(factor.sum())
            loop.end_epoch(epoch, dampened_fraction=dampened / elements, dampened_parameters=dampened,
                           mean_factor=factor_sum / dampened if dampened else math.nan)
    return loop.result


def _importance(model: nn.Module, batches: Iterable[Any], loss: PerSampleLoss, part: str,
                progress: bool) -> dict[str, torch.Tensor]:
    """:func:`fisher_importance` for :func:`ssd`, its divergence reported as SSD's."""
    try:
        return fisher_importance(model, batches, loss, progress=progress)
    except DivergenceError as error:
        message = (f"ssd loss became non-finite at epoch 0, step {error.step} of the {part} importance, "
                   f"so no weight was changed: {error}")
        raise DivergenceError(message, epoch=0, step=error.step) from error
