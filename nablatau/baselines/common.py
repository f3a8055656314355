"""What the baselines share: the shared parameters and their checks, the config, the loop, the optimizer, the KL.

:class:`Shared` reads the shared keyword arguments of a call (documented once in
:mod:`nablatau.baselines`) and checks them with the loaders; :class:`MethodLoop` is
:class:`~nablatau.loop.EpochLoop` plus what the methods' steps need (logits on the fast path, the
distillation divergence to a teacher, the divergence-checked optimizer step).

    >>> Shared.parse("demo", {"seed": 3}).train_mode, Shared.parse("demo", {}, train_mode=True).train_mode
    (False, True)
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..batches import Inputs, forward
from ..errors import ShapeError, raise_if_any
from ..loop import EpochCallback, EpochLoop, autocast, dataset_size, finite_step
from ..losses import TRAIN_LOSS, PerSampleLoss, loss_name, task_problems
from ..train import OPTIMIZERS, TrainRecipe, make_optimizer

# TRAIN_LOSS, loss_name and task_problems live in :mod:`nablatau.losses`, where ∇τ reads them too; the
# baselines import them from here.
__all__ = ["TRAIN_LOSS", "MethodLoop", "Shared", "SharedSettings", "distillation_kl", "loss_name", "method_optimizer",
           "optimizer_problems", "reset_parameters", "sgd_momentum", "task_problems"]


class SharedSettings(TypedDict, total=False):
    """The keyword arguments every baseline takes besides its own, for type checkers (``**shared``)."""

    task: str
    loss: PerSampleLoss | None
    train_mode: bool
    seed: int | None
    progress: bool
    callback: EpochCallback | None


@dataclass(frozen=True)
class Shared:
    """The shared settings of one call, defaults filled in (see :mod:`nablatau.baselines` for each)."""

    method: str
    task: str = "multiclass"
    loss: PerSampleLoss | None = None
    train_mode: bool | None = False
    seed: int | None = None
    progress: bool = True
    callback: EpochCallback | None = None

    @classmethod
    def parse(cls, method: str, given: Mapping[str, Any], *, train_mode: bool | None = False) -> Shared:
        """The shared settings of a call to ``method`` from its ``**shared`` keyword arguments.

        Args:
            method: the method's name, for the config and the messages.
            given: the keyword arguments the call passed beyond the method's own.
            train_mode: the method's default for ``train_mode``; ``None`` for a method without the
                setting (:func:`~nablatau.baselines.retrain`), which then rejects it.

        Returns:
            The :class:`Shared` settings of the call.

        Raises:
            TypeError: a keyword argument that is neither the method's own nor a shared one, as Python
                raises for any function.
        """
        accepted = set(SharedSettings.__annotations__) - ({"train_mode"} if train_mode is None else set())
        for name in given:
            if name not in accepted:
                raise TypeError(f"{method}() got an unexpected keyword argument {name!r}")
        return cls(method, **{"train_mode": train_mode, **given})

    @property
    def loss_function(self) -> PerSampleLoss:
        """``loss``, or the task's :data:`TRAIN_LOSS` when not given (read it after :meth:`problems`)."""
        return TRAIN_LOSS[self.task] if self.loss is None else self.loss

    def problems(self, forget: DataLoader, retain: DataLoader, val: DataLoader, *, lr: float | None = None,
                 epochs: int | None = None) -> list[str]:
        """What is wrong with the task, the loaders and, when given, the shared ``lr`` and ``epochs``.

        Returns:
            One message per problem (empty when all is well), for :func:`~nablatau.errors.raise_if_any`
            together with the method's own problems.
        """
        problems = task_problems(self.task)
        empty = [name for name, loader in zip(("forget", "retain", "val"), (forget, retain, val)) if not len(loader)]
        if empty:
            problems.append(f"the {' and '.join(empty)} loader(s) are empty; every method takes loaders over at "
                            "least one sample")
        if lr is not None and not lr > 0:
            problems.append(f"lr must be > 0, got {lr}")
        if epochs is not None and not (isinstance(epochs, numbers.Integral) and epochs >= 1):
            problems.append(f"epochs must be an integer >= 1, got {epochs!r}")
        return problems

    def config(self, forget: DataLoader, retain: DataLoader, val: DataLoader, **settings: Any) -> dict[str, Any]:
        """The run's config: method, task, ``settings`` in the given order, loss name and data sizes."""
        return dict(method=self.method, task=self.task, **settings, loss=loss_name(self.loss_function),
                    n_forget=dataset_size(forget), n_retain=dataset_size(retain), n_val=dataset_size(val))


class MethodLoop(EpochLoop):
    """:class:`~nablatau.loop.EpochLoop` with the shared ``callback`` and ``progress``, and step helpers.

    Args:
        model: the model being unlearned.
        config: the run's config (:meth:`Shared.config`), with ``epochs``, ``seed`` and ``train_mode``.
        shared: the call's shared settings.
    """

    def __init__(self, model: nn.Module, config: dict[str, Any], shared: Shared) -> None:
        super().__init__(model, config, callback=shared.callback, progress=shared.progress)

    def logits(self, model: nn.Module, inputs: Inputs) -> torch.Tensor:
        """Float32 logits of ``model`` on ``inputs``, computed on the fast path (bf16 and channels-last on CUDA)."""
        inputs = self.fast(inputs)
        with autocast(self.device):
            return forward(model, inputs).float()

    def divergence(self, student: nn.Module | torch.Tensor, teacher: nn.Module, inputs: Inputs,
                   temperature: float, task: str) -> torch.Tensor:
        """Per-sample KL(teacher ‖ student) on ``inputs``; ``student`` may be logits computed already."""
        student_logits = student if isinstance(student, torch.Tensor) else self.logits(student, inputs)
        with torch.no_grad():
            teacher_logits = self.logits(teacher, inputs)
        return distillation_kl(student_logits, teacher_logits, temperature=temperature, task=task)

    def step(self, optimizer: torch.optim.Optimizer, total: torch.Tensor, epoch: int, step: int,
             phase: str = "") -> None:
        """:func:`~nablatau.loop.finite_step` in the method's name; ``phase`` joins the error message."""
        finite_step(optimizer, total, method=self.config["method"], epoch=epoch, step=step, detail=phase)


def distillation_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 1.0,
                    task: str = "multiclass") -> torch.Tensor:
    """KL(teacher ‖ student) per sample, at ``temperature`` and scaled by temperature², as in distillation.

    ``"multiclass"``: the KL between the softmax distributions of ``teacher_logits / T`` and
    ``student_logits / T`` (the ``DistillKL`` criterion of the SCRUB code, which SCRUB takes from
    RepDistiller, per sample instead of averaged over the batch). ``"multilabel"``: the KL between the
    independent Bernoulli distributions ``sigmoid(teacher / T)`` and ``sigmoid(student / T)`` of every
    label, averaged over labels (our extension to multi-hot tasks, mirroring how ``multilabel_bce``
    averages over labels). Both are 0 where student and teacher agree and positive elsewhere.

    The T² factor keeps gradient magnitudes comparable across temperatures (Hinton et al. 2015); at
    T = 1 (Bad Teacher's setting) it is 1 and this is Bad Teacher's ``batchmean`` KL per sample.

    Args:
        student_logits: ``[batch, outputs]`` logits of the model being trained.
        teacher_logits: ``[batch, outputs]`` logits of the target model; treated as a target, so pass
            them computed under ``torch.no_grad()``.
        temperature: softening temperature T > 0.
        task: ``"multiclass"`` or ``"multilabel"``.

    Returns:
        A ``[batch]`` tensor of divergences.

    Raises:
        ConfigError: unknown task or non-positive temperature.
        ShapeError: logits that are not ``[batch, outputs]`` of the same shape.
    """
    problems = task_problems(task)
    if not temperature > 0:
        problems.append(f"temperature must be > 0, got {temperature}; the distillation default is 1 "
                        "(Bad Teacher) or 4 (SCRUB)")
    raise_if_any(problems)
    if student_logits.ndim != 2 or student_logits.shape != teacher_logits.shape:
        raise ShapeError(
            f"distillation_kl expects student and teacher logits of the same shape [batch, outputs]; got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}. Both models must have the "
            "same output layer."
        )
    student, teacher = student_logits.float() / temperature, teacher_logits.float() / temperature
    if task == "multiclass":
        log_student, log_teacher = F.log_softmax(student, dim=1), F.log_softmax(teacher, dim=1)
        divergence = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1)
    else:  # per-label Bernoulli KL, in log space for stability at saturated logits
        p_teacher = torch.sigmoid(teacher)
        positive = F.logsigmoid(teacher) - F.logsigmoid(student)
        negative = F.logsigmoid(-teacher) - F.logsigmoid(-student)
        divergence = (p_teacher * positive + (1.0 - p_teacher) * negative).mean(dim=1)
    return divergence * temperature ** 2


def method_optimizer(model: nn.Module, name: str, lr: float, momentum: float = 0.0,
                     weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """The optimizer ``name`` (``"sgd"`` or ``"adamw"``) over ``model``'s parameters, as training builds it.

    ``momentum`` counts for SGD only. Adam, as Amnesiac and Bad Teacher use it, is ``"adamw"`` with
    weight decay 0: the same update.
    """
    recipe = TrainRecipe(optimizer=name, lr=lr, momentum=momentum if name == "sgd" else 0.0,
                         weight_decay=weight_decay, epochs=1, batch_size=1)
    return make_optimizer(model.parameters(), recipe)


def sgd_momentum(optimizer: str, momentum: float) -> float | None:
    """The momentum to record in a config: ``momentum`` for SGD, ``None`` for an optimizer without it."""
    return momentum if optimizer == "sgd" else None


def optimizer_problems(optimizer: str, momentum: float, weight_decay: float) -> list[str]:
    """What is wrong with an optimizer choice (``optimizer``, ``momentum``, ``weight_decay``): one message each."""
    problems = []
    if optimizer not in OPTIMIZERS:
        problems.append(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not 0.0 <= momentum < 1.0:
        problems.append(f"momentum must be in [0, 1), got {momentum}")
    if not weight_decay >= 0:
        problems.append(f"weight_decay must be >= 0, got {weight_decay}")
    return problems


def reset_parameters(model: nn.Module) -> None:
    """Re-initialise in place every submodule of ``model`` that has ``reset_parameters()`` (PyTorch's default init)."""
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
