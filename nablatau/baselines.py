"""The unlearning baselines the ∇τ paper compares against, with the same calling convention as ∇τ.

Every method is called like :func:`nablatau.unlearn`::

    method(model, forget, retain, val, *, task="multiclass", loss=None, <settings>, seed=None,
           progress=True, callback=None) -> UnlearnResult

updates ``model`` in place, and works for multiclass (integer targets) and multilabel (multi-hot
targets) tasks alike. ``val`` is accepted by all of them for a uniform signature; only
:func:`finetune` (through ∇τ) uses it. :func:`retrain` takes a training ``recipe`` instead of
unlearning settings.

- :func:`finetune`: fine-tuning on the retain set, run as ∇τ with α = 0 for the reference's fine-tuning
  epochs (:func:`finetune_epochs`), as in the ∇τ reference notebooks (Trippa et al. 2024, arXiv:2403.14339).
- :func:`neggrad_plus`: NegGrad+, descent on the retain set and ascent on the forget set, weighted by β
  (Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023,
  arXiv:2302.09880).
- :func:`scrub`: SCRUB, a student moving away from its frozen teacher on the forget set and staying
  close to it on the retain set (Kurmanji et al. 2023, same paper).
- :func:`amnesiac`: the relabelling variant of amnesiac unlearning, training on the forget set with
  random wrong labels mixed with the retain set (Graves, Nagisetty, Ganesh, "Amnesiac Machine
  Learning", AAAI 2021, arXiv:2010.10981).
- :func:`bad_teacher`: distillation from an incompetent teacher on the forget set and from the original
  model on the retain set (Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting?
  Unlearning in Deep Networks Using an Incompetent Teacher", AAAI 2023, arXiv:2205.08096).
- :func:`ssd`: Selective Synaptic Dampening, shrinking the weights that matter far more to the forget set
  than to the whole training set, by their diagonal Fisher importances; no training (Foster, Schoepf,
  Brintrup, "Fast Machine Unlearning Without Retraining Through Selective Synaptic Dampening", AAAI 2024,
  arXiv:2308.07707).
- :func:`retrain`: the gold standard, retraining from scratch on the retain set with a training recipe.
  It is not in :data:`METHODS`: the experiment runner trains the retrained reference through its
  checkpoint cache instead.

Each default says where it comes from: the ∇τ reference notebooks, the method's own paper or code, or
our choice where neither fixes it. On CUDA every method runs in bf16 autocast with channels-last
convolutions like :func:`~nablatau.unlearn`; on the CPU it runs in plain fp32.

    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
    >>> float(distillation_kl(logits, logits, temperature=4.0, task="multiclass")[0])
    0.0
    >>> random_wrong_labels(torch.tensor([0, 1, 2]), 3, "multiclass", torch.Generator().manual_seed(0))
    tensor([1, 2, 1])
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, default_collate
from tqdm.auto import tqdm

from .batches import channels_last, forward, model_device, unpack
from .errors import ConfigError, DivergenceError, ShapeError, raise_if_any
from .evaluate import TASKS
from .losses import PerSampleLoss, cross_entropy, multilabel_bce
from .train import CIFAR_RECIPE, OPTIMIZERS, TrainRecipe, make_optimizer, recipe_spec, train
from .loop import EpochCallback, UnlearnResult, autocast, cycle, dataset_size, finite_step
from .unlearn import default_epochs, unlearn

#: The training loss each task uses when ``loss`` is not given (the reference notebooks' losses).
TRAIN_LOSS: dict[str, PerSampleLoss] = {"multiclass": cross_entropy, "multilabel": multilabel_bce}


# --- Public building blocks --------------------------------------------------------------------------


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
    problems = _task_problems(task)
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


def random_wrong_labels(targets: torch.Tensor, num_classes_or_labels: int, task: str,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Random targets that are wrong for every sample: amnesiac unlearning's relabelling.

    ``"multiclass"``: a class drawn uniformly among the ``num_classes - 1`` classes other than the true
    one (Graves et al. 2021). ``"multilabel"``: a multi-hot vector drawn uniformly among those with the
    same number of positive labels (targets above 0.5) as the true vector, other than the true vector
    itself. A vector with no positive label, or with every label positive, has no such alternative; it
    gets a random vector with one positive label, or with all labels but one positive (our choice).

    Args:
        targets: class ids ``[batch]`` (multiclass) or multi-hot ``[batch, labels]`` (multilabel).
        num_classes_or_labels: number of classes (multiclass) or labels (multilabel).
        task: ``"multiclass"`` or ``"multilabel"``.
        generator: the CPU random generator to draw from (seed it for reproducible relabelling).

    Returns:
        Wrong targets with the dtype and device of ``targets``.

    Raises:
        ConfigError: unknown task, or fewer than 2 classes.
        ShapeError: targets of the wrong shape, or class ids outside ``[0, num_classes)``.
    """
    raise_if_any(_task_problems(task))
    size = int(num_classes_or_labels)
    if task == "multiclass":
        if targets.ndim != 1 or targets.is_floating_point():
            raise ShapeError(
                f"multiclass relabelling expects integer class ids [batch], got {targets.dtype} targets of "
                f"shape {tuple(targets.shape)}. For multi-hot targets pass task='multilabel'."
            )
        if size < 2:
            raise ConfigError(f"relabelling needs at least 2 classes to pick a wrong one, got {size}")
        truth = targets.detach().cpu().long()
        if truth.numel() and (int(truth.min()) < 0 or int(truth.max()) >= size):
            raise ShapeError(
                f"class ids must lie in [0, {size}), got ids from {int(truth.min())} to {int(truth.max())}. "
                "Pass num_classes equal to the width of the model's output layer."
            )
        draw = torch.randint(0, size - 1, truth.shape, generator=generator)
        wrong = draw + (draw >= truth).long()  # skips the true class: uniform over the other classes
        return wrong.to(device=targets.device, dtype=targets.dtype)
    if targets.ndim != 2 or targets.shape[1] != size or size < 1:
        raise ShapeError(
            f"multilabel relabelling expects multi-hot targets [batch, {size}], got shape "
            f"{tuple(targets.shape)}. Pass the number of labels, or task='multiclass' for class ids."
        )
    truth = targets.detach().cpu() > 0.5
    positives = truth.sum(dim=1)
    positives = torch.where(positives == 0, 1, torch.where(positives == size, size - 1, positives))
    wrong = torch.zeros_like(truth)
    pending = torch.ones(truth.shape[0], dtype=torch.bool)
    while bool(pending.any()):  # redraw the rows that came out equal to the truth
        rows = pending.nonzero().squeeze(1)
        ranks = torch.rand(len(rows), size, generator=generator).argsort(dim=1).argsort(dim=1)
        draw = ranks < positives[rows, None]  # a uniformly random subset of that many labels
        wrong[rows] = draw
        pending[rows] = (draw == truth[rows]).all(dim=1)
    return wrong.to(device=targets.device, dtype=targets.dtype)


def training_set_batches(retain: DataLoader, forget: DataLoader, seed: int | None = None) -> DataLoader:
    """Shuffled batches of the whole training set (retain ∪ forget), at the retain loader's batch size.

    SSD scores the full training set with a shuffled loader, so forget samples are mixed into batches
    with retain samples: squaring the gradient of such a batch mean dilutes what is specific to the
    forget set, which is what lets a forget importance exceed α times the full one. Concatenating
    whole retain batches and whole forget batches instead would bound the full importance below by
    ``n_forget / n`` times the forget importance, and α = 10 would select nothing once 10 % is forgotten.
    """
    union = ConcatDataset([retain.dataset, forget.dataset])
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
        progress: show a tqdm bar over the batches.

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
    bar = tqdm(batches, desc="Fisher importance", unit="batch", total=total, leave=False, disable=not progress)
    with torch.enable_grad():
        for count, batch in enumerate(bar, start=1):
            inputs, targets = unpack(batch, device)
            if device.type == "cuda":
                inputs = channels_last(inputs)
            with autocast(device):
                logits = forward(model, inputs).float()
            mean = loss(logits, targets).mean()
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


#: The reference's fine-tuning epoch rules, by modality (see :func:`finetune_epochs`).
FINETUNE_EPOCH_RULES = ("images", "text")


def finetune_epochs(n_retain_batches: int, n_forget_batches: int, rule: str = "images") -> int:
    """Epochs of the fine-tuning baseline, exactly as the ∇τ reference notebooks count them.

    ``"images"``: ``int(|retain batches| / |forget batches| · 6)`` (Unlearning_main_Cifar10/100, the
    finetuning cell), which is ∇τ's :func:`~nablatau.unlearn.default_epochs` with multiplier 12, about
    twice ∇τ's epochs. ``"text"``: ``2 · int(|retain batches| / (2 · |forget batches|))``, exactly twice
    ∇τ's text epochs (Unlearning_main_NLP, ``forget_epochs*2``). The two differ from
    ``2 · default_epochs`` only through where ``int`` truncates.

        >>> finetune_epochs(23, 4, "images"), 2 * default_epochs(23, 4, 6), finetune_epochs(23, 4, "text")
        (34, 34, 4)
        >>> finetune_epochs(22, 4, "images"), 2 * default_epochs(22, 4, 6)
        (33, 32)
    """
    if rule == "images":
        return default_epochs(n_retain_batches, n_forget_batches, multiplier=12)
    if rule == "text":
        return 2 * default_epochs(n_retain_batches, n_forget_batches, multiplier=1)
    raise ConfigError(f"finetune epoch_rule must be one of {FINETUNE_EPOCH_RULES}, got {rule!r}")


def parameter_distance(model: nn.Module, anchor: nn.Module) -> torch.Tensor:
    """Σ over parameters of ‖θ − θ_anchor‖_F: SCRUB's smoothing term (``param_dist`` of the SCRUB code).

    The norm of each parameter tensor's difference, summed over tensors (not one global norm), as the
    SCRUB code's ``param_dist`` computes it; ``anchor``'s parameters are constants. Its gradient at
    θ = θ_anchor is zero (torch's norm backward maps 0/0 to 0).
    """
    anchors = list(anchor.parameters())
    parameters = list(model.parameters())
    if len(anchors) != len(parameters):
        raise ShapeError(f"parameter_distance needs two models of the same architecture; got {len(parameters)} "
                         f"and {len(anchors)} parameter tensors")
    return sum((torch.linalg.vector_norm(p - a.detach()) for p, a in zip(parameters, anchors)),
               torch.zeros((), device=parameters[0].device))


# --- The methods -------------------------------------------------------------------------------------


def finetune(
    model: nn.Module,
    forget: DataLoader,
    retain: DataLoader,
    val: DataLoader,
    *,
    task: str = "multiclass",
    loss: PerSampleLoss | None = None,
    epochs: int | None = None,
    epoch_rule: str = "images",
    lr: float = 1e-3,
    lr_end_factor: float | None = 0.1,
    train_mode: bool = False,
    seed: int | None = None,
    progress: bool = True,
    callback: EpochCallback | None = None,
) -> UnlearnResult:
    """Fine-tune on the retain set: ∇τ with α = 0 for the reference's fine-tuning epochs (:func:`finetune_epochs`).

    With α = 0 the ∇τ objective is the mean retain loss, so this is AdamW on retain batches with ∇τ's
    schedule; an "epoch" is, as in ∇τ, one pass over the forget loader's length (one retain batch per
    forget batch), and the retain iterator restarts after each full pass over the retain loader.

    Args:
        model: the trained model, updated in place.
        forget, retain, val: loaders as for :func:`~nablatau.unlearn` (``val`` sets ∇τ's target loss,
            which has no effect at α = 0).
        task: ``"multiclass"`` or ``"multilabel"``; picks the default loss.
        loss: per-sample loss; default ``cross_entropy`` (multiclass) or ``multilabel_bce`` (multilabel).
        epochs: default ``finetune_epochs(len(retain), len(forget), epoch_rule)``, the reference's.
        epoch_rule: ``"images"`` (``int(|R|/|F|·6)``, the reference image notebooks) or ``"text"``
            (twice ∇τ's text epochs, the reference text notebook); see :func:`finetune_epochs`.
        lr: AdamW learning rate: 1e-3 for images, 3e-4 for text (∇τ reference notebooks).
        lr_end_factor: linear decay to this factor over the epochs; ``None`` for a constant rate (the
            reference's text runs). Default 0.1 (∇τ reference notebooks, images).
        train_mode: train mode during unlearning (reference: eval for vision, train for text).
        seed: seeds torch before the loop.
        progress: show a tqdm bar over epochs.
        callback: ``callback(epoch, model)``, its mapping joins that epoch's history row.

    Returns:
        ∇τ's :class:`~nablatau.unlearn.UnlearnResult` with ``config["method"] == "finetune"``.

    Raises:
        ConfigError: empty loaders, unknown task, out-of-range settings.
        DivergenceError: a NaN or infinite loss.
    """
    problems = _common_problems(forget, retain, val, task, lr=lr, epochs=epochs)
    if epoch_rule not in FINETUNE_EPOCH_RULES:
        problems.append(f"epoch_rule must be one of {FINETUNE_EPOCH_RULES}, got {epoch_rule!r}: 'images' is "
                        "the reference image notebooks' int(|R|/|F|·6), 'text' twice ∇τ's text epochs")
    raise_if_any(problems)
    if epochs is None:
        epochs = finetune_epochs(len(retain), len(forget), epoch_rule)
    loss = _resolve_loss(task, loss)
    result = unlearn(model, forget, retain, val, loss=loss, alpha0=0.0, epochs=epochs, lr=lr,
                     lr_end_factor=lr_end_factor, train_mode=train_mode, callback=callback, seed=seed,
                     progress=progress)
    result.config.update(method="finetune", task=task, loss=_name(loss), epoch_rule=epoch_rule)
    return result


def neggrad_plus(
    model: nn.Module,
    forget: DataLoader,
    retain: DataLoader,
    val: DataLoader,
    *,
    task: str = "multiclass",
    loss: PerSampleLoss | None = None,
    beta: float = 0.999,
    epochs: int = 5,
    lr: float = 0.01,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    train_mode: bool = False,
    seed: int | None = None,
    progress: bool = True,
    callback: EpochCallback | None = None,
) -> UnlearnResult:
    """NegGrad+ (Kurmanji et al. 2023): β · mean retain loss − (1 − β) · mean forget loss per step.

    Each epoch is one pass over the retain loader; every step pairs a retain batch with the next forget
    batch, the forget loader cycling and restarting every epoch (as ``train_negrad`` in the SCRUB code).

    Args:
        model: the trained model, updated in place.
        forget, retain, val: loaders of ``(inputs, targets)`` tuples or dicts with ``"labels"``; ``val``
            is unused.
        task: ``"multiclass"`` or ``"multilabel"``; picks the default loss.
        loss: per-sample loss; default ``cross_entropy`` (multiclass) or ``multilabel_bce`` (multilabel).
        beta: weight of the retain term, in [0, 1]; β = 1 is fine-tuning on the retain set. Default 0.999:
            our choice (the SCRUB code's NegGrad+ uses 0.95 with 10 epochs, plain SGD at 0.01 and an L2
            pull towards the original weights; we keep one optimizer recipe across baselines instead).
        epochs: passes over the retain loader; default 5, our choice.
        lr: learning rate; default 0.01 as in the SCRUB code.
        optimizer: ``"sgd"`` or ``"adamw"``; default SGD as in the SCRUB code.
        momentum: SGD momentum (ignored by AdamW); default 0.9, our choice (the ∇τ reference's SGD recipe).
        weight_decay: default 5e-4, our choice (the ∇τ reference's SGD recipe).
        train_mode: train mode during unlearning (reference: eval for vision, train for text).
        seed: seeds torch before the loop.
        progress: show a tqdm bar over epochs.
        callback: ``callback(epoch, model)``, its mapping joins that epoch's history row.

    Returns:
        An :class:`~nablatau.unlearn.UnlearnResult`; history rows hold ``loss``, ``retain_loss`` and
        ``forget_loss`` (sample means over the epoch), ``lr`` and ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task or optimizer, out-of-range settings.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite loss; the model keeps the last finite step's weights.
    """
    problems = _common_problems(forget, retain, val, task, lr=lr, epochs=epochs)
    problems += _optimizer_problems(optimizer, momentum, weight_decay)
    if not 0.0 <= beta <= 1.0:
        problems.append(f"beta must be in [0, 1], got {beta}; beta is the weight of the retain loss "
                        "(NegGrad+ default 0.999)")
    raise_if_any(problems)
    loss = _resolve_loss(task, loss)
    config = _config("neggrad_plus", forget, retain, val, task=task, loss=loss, epochs=epochs, lr=lr,
                     optimizer=optimizer, momentum=_momentum(optimizer, momentum), weight_decay=weight_decay,
                     train_mode=train_mode, seed=seed, beta=beta)
    with _Loop(model, config, callback=callback, progress=progress) as loop:
        opt = _optimizer(model, optimizer, lr, momentum, weight_decay)
        for epoch in loop.epochs():
            totals, retained, forgotten = _Mean(), _Mean(), _Mean()
            forget_batches = cycle(forget)
            for step, retain_batch in enumerate(retain):
                retain_inputs, retain_targets = loop.unpack(retain_batch)
                forget_inputs, forget_targets = loop.unpack(next(forget_batches))
                retain_losses = loss(loop.logits(model, retain_inputs), retain_targets)
                forget_losses = loss(loop.logits(model, forget_inputs), forget_targets)
                total = beta * retain_losses.mean() - (1.0 - beta) * forget_losses.mean()
                loop.step(opt, total, epoch, step)
                totals.add(total, len(retain_losses))
                retained.add(retain_losses)
                forgotten.add(forget_losses)
            loop.end_epoch(epoch, opt, loss=totals.value, retain_loss=retained.value,
                           forget_loss=forgotten.value)
    return loop.result


def scrub(
    model: nn.Module,
    forget: DataLoader,
    retain: DataLoader,
    val: DataLoader,
    *,
    task: str = "multiclass",
    loss: PerSampleLoss | None = None,
    epochs: int = 6,
    max_steps: int = 3,
    alpha: float = 0.5,
    gamma: float = 1.0,
    temperature: float = 4.0,
    lr: float = 5e-4,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    lr_milestones: tuple[int, ...] = (3, 5),
    lr_decay: float = 0.1,
    distance_weight: float = 0.5,
    train_mode: bool = True,
    seed: int | None = None,
    progress: bool = True,
    callback: EpochCallback | None = None,
) -> UnlearnResult:
    """SCRUB (Kurmanji et al. 2023): the model (student) leaves its frozen original (teacher) on the forget set.

    Every epoch below ``max_steps`` starts with a "max" pass over the forget loader that minimises
    −KL(teacher ‖ student); every epoch then makes a "min" pass over the retain loader that minimises
    α · KL(teacher ‖ student) + γ · loss. Both passes add ``distance_weight`` · :func:`parameter_distance`
    to the starting weights: the SCRUB code adds ``param_dist(model_s, swa_model, smoothing)`` with
    smoothing 0.5, and its SWA copy only starts averaging at epoch 10 (``sstart``), so within the
    reference's 6 epochs it stays the starting model. KL is :func:`distillation_kl` at ``temperature``.
    One optimizer serves both passes, and the learning rate is multiplied by ``lr_decay`` at each
    milestone epoch.

    The student trains in train mode by default, as in the SCRUB code: BatchNorm batch statistics and
    dropout make it differ from the eval-mode teacher from the first step. In eval mode it would start
    as an exact copy of the teacher, where the KL has zero gradient, and the first max pass would barely
    move it.

    Args:
        model: the trained model (the student), updated in place; the teacher is a frozen copy of it.
        forget, retain, val: loaders of ``(inputs, targets)`` tuples or dicts with ``"labels"``; ``val``
            is unused.
        task: ``"multiclass"`` or ``"multilabel"``; picks the default loss and the KL.
        loss: per-sample loss of the min pass; default ``cross_entropy`` or ``multilabel_bce``.
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
        train_mode: train mode for the student; default True (the SCRUB code); the teacher always runs
            in eval mode.
        seed: seeds torch before the loop.
        progress: show a tqdm bar over epochs.
        callback: ``callback(epoch, model)``, its mapping joins that epoch's history row.

    Returns:
        An :class:`~nablatau.unlearn.UnlearnResult`; history rows hold ``forget_kl`` (the mean KL during
        the max pass, NaN in epochs without one), ``retain_kl``, ``retain_loss``, ``lr`` and
        ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task or optimizer, out-of-range settings.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite loss; the model keeps the last finite step's weights.
    """
    problems = _common_problems(forget, retain, val, task, lr=lr, epochs=epochs)
    problems += _optimizer_problems(optimizer, momentum, weight_decay)
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
    loss = _resolve_loss(task, loss)
    config = _config("scrub", forget, retain, val, task=task, loss=loss, epochs=epochs, lr=lr,
                     optimizer=optimizer, momentum=_momentum(optimizer, momentum), weight_decay=weight_decay,
                     train_mode=train_mode, seed=seed, max_steps=max_steps, alpha=alpha, gamma=gamma,
                     temperature=temperature, lr_milestones=tuple(int(m) for m in lr_milestones),
                     lr_decay=lr_decay, distance_weight=distance_weight)
    with _Loop(model, config, callback=callback, progress=progress) as loop:
        teacher = loop.frozen_copy(model)
        opt = _optimizer(model, optimizer, lr, momentum, weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(config["lr_milestones"]),
                                                         gamma=lr_decay)
        for epoch in loop.epochs():
            forget_kl, retain_kl, retained = _Mean(), _Mean(), _Mean()
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
                losses = loss(student_logits, targets)
                total = (alpha * divergence.mean() + gamma * losses.mean()
                         + distance_weight * parameter_distance(model, teacher))
                loop.step(opt, total, epoch, step + offset, phase="min pass over the retain set")
                retain_kl.add(divergence)
                retained.add(losses)
            loop.end_epoch(epoch, opt, forget_kl=forget_kl.value, retain_kl=retain_kl.value,
                           retain_loss=retained.value)
            scheduler.step()
    return loop.result


def amnesiac(
    model: nn.Module,
    forget: DataLoader,
    retain: DataLoader,
    val: DataLoader,
    *,
    task: str = "multiclass",
    loss: PerSampleLoss | None = None,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 128,
    num_classes: int | None = None,
    train_mode: bool = True,
    seed: int | None = None,
    progress: bool = True,
    callback: EpochCallback | None = None,
) -> UnlearnResult:
    """Amnesiac unlearning, relabelling variant (Graves et al. 2021): train on wrongly labelled forget data.

    As the ∇τ reference notebooks' ``amnesiac`` (from the SSD code): every forget sample gets a random
    wrong target once (:func:`random_wrong_labels`, from a generator seeded with ``seed``, or 0); the
    relabelled forget samples and the retain samples form one set, which every epoch shuffles sample by
    sample into batches of ``batch_size`` (the reference: 128) and trains on with Adam, the model in
    train mode (the reference's ``fit_one_unlearning_cycle`` calls ``model.train()``). The samples come
    from ``forget.dataset`` and ``retain.dataset``, batched with the retain loader's ``collate_fn``;
    the loaders' own batch sizes and order are not used.

    Args:
        model: the trained model, updated in place.
        forget, retain, val: loaders of ``(inputs, targets)`` tuples or dicts with ``"labels"``, whose
            ``dataset`` yields samples of the same form; ``val`` is unused.
        task: ``"multiclass"`` or ``"multilabel"``; picks the default loss and the relabelling.
        loss: per-sample loss; default ``cross_entropy`` or ``multilabel_bce``.
        epochs: default 3 (the reference notebooks, as the amnesiac code shared by Chundawat et al.'s
            bad-teaching code and Foster et al.'s selective-synaptic-dampening code).
        lr: Adam learning rate; default 1e-4 (same sources). Adam is run as AdamW with weight decay 0,
            which is the same update.
        batch_size: samples per step of the shuffled union; default 128 (the reference).
        num_classes: classes to relabel among (multiclass); default: the width of the model's output
            on the first forget batch.
        train_mode: train mode during unlearning; default True (the reference).
        seed: seeds torch before the loop, and the relabelling and sample order (0 when ``None``).
        progress: show a tqdm bar over epochs.
        callback: ``callback(epoch, model)``, its mapping joins that epoch's history row.

    Returns:
        An :class:`~nablatau.unlearn.UnlearnResult`; history rows hold ``loss`` (all samples),
        ``forget_loss`` (against the wrong targets), ``retain_loss``, ``lr`` and ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task, out-of-range settings.
        ShapeError: targets that do not fit ``loss`` or the relabelling.
        DivergenceError: a NaN or infinite loss; the model keeps the last finite step's weights.
    """
    problems = _common_problems(forget, retain, val, task, lr=lr, epochs=epochs)
    if num_classes is not None and not num_classes >= 2:
        problems.append(f"num_classes must be >= 2, got {num_classes}; leave it None to read it from the "
                        "model's output width")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        problems.append(f"batch_size must be a positive integer, got {batch_size!r} (the reference uses 128)")
    raise_if_any(problems)
    loss = _resolve_loss(task, loss)
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    config = _config("amnesiac", forget, retain, val, task=task, loss=loss, epochs=epochs, lr=lr,
                     optimizer="adam", momentum=None, weight_decay=0.0, batch_size=batch_size,
                     train_mode=train_mode, seed=seed)
    with _Loop(model, config, callback=callback, progress=progress) as loop:
        forget_samples = forget.dataset
        targets = torch.stack([torch.as_tensor(_sample_target(forget_samples[i])) for i in range(len(forget_samples))])
        if num_classes is None:
            inputs, _ = unpack(next(iter(forget)))
            num_classes = targets.shape[1] if task == "multilabel" else loop.output_width(model, inputs)
        config["num_classes"] = num_classes
        union = ConcatDataset([_Relabelled(forget_samples, random_wrong_labels(targets, num_classes, task, generator)),
                               retain.dataset])
        collate = getattr(retain, "collate_fn", None) or default_collate
        n_forget = len(forget_samples)
        opt = _optimizer(model, "adamw", lr, 0.0, 0.0)
        for epoch in loop.epochs():
            totals, forgotten, retained = _Mean(), _Mean(), _Mean()
            order = torch.randperm(len(union), generator=generator)
            for step, index in enumerate(order.split(batch_size)):
                inputs, targets = loop.unpack(collate([union[i] for i in index.tolist()]))
                losses = loss(loop.logits(model, inputs), targets)
                loop.step(opt, losses.mean(), epoch, step)
                is_forget = (index < n_forget).to(losses.device)
                totals.add(losses)
                forgotten.add(losses[is_forget])
                retained.add(losses[~is_forget])
            loop.end_epoch(epoch, opt, loss=totals.value, forget_loss=forgotten.value,
                           retain_loss=retained.value)
    return loop.result


def bad_teacher(
    model: nn.Module,
    forget: DataLoader,
    retain: DataLoader,
    val: DataLoader,
    *,
    task: str = "multiclass",
    loss: PerSampleLoss | None = None,
    epochs: int = 1,
    lr: float = 1e-4,
    temperature: float = 1.0,
    retain_fraction: float = 0.3,
    incompetent_teacher: nn.Module | None = None,
    train_mode: bool = False,
    seed: int | None = None,
    progress: bool = True,
    callback: EpochCallback | None = None,
) -> UnlearnResult:
    """Bad Teacher (Chundawat et al. 2023): distil an incompetent teacher on forget, the original on retain.

    The competent teacher is a frozen copy of the original model. The incompetent teacher is a frozen
    copy of ``incompetent_teacher`` or, by default, of the model with every submodule that has
    ``reset_parameters()`` re-initialised (the paper uses a randomly initialised network of the same
    architecture). For a pretrained text encoder this re-draws exactly the layers with
    ``reset_parameters()`` (linear, embedding, normalisation layers) with PyTorch's default
    initialisation, not the Hugging Face initialiser; parameters held directly by modules without
    ``reset_parameters()`` keep their trained values. Pass your own ``incompetent_teacher`` to control it.

    Each epoch distils, minimising :func:`distillation_kl` (student, teacher) at ``temperature``, over every
    forget batch (teacher: incompetent) and the first ``ceil(retain_fraction · len(retain))`` retain
    batches (teacher: competent; a random subset when the retain loader shuffles), whole batches
    interleaved in a random order drawn from a generator seeded with ``seed`` (or 0). The reference code
    shuffles single samples of the union into batches of 256 instead.

    Args:
        model: the trained model (the student), updated in place.
        forget, retain, val: loaders of ``(inputs, targets)`` tuples or dicts with ``"labels"``; the
            targets are not used (only the teachers' outputs are); ``val`` is unused.
        task: ``"multiclass"`` or ``"multilabel"``; picks the KL.
        loss: accepted for the uniform signature and recorded; Bad Teacher uses no task loss.
        epochs: default 1 (the paper's code).
        lr: Adam learning rate; default 1e-4 (the paper's code). Adam is run as AdamW with weight decay
            0, which is the same update.
        temperature: KL temperature; default 1 (the paper's code, ``KL_temperature``).
        retain_fraction: share of the retain batches used per epoch, in [0, 1]; default 0.3 (the paper's
            30 % retain subset).
        incompetent_teacher: the model to imitate on the forget set; default a re-initialised copy.
        train_mode: train mode for the student (reference: eval for vision, train for text); the
            teachers always run in eval mode.
        seed: seeds torch before the loop (hence the re-initialisation) and the batch order (0 when
            ``None``).
        progress: show a tqdm bar over epochs.
        callback: ``callback(epoch, model)``, its mapping joins that epoch's history row.

    Returns:
        An :class:`~nablatau.unlearn.UnlearnResult`; history rows hold ``loss`` (mean KL over all
        samples), ``forget_kl`` (to the incompetent teacher), ``retain_kl`` (to the competent one),
        ``lr`` and ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task, out-of-range settings.
        ShapeError: teachers whose outputs do not match the model's.
        DivergenceError: a NaN or infinite loss; the model keeps the last finite step's weights.
    """
    problems = _common_problems(forget, retain, val, task, lr=lr, epochs=epochs)
    if not temperature > 0:
        problems.append(f"temperature must be > 0, got {temperature} (Bad Teacher's default is 1)")
    if not 0.0 <= retain_fraction <= 1.0:
        problems.append(f"retain_fraction must be in [0, 1], got {retain_fraction}; the paper uses 0.3 of "
                        "the retain set")
    raise_if_any(problems)
    loss = _resolve_loss(task, loss)
    n_retain = math.ceil(round(retain_fraction * len(retain), 9))
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    config = _config("bad_teacher", forget, retain, val, task=task, loss=loss, epochs=epochs, lr=lr,
                     optimizer="adam", momentum=None, weight_decay=0.0, train_mode=train_mode, seed=seed,
                     temperature=temperature, retain_fraction=retain_fraction, retain_batches=n_retain,
                     incompetent_teacher="reinitialised copy" if incompetent_teacher is None else "given")
    with _Loop(model, config, callback=callback, progress=progress) as loop:
        competent = loop.frozen_copy(model)
        incompetent = loop.frozen_copy(incompetent_teacher if incompetent_teacher is not None else model)
        if incompetent_teacher is None:
            _reset_parameters(incompetent)
        opt = _optimizer(model, "adamw", lr, 0.0, 0.0)
        for epoch in loop.epochs():
            totals, forgotten, retained = _Mean(), _Mean(), _Mean()
            order = _interleaved(forget, len(forget), itertools.islice(retain, n_retain), n_retain, generator)
            for step, (is_forget, batch) in enumerate(order):
                inputs, _ = loop.unpack(batch)
                teacher = incompetent if is_forget else competent
                divergence = loop.divergence(model, teacher, inputs, temperature, task)
                loop.step(opt, divergence.mean(), epoch, step)
                totals.add(divergence)
                (forgotten if is_forget else retained).add(divergence)
            loop.end_epoch(epoch, opt, loss=totals.value, forget_kl=forgotten.value,
                           retain_kl=retained.value)
    return loop.result


def ssd(
    model: nn.Module,
    forget: DataLoader,
    retain: DataLoader,
    val: DataLoader,
    *,
    task: str = "multiclass",
    loss: PerSampleLoss | None = None,
    alpha: float = 10.0,
    lam: float = 1.0,
    exponent: float = 1.0,
    train_mode: bool = False,
    seed: int | None = None,
    progress: bool = True,
    callback: EpochCallback | None = None,
) -> UnlearnResult:
    """Selective Synaptic Dampening (Foster et al. 2024): shrink the weights the forget set relies on.

    With :func:`fisher_importance` over the forget loader (``forget_imp``) and over shuffled batches of
    the whole training set (``full_imp``, :func:`training_set_batches`, as the SSD code's shuffled
    full-train loader), each trainable parameter element with ``forget_imp > alpha · full_imp`` is
    multiplied by ``min((lam · full_imp / forget_imp) ** exponent, 1)``; the others keep their value.
    The cap at 1 is the SSD code's lower bound: a weight never grows. No gradient step is taken: the
    cost is one pass of forward and backward over the forget set and one over the training set,
    reported as epoch 0; ``dampened_fraction`` in the history shows how much was selected.

    Args:
        model: the trained model, updated in place.
        forget, retain, val: loaders of ``(inputs, targets)`` tuples or dicts with ``"labels"``; ``val``
            is unused.
        task: ``"multiclass"`` or ``"multilabel"``; picks the default loss.
        loss: per-sample loss whose batch mean is differentiated; default ``cross_entropy`` (as the SSD
            code) or ``multilabel_bce`` (multilabel).
        alpha: selection weighting α > 0; default 10 (∇τ reference settings, and the SSD paper's CIFAR
            setting).
        lam: dampening constant λ > 0; default 1 (same sources).
        exponent: exponent of the dampening factor, > 0; default 1 (the SSD code).
        train_mode: mode of the model while importances are computed; default eval, as the SSD code, so
            BatchNorm statistics do not move.
        seed: seeds torch before the importances (dropout in train mode).
        progress: show tqdm bars.
        callback: ``callback(0, model)`` after dampening; its mapping joins the history row.

    Returns:
        An :class:`~nablatau.unlearn.UnlearnResult` with ``config["epochs"] == 1`` and one history row:
        ``dampened_fraction`` and ``dampened_parameters`` (share and number of the trainable parameter
        elements selected, all of which shrink when ``lam ≤ alpha``), ``mean_factor`` (mean factor over
        them, NaN when none) and ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task, a model without trainable parameters, out-of-range
            settings.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite loss; no weight is changed then.
    """
    problems = _common_problems(forget, retain, val, task)
    for name, value in (("alpha", alpha), ("lam", lam), ("exponent", exponent)):
        if not value > 0:
            problems.append(f"{name} must be > 0, got {value}; SSD's defaults are alpha=10 (selection "
                            "weighting), lam=1 (dampening constant) and exponent=1")
    if not any(p.requires_grad for p in model.parameters()):
        problems.append("the model has no trainable parameter; SSD dampens the parameters with "
                        "requires_grad=True, so unfreeze the ones to dampen")
    raise_if_any(problems)
    loss = _resolve_loss(task, loss)
    config = _config("ssd", forget, retain, val, task=task, loss=loss, alpha=alpha, lam=lam, exponent=exponent,
                     epochs=1, train_mode=train_mode, seed=seed)
    with _Loop(model, config, callback=callback, progress=progress) as loop:
        for epoch in loop.epochs():
            forget_imp = _importance(model, forget, loss, "forget", progress)
            full_imp = _importance(model, training_set_batches(retain, forget, seed), loss, "training-set", progress)
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
            loop.end_epoch(epoch, None, dampened_fraction=dampened / elements, dampened_parameters=dampened,
                           mean_factor=factor_sum / dampened if dampened else math.nan)
    return loop.result


def retrain(
    model: nn.Module,
    forget: DataLoader,
    retain: DataLoader,
    val: DataLoader,
    *,
    recipe: TrainRecipe = CIFAR_RECIPE,
    task: str = "multiclass",
    loss: PerSampleLoss | None = None,
    build_model: Callable[[], nn.Module] | None = None,
    seed: int = 0,
    progress: bool = True,
    callback: EpochCallback | None = None,
) -> UnlearnResult:
    """Retrain from scratch on the retain set: the gold standard every unlearning method is measured by.

    ``model`` is re-initialised in place after ``torch.manual_seed(seed)``: with the weights of a fresh
    ``build_model()`` when given (the architecture's own initialiser, e.g. torchvision ResNet's Kaiming
    init, hence exactly the initialisation the original model was trained from when it was built the
    same way), else by calling ``reset_parameters()`` on every submodule that has one (PyTorch's default
    layer initialisation; parameters held directly by modules without it keep their trained values).
    It is then trained with :func:`nablatau.train.train` and ``recipe`` on a new loader over
    ``retain.dataset`` with the recipe's batch size (not the retain loader's), shuffled by a generator
    seeded with ``seed``. The forget loader is never read and ``val`` is unused.

    Not in :data:`METHODS`: the experiment runner trains the retrained reference through its checkpoint
    cache, so each forget set is retrained once.

    Args:
        model: the model to retrain in place (its trained weights are discarded); the caller's train or
            eval mode is restored at the end.
        forget, retain, val: loaders as for the other methods; only ``retain.dataset`` (and the retain
            loader's ``collate_fn``) is used.
        recipe: the training recipe, e.g. :data:`~nablatau.train.CIFAR_RECIPE` (default) or
            :data:`~nablatau.train.GOEMOTIONS_RECIPE`.
        task: ``"multiclass"`` or ``"multilabel"``; picks the default loss.
        loss: per-sample training loss; default ``cross_entropy`` or ``multilabel_bce``.
        build_model: builds a freshly initialised model of the same architecture; default: reset
            parameters in place.
        seed: seeds the initialisation, the shuffling and :func:`~nablatau.train.train`; on the CPU the
            same seed gives identical weights.
        progress: show tqdm bars.
        callback: ``callback(recipe.epochs - 1, model)``, called once after training (``train`` has no
            per-epoch hook); its mapping joins the last history row.

    Returns:
        An :class:`~nablatau.unlearn.UnlearnResult` whose config holds the recipe as a plain dict, and
        whose history is :func:`~nablatau.train.train`'s (``epoch`` counted from 1, ``loss``, ``lr``,
        ``elapsed_s``); ``wall_time_s`` is the training time.

    Raises:
        ConfigError: not a TrainRecipe, unknown task, an empty retain set or one without ``.dataset``.
        ShapeError: targets that do not fit ``loss``.
        DivergenceError: a NaN or infinite training loss.
    """
    problems = _task_problems(task)
    if not isinstance(recipe, TrainRecipe):
        problems.append(f"recipe must be a TrainRecipe, got {type(recipe).__name__}; use e.g. "
                        "nablatau.train.CIFAR_RECIPE or TrainRecipe(...)")
    dataset = getattr(retain, "dataset", None)
    if dataset is None:
        problems.append(f"retrain builds its loader from retain.dataset, but the {type(retain).__name__} "
                        "passed as retain has none; pass a DataLoader")
    elif not dataset_size(retain):
        problems.append("the retain loader is empty; retraining needs at least one retain sample")
    if build_model is not None and (isinstance(build_model, nn.Module) or not callable(build_model)):
        problems.append(f"build_model must be a function returning a fresh model, got a "
                        f"{type(build_model).__name__}; pass e.g. nablatau.models.resnet18 (not a model "
                        "instance) or leave it None")
    raise_if_any(problems)
    loss = _resolve_loss(task, loss)
    config = _config("retrain", forget, retain, val, task=task, loss=loss, recipe=recipe_spec(recipe),
                     epochs=recipe.epochs, seed=seed,
                     init="build_model" if build_model is not None else "reset_parameters")
    was_training = model.training
    torch.manual_seed(seed)
    if build_model is not None:
        model.load_state_dict(build_model().state_dict())
    else:
        _reset_parameters(model)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, generator=generator,
                        collate_fn=getattr(retain, "collate_fn", None))
    try:
        trained = train(model, loader, recipe, loss=loss, seed=seed, progress=progress)
        result = UnlearnResult(config=config, history=trained.history, wall_time_s=trained.wall_time_s)
        callback_start = time.perf_counter()
        if callback is not None:  # kept out of wall_time_s, as in the other methods
            result.history[-1].update(callback(recipe.epochs - 1, model) or {})
        config["callback_s"] = time.perf_counter() - callback_start if callback is not None else 0.0
    finally:
        model.train(was_training)
    return result


#: Every baseline by name, for experiment loops (:func:`retrain`, the reference, is not one of them).
METHODS: dict[str, Callable[..., UnlearnResult]] = {
    "finetune": finetune,
    "neggrad_plus": neggrad_plus,
    "scrub": scrub,
    "amnesiac": amnesiac,
    "bad_teacher": bad_teacher,
    "ssd": ssd,
}


# --- Shared machinery --------------------------------------------------------------------------------


class _Loop:
    """What every baseline's loop shares with ∇τ's: seeding, device and layout, modes, the epoch bar,
    history rows with callback extras, divergence checks, and restoring the model at the end."""

    def __init__(self, model: nn.Module, config: dict[str, Any], *, callback: EpochCallback | None,
                 progress: bool) -> None:
        self.model, self.config, self.callback, self.progress = model, config, callback, progress
        self.train_mode = config["train_mode"]
        self.result = UnlearnResult(config=config)
        self.device = model_device(model)
        self.on_cuda = self.device.type == "cuda"

    def __enter__(self) -> _Loop:
        if self.config["seed"] is not None:
            torch.manual_seed(self.config["seed"])
        if self.on_cuda:  # the fast path: channels-last convolutions under bf16 autocast
            self.model.to(memory_format=torch.channels_last)
        self.was_training = self.model.training
        self.model.train(self.train_mode)
        self.start = time.perf_counter()
        self.callback_time = 0.0  # measuring is not unlearning: kept out of wall_time_s
        self.bar = tqdm(range(self.config["epochs"]), desc=self.config["method"], unit="epoch",
                        disable=not self.progress)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if isinstance(error, DivergenceError):
            error.history = self.result.history  # type: ignore[attr-defined]
        self.bar.close()
        self.result.wall_time_s = time.perf_counter() - self.start - self.callback_time
        self.result.config["callback_s"] = self.callback_time
        self.model.train(self.was_training)
        if self.on_cuda:  # back to the default layout, which code flattening parameters expects
            self.model.to(memory_format=torch.contiguous_format)

    def epochs(self) -> Iterator[int]:
        yield from self.bar

    def unpack(self, batch: Any) -> tuple[Any, torch.Tensor]:
        return unpack(batch, self.device)

    def logits(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        if self.on_cuda:
            inputs = channels_last(inputs)
        with autocast(self.device):
            return forward(model, inputs).float()

    def divergence(self, student: nn.Module | torch.Tensor, teacher: nn.Module, inputs: Any,
                   temperature: float, task: str) -> torch.Tensor:
        """Per-sample KL(teacher ‖ student) on ``inputs``; ``student`` may be logits computed already."""
        student_logits = student if isinstance(student, torch.Tensor) else self.logits(student, inputs)
        with torch.no_grad():
            teacher_logits = self.logits(teacher, inputs)
        return distillation_kl(student_logits, teacher_logits, temperature=temperature, task=task)

    @torch.no_grad()
    def output_width(self, model: nn.Module, inputs: Any) -> int:
        model.eval()  # no BatchNorm statistics update from this probe
        width = self.logits(model, self.unpack(_repack(inputs, torch.empty(0)))[0]).shape[1]
        model.train(self.train_mode)
        return int(width)

    def frozen_copy(self, model: nn.Module) -> nn.Module:
        """A copy on the model's device, in eval mode, without gradients: a teacher."""
        frozen = copy.deepcopy(model).to(self.device).eval().requires_grad_(False)
        return frozen.to(memory_format=torch.channels_last) if self.on_cuda else frozen

    def step(self, optimizer: torch.optim.Optimizer, total: torch.Tensor, epoch: int, step: int,
             phase: str = "") -> None:
        finite_step(optimizer, total, method=self.config["method"], epoch=epoch, step=step, detail=phase)

    def end_epoch(self, epoch: int, optimizer: torch.optim.Optimizer | None, **losses: float) -> None:
        lr = {} if optimizer is None else {"lr": optimizer.param_groups[0]["lr"]}  # None: no step (SSD)
        row = dict(epoch=epoch, **losses, **lr, elapsed_s=time.perf_counter() - self.start - self.callback_time)
        if self.callback is not None:
            callback_start = time.perf_counter()
            row.update(self.callback(epoch, self.model) or {})
            self.model.train(self.train_mode)  # a callback that evaluates may have switched modes
            self.callback_time += time.perf_counter() - callback_start
        self.result.history.append(row)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})


class _Mean:
    """Running sample-weighted mean of per-sample values (NaN when nothing was added)."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, values: torch.Tensor, count: int | None = None) -> None:
        values = values.detach()
        self.total += float(values.sum() if count is None else values * count)
        self.count += values.numel() if count is None else count

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else math.nan


def _interleaved(forget_batches: Iterable[Any], n_forget: int, retain_batches: Iterable[Any], n_retain: int,
                 generator: torch.Generator) -> Iterator[tuple[bool, Any]]:
    """``(is_forget, batch)`` over all batches of both sources, sources in a random order."""
    is_forget = torch.arange(n_forget + n_retain) < n_forget
    order = is_forget[torch.randperm(n_forget + n_retain, generator=generator)].tolist()
    forget_iter, retain_iter = iter(forget_batches), iter(retain_batches)
    for flag in order:
        yield flag, next(forget_iter if flag else retain_iter)


def _importance(model: nn.Module, batches: Iterable[Any], loss: PerSampleLoss, part: str,
                progress: bool) -> dict[str, torch.Tensor]:
    """:func:`fisher_importance` for :func:`ssd`, its divergence reported as SSD's."""
    try:
        return fisher_importance(model, batches, loss, progress=progress)
    except DivergenceError as error:
        message = (f"ssd loss became non-finite at epoch 0, step {error.step} of the {part} importance, "
                   f"so no weight was changed: {error}")
        raise DivergenceError(message, epoch=0, step=error.step) from error


class _Relabelled(Dataset):
    """The samples of ``dataset`` with their targets replaced by ``targets`` (amnesiac's wrong labels)."""

    def __init__(self, dataset: Dataset, targets: torch.Tensor) -> None:
        self.dataset, self.targets = dataset, targets

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> Any:
        sample = self.dataset[i]
        if isinstance(sample, Mapping):
            return {**sample, "labels": self.targets[i]}
        return (sample[0], self.targets[i])


def _sample_target(sample: Any) -> Any:
    """The target of one data-set sample: ``sample["labels"]`` or ``sample[1]``."""
    return sample["labels"] if isinstance(sample, Mapping) else sample[1]


def _repack(inputs: Any, targets: torch.Tensor) -> Any:
    """A batch :func:`~nablatau.batches.unpack` reads back as ``(inputs, targets)``."""
    return {**inputs, "labels": targets} if isinstance(inputs, Mapping) else (inputs, targets)


def _reset_parameters(model: nn.Module) -> None:
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def _optimizer(model: nn.Module, name: str, lr: float, momentum: float,
               weight_decay: float) -> torch.optim.Optimizer:
    recipe = TrainRecipe(optimizer=name, lr=lr, momentum=momentum if name == "sgd" else 0.0,
                         weight_decay=weight_decay, epochs=1, batch_size=1)
    return make_optimizer(model.parameters(), recipe)


def _momentum(optimizer: str, momentum: float) -> float | None:
    return momentum if optimizer == "sgd" else None


def _resolve_loss(task: str, loss: PerSampleLoss | None) -> PerSampleLoss:
    return TRAIN_LOSS[task] if loss is None else loss


def _name(loss: PerSampleLoss) -> str:
    return getattr(loss, "__name__", repr(loss))


def _config(method: str, forget: DataLoader, retain: DataLoader, val: DataLoader, *, loss: PerSampleLoss,
            **settings: Any) -> dict[str, Any]:
    return dict(method=method, **settings, loss=_name(loss), n_forget=dataset_size(forget),
                n_retain=dataset_size(retain), n_val=dataset_size(val))


def _task_problems(task: str) -> list[str]:
    if task in TASKS:
        return []
    return [f"task must be one of {TASKS}, got {task!r}; use 'multiclass' for class-id targets and "
            "'multilabel' for multi-hot targets"]


def _common_problems(forget: DataLoader, retain: DataLoader, val: DataLoader, task: str, *,
                     lr: float | None = None, epochs: int | None = None) -> list[str]:
    problems = _task_problems(task)
    empty = [name for name, loader in zip(("forget", "retain", "val"), (forget, retain, val)) if not len(loader)]
    if empty:
        problems.append(f"the {' and '.join(empty)} loader(s) are empty; every method takes loaders over at "
                        "least one sample")
    if lr is not None and not lr > 0:
        problems.append(f"lr must be > 0, got {lr}")
    if epochs is not None and not (isinstance(epochs, numbers.Integral) and epochs >= 1):
        problems.append(f"epochs must be an integer >= 1, got {epochs!r}")
    return problems


def _optimizer_problems(optimizer: str, momentum: float, weight_decay: float) -> list[str]:
    problems = []
    if optimizer not in OPTIMIZERS:
        problems.append(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not 0.0 <= momentum < 1.0:
        problems.append(f"momentum must be in [0, 1), got {momentum}")
    if not weight_decay >= 0:
        problems.append(f"weight_decay must be >= 0, got {weight_decay}")
    return problems
