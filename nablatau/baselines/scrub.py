"""SCRUB: a student moving away from its frozen teacher on the forget set and staying close on the retain set.

Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023,
arXiv:2302.09880; settings from the ∇τ reference notebooks and the SCRUB code.
"""

from __future__ import annotations

from typing import Unpack

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import ShapeError, raise_if_any
from ..loop import RunningMean, UnlearnResult
from ..losses import per_sample
from .common import MethodLoop, Shared, SharedSettings, method_optimizer, optimizer_problems, sgd_momentum


def parameter_distance(model: nn.Module, anchor: nn.Module) -> torch.Tensor:
    """Σ over parameters of ‖θ − θ_anchor‖_F: SCRUB's smoothing term (``param_dist`` of the SCRUB code).

    The norm of each parameter tensor's difference, summed over tensors (not one global norm), as the
    SCRUB code's ``param_dist`` computes it; ``anchor``'s parameters are constants. Its gradient at
    θ = θ_anchor is zero (torch's norm backward maps 0/0 to 0).

    Args:
        model: the model whose parameters θ move.
        anchor: a model of the same architecture whose parameters θ_anchor stay put.

    Returns:
        A scalar tensor on the model's device, differentiable with respect to ``model``'s parameters.

    Raises:
        ShapeError: the two models have different numbers of parameter tensors.
    """
    anchors = list(anchor.parameters())
    parameters = list(model.parameters())
    if len(anchors) != len(parameters):
        raise ShapeError(f"parameter_distance needs two models of the same architecture; got {len(parameters)} "
                         f"and {len(anchors)} parameter tensors")
    return sum((torch.linalg.vector_norm(p - a.detach()) for p, a in zip(parameters, anchors)),
               torch.zeros((), device=parameters[0].device))


def scrub(model: nn.Module, forget: DataLoader, retain: DataLoader, val: DataLoader, *,
          epochs: int = 6, max_steps: int = 3, alpha: float = 0.5, gamma: float = 1.0, temperature: float = 4.0,
          lr: float = 5e-4, optimizer: str = "sgd", momentum: float = 0.9, weight_decay: float = 5e-4,
          lr_milestones: tuple[int, ...] = (3, 5), lr_decay: float = 0.1, distance_weight: float = 0.5,
          **shared: Unpack[SharedSettings]) -> UnlearnResult:
    """SCRUB (Kurmanji et al. 2023): the model (student) leaves its frozen original (teacher) on the forget set.

    Every epoch below ``max_steps`` starts with a "max" pass over the forget loader that minimises
    −KL(teacher ‖ student); every epoch then makes a "min" pass over the retain loader that minimises
    α · KL(teacher ‖ student) + γ · loss. Both passes add ``distance_weight`` · :func:`parameter_distance`
    to the starting weights: the SCRUB code adds ``param_dist(model_s, swa_model, smoothing)`` with
    smoothing 0.5, and its SWA copy only starts averaging at epoch 10 (``sstart``), so within the
    reference's 6 epochs it stays the starting model. KL is :func:`~nablatau.baselines.distillation_kl`
    at ``temperature``. One optimizer serves both passes, and the learning rate is multiplied by
    ``lr_decay`` at each milestone epoch.

    The student trains in train mode by default, as in the SCRUB code: BatchNorm batch statistics and
    dropout make it differ from the eval-mode teacher from the first step. In eval mode it would start
    as an exact copy of the teacher, where the KL has zero gradient, and the first max pass would barely
    move it.

    The shared parameters are described in :mod:`nablatau.baselines`. Here ``model`` is the student
    (the teacher is a frozen copy of it, always in eval mode); ``task`` also picks the KL; ``loss`` is
    the min pass's; ``train_mode`` is the student's and defaults to True (the SCRUB code); ``val`` is
    unused.

    Args:
        epochs: default 6 (∇τ reference notebooks).
        max_steps: epochs that include a max pass; default 3 (∇τ reference notebooks; ``msteps`` in the
            SCRUB code).
        alpha: weight of the KL in the min pass; default 0.5 (∇τ reference notebooks, and the SCRUB
            code's small-scale setting).
        gamma: weight of the task loss in the min pass; default 1 (the SCRUB code's small-scale setting).
        temperature: distillation temperature; default 4 (∇τ reference notebooks, and the SCRUB code's
            ``kd_T``).
        lr: default 5e-4 (∇τ reference notebooks, and the SCRUB code's ``sgda_learning_rate``).
        optimizer: ``"sgd"`` or ``"adamw"``; default SGD (∇τ reference notebooks).
        momentum: SGD momentum (ignored by AdamW); default 0.9 (∇τ reference notebooks).
        weight_decay: default 5e-4 (∇τ reference notebooks).
        lr_milestones: 0-based epochs at which the learning rate decays; default (3, 5) (∇τ reference
            notebooks; the SCRUB code's 1-based ``lr_decay_epochs`` [3, 5] with its ``epoch > milestone``
            rule decays at the same epochs).
        lr_decay: decay factor at each milestone; default 0.1 (∇τ reference notebooks).
        distance_weight: weight of the distance to the starting weights in both passes; default 0.5
            (``smoothing`` in the ∇τ reference notebooks' SCRUB settings); 0 drops the term.

    Returns:
        An :class:`~nablatau.nabla_tau.UnlearnResult`; history rows hold ``forget_kl`` (the mean KL during
        the max pass, NaN in epochs without one), ``retain_kl``, ``retain_loss``, ``lr`` and
        ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task or optimizer, out-of-range settings.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite loss; the model keeps the last finite step's weights.
    """
    run = Shared.parse("scrub", shared, train_mode=True)
    problems = run.problems(forget, retain, val, lr=lr, epochs=epochs)
    problems += optimizer_problems(optimizer, momentum, weight_decay)
    if not max_steps >= 0:
        problems.append(f"max_steps must be >= 0, got {max_steps}; it counts the epochs with a max pass")
    for name, value in (("alpha", alpha), ("gamma", gamma)):
        if not value >= 0:
            problems.append(f"{name} must be >= 0, got {value}; SCRUB's min pass weighs α·KL + γ·loss")
    if not temperature > 0:
        problems.append(f"temperature must be > 0, got {temperature} (SCRUB's default is 4)")
    if not distance_weight >= 0:
        problems.append(f"distance_weight must be >= 0, got {distance_weight} (the reference's smoothing is 0.5)")
    if not 0 < lr_decay <= 1:
        problems.append(f"lr_decay must be in (0, 1], got {lr_decay}")
    if any(int(m) != m or m < 1 for m in lr_milestones):
        problems.append(f"lr_milestones must be positive integer epochs, got {tuple(lr_milestones)}")
    raise_if_any(problems)
    loss, task = run.loss_function, run.task
    config = run.config(forget, retain, val, epochs=epochs, lr=lr, optimizer=optimizer,
                        momentum=sgd_momentum(optimizer, momentum), weight_decay=weight_decay,
                        train_mode=run.train_mode, seed=run.seed, max_steps=max_steps, alpha=alpha, gamma=gamma,
                        temperature=temperature, lr_milestones=tuple(int(m) for m in lr_milestones),
                        lr_decay=lr_decay, distance_weight=distance_weight)
    with MethodLoop(model, config, run) as loop:
        teacher = loop.frozen_copy(model)
        opt = method_optimizer(model, optimizer, lr, momentum, weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(config["lr_milestones"]),
                                                         gamma=lr_decay)
        for epoch in loop.epochs():
            forget_kl, retain_kl, retained = RunningMean(), RunningMean(), RunningMean()
            step = 0
            if epoch < max_steps:
                for step, batch in enumerate(forget):
                    inputs, _ = loop.unpack(batch)
                    divergence = loop.divergence(model, teacher, inputs, temperature, task)
                    total = -divergence.mean() + distance_weight * parameter_distance(model, teacher)
                    loop.step(opt, total, epoch, step, phase="max pass over the forget set")
                    forget_kl.add(divergence)
                step += 1
            for offset, batch in enumerate(retain):
                inputs, targets = loop.unpack(batch)
                student_logits = loop.logits(model, inputs)
                divergence = loop.divergence(student_logits, teacher, inputs, temperature, task)
                losses = per_sample(loss, student_logits, targets)
                total = (alpha * divergence.mean() + gamma * losses.mean()
                         + distance_weight * parameter_distance(model, teacher))
                loop.step(opt, total, epoch, step + offset, phase="min pass over the retain set")
                retain_kl.add(divergence)
                retained.add(losses)
            loop.end_epoch(epoch, opt, forget_kl=forget_kl.value, retain_kl=retain_kl.value,
                           retain_loss=retained.value)
            scheduler.step()
    return loop.result
