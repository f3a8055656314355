"""Bad Teacher: distillation from an incompetent teacher on the forget set and the original on the retain set.

Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks
Using an Incompetent Teacher", AAAI 2023, arXiv:2205.08096.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from typing import Any, Unpack

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import raise_if_any
from ..loop import RunningMean, UnlearnResult
from .common import MethodLoop, Shared, SharedSettings, method_optimizer, reset_parameters


def bad_teacher(model: nn.Module, forget: DataLoader, retain: DataLoader, val: DataLoader, *,
                epochs: int = 1, lr: float = 1e-4, temperature: float = 1.0, retain_fraction: float = 0.3,
                incompetent_teacher: nn.Module | None = None, **shared: Unpack[SharedSettings]) -> UnlearnResult:
    """Bad Teacher (Chundawat et al. 2023): distil an incompetent teacher on forget, the original on retain.

    The competent teacher is a frozen copy of the original model. The incompetent teacher is a frozen
    copy of ``incompetent_teacher`` or, by default, of the model with every submodule that has
    ``reset_parameters()`` re-initialised (the paper uses a randomly initialised network of the same
    architecture). For a pretrained text encoder this re-draws exactly the layers with
    ``reset_parameters()`` (linear, embedding, normalisation layers) with PyTorch's default
    initialisation, not the Hugging Face initialiser; parameters held directly by modules without
    ``reset_parameters()`` keep their trained values. Pass your own ``incompetent_teacher`` to control it.

    Each epoch distils, minimising :func:`~nablatau.baselines.distillation_kl` (student, teacher) at
    ``temperature``, over every forget batch (teacher: incompetent) and the first
    ``ceil(retain_fraction · len(retain))`` retain batches (teacher: competent; a random subset when the
    retain loader shuffles), whole batches interleaved in a random order drawn from a generator seeded
    with ``seed`` (or 0). The reference code shuffles single samples of the union into batches of 256
    instead.

    The shared parameters are described in :mod:`nablatau.baselines`. Here ``model`` is the student;
    the batches' targets are not used (only the teachers' outputs are); ``task`` picks the KL; ``loss``
    is accepted for the uniform signature and recorded, as Bad Teacher uses no task loss; ``train_mode``
    is the student's (the teachers always run in eval mode); ``seed`` seeds torch before the loop (hence
    the re-initialisation) and the batch order (0 when ``None``); ``val`` is unused.

    Args:
        epochs: default 1 (the paper's code).
        lr: Adam learning rate; default 1e-4 (the paper's code). Adam is run as AdamW with weight decay
            0, which is the same update.
        temperature: KL temperature; default 1 (the paper's code, ``KL_temperature``).
        retain_fraction: share of the retain batches used per epoch, in [0, 1]; default 0.3 (the paper's
            30 % retain subset).
        incompetent_teacher: the model to imitate on the forget set; default a re-initialised copy.

    Returns:
        An :class:`~nablatau.nabla_tau.UnlearnResult`; history rows hold ``loss`` (mean KL over all
        samples), ``forget_kl`` (to the incompetent teacher), ``retain_kl`` (to the competent one),
        ``lr`` and ``elapsed_s``.

    Raises:
        ConfigError: empty loaders, unknown task, out-of-range settings.
        ShapeError: teachers whose outputs do not match the model's.
        DivergenceError: a NaN or infinite loss; the model keeps the last finite step's weights.
    """
    run = Shared.parse("bad_teacher", shared)
    problems = run.problems(forget, retain, val, lr=lr, epochs=epochs)
    if not temperature > 0:
        problems.append(f"temperature must be > 0, got {temperature} (Bad Teacher's default is 1)")
    if not 0.0 <= retain_fraction <= 1.0:
        problems.append(f"retain_fraction must be in [0, 1], got {retain_fraction}; the paper uses 0.3 of "
                        "the retain set")
    raise_if_any(problems)
    n_retain = math.ceil(round(retain_fraction * len(retain), 9))
    generator = torch.Generator().manual_seed(0 if run.seed is None else run.seed)
    config = run.config(forget, retain, val, epochs=epochs, lr=lr, optimizer="adam", momentum=None,
                        weight_decay=0.0, train_mode=run.train_mode, seed=run.seed, temperature=temperature,
                        retain_fraction=retain_fraction, retain_batches=n_retain,
                        incompetent_teacher="reinitialised copy" if incompetent_teacher is None else "given")
    with MethodLoop(model, config, run) as loop:
        competent = loop.frozen_copy(model)
        incompetent = loop.frozen_copy(incompetent_teacher if incompetent_teacher is not None else model)
        if incompetent_teacher is None:
            reset_parameters(incompetent)
        opt = method_optimizer(model, "adamw", lr)
        for epoch in loop.epochs():
            totals, forgotten, retained = RunningMean(), RunningMean(), RunningMean()
            order = _interleaved(forget, len(forget), itertools.islice(retain, n_retain), n_retain, generator)
            for step, (is_forget, batch) in enumerate(order):
                inputs, _ = loop.unpack(batch)
                teacher = incompetent if is_forget else competent
                divergence = loop.divergence(model, teacher, inputs, temperature, run.task)
                loop.step(opt, divergence.mean(), epoch, step)
                totals.add(divergence)
                (forgotten if is_forget else retained).add(divergence)
            loop.end_epoch(epoch, opt, loss=totals.value, forget_kl=forgotten.value,
                           retain_kl=retained.value)
    return loop.result


def _interleaved(forget_batches: Iterable[Any], n_forget: int, retain_batches: Iterable[Any], n_retain: int,
                 generator: torch.Generator) -> Iterator[tuple[bool, Any]]:
    """``(is_forget, batch)`` over all batches of both sources, sources in a random order."""
    is_forget = torch.arange(n_forget + n_retain) < n_forget
    order = is_forget[torch.randperm(n_forget + n_retain, generator=generator)].tolist()
    forget_iter, retain_iter = iter(forget_batches), iter(retain_batches)
    for flag in order:
        yield flag, next(forget_iter if flag else retain_iter)
