"""The machinery ∇τ and every baseline share: one epoch loop, the bf16 fast path, and the divergence check.

Every unlearning method in nablatau runs the same way: seed torch, put the model in the requested
train/eval mode (and, on CUDA, in channels-last layout under bf16 autocast), run its epochs under a tqdm
bar, record one history row per epoch to which an optional callback adds its measurements, stop with a
:class:`~nablatau.errors.DivergenceError` at the first NaN/inf loss, and give the model back in the mode
and layout it came in. :class:`EpochLoop` does all of that once; a method only writes what happens inside
an epoch.

    >>> import torch
    >>> model = torch.nn.Linear(4, 3)
    >>> config = dict(method="demo", epochs=2, seed=0, train_mode=True)
    >>> with EpochLoop(model, config, progress=False) as loop:
    ...     for epoch in loop.epochs():
    ...         loop.end_epoch(epoch, loss=1.0 / (epoch + 1))
    >>> [(row["epoch"], row["loss"]) for row in loop.result.history], model.training
    ([(0, 1.0), (1, 0.5)], True)
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import (BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, Subset,
                              SubsetRandomSampler)
from .progress import progress_bar

from .batches import Inputs, channels_last, model_device, unpack
from .errors import ConfigError, DivergenceError

#: ``callback(epoch, model)``, called after every epoch; a returned mapping joins that epoch's history row.
EpochCallback = Callable[[int, nn.Module], "Mapping[str, Any] | None"]


@dataclass
class UnlearnResult:
    """What an unlearning method did: resolved settings, one history row per epoch, and wall time."""

    config: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0


#: The precisions of the CUDA fast path: ``"bf16"`` (bf16 autocast, the default) and ``"fp32"`` (none).
PRECISIONS = ("bf16", "fp32")
_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar("nablatau_precision", default="bf16")


@contextlib.contextmanager
def precision(name: str) -> Iterator[None]:
    """Everything nablatau runs inside the block (training, every method, the metrics and the audit) uses
    ``name`` on CUDA: ``"bf16"`` (the default, the fast path) or ``"fp32"`` (bf16 autocast off).

    The CPU always computes in full precision, so that runs there are exactly reproducible; the configs record
    the precision a run actually used (:func:`precision_of`).

        >>> with precision("fp32"):
        ...     precision_of(torch.device("cuda"))
        'fp32'
        >>> precision_of(torch.device("cuda")), precision_of(torch.device("cpu"))
        ('bf16', 'fp32')

    Raises:
        ConfigError: a name not in :data:`PRECISIONS`.
    """
    if name not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {name!r}: 'fp32' turns bf16 autocast off")
    token = _PRECISION.set(name)
    try:
        yield
    finally:
        _PRECISION.reset(token)


def precision_of(device: torch.device) -> str:
    """The precision a model on ``device`` computes in here: the block's on CUDA, ``"fp32"`` elsewhere."""
    return _PRECISION.get() if device.type == "cuda" else "fp32"


def autocast(device: torch.device) -> torch.autocast:
    """The one mixed-precision context of nablatau: bf16 autocast on CUDA unless :func:`precision` turns it off.

    bf16 on CUDA is the fast path; on the CPU full precision keeps runs exactly reproducible.

    Args:
        device: the device the model runs on.

    Returns:
        A ``torch.autocast`` context manager, enabled only when ``device`` computes in bf16.
    """
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision_of(device) == "bf16")


def finite_step(optimizer: torch.optim.Optimizer, total: torch.Tensor, *, method: str, epoch: int, step: int,
                detail: str = "") -> None:
    """Back-propagate ``total`` and step the optimizer, or raise :class:`DivergenceError` if it is NaN/inf.

    The check comes before the step, so a diverged run keeps the weights of its last finite step.

    Args:
        optimizer: the optimizer over the model's parameters.
        total: the scalar loss of this step.
        method: the method's name, for the error message.
        epoch, step: where the loss was computed, for the error message and the error's attributes.
        detail: extra context for the error message (e.g. the phase of the epoch).

    Raises:
        DivergenceError: ``total`` is NaN or infinite; the optimizer has not stepped.
    """
    if not torch.isfinite(total):
        where = f" ({detail})" if detail else ""
        raise DivergenceError(
            f"{method} loss became {float(total.detach())} at epoch {epoch}, step {step}{where}; the model keeps "
            "the weights of the last finite step. Lower lr, or check inputs and targets for NaN/inf.",
            epoch=epoch, step=step,
        )
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()


def cycle(loader: DataLoader) -> Iterator[Any]:
    """The batches of ``loader`` over and over: a new pass (and a new shuffle) each time it runs out.

    Unlike ``itertools.cycle`` it stores nothing, so a shuffling loader gives a fresh order every pass.
    """
    while True:
        yield from loader


def dataset_size(loader: DataLoader) -> int:
    """Number of samples one pass over ``loader`` yields: what its sampler draws, not ``len(loader.dataset)``.

    ``DataLoader(full_set, sampler=SubsetRandomSampler(indices))`` draws ``len(indices)`` samples of a
    ``full_set`` that may be ten times larger: α₀ (5/3 · forget fraction) and the configs must count the former.
    A ``drop_last`` loader yields whole batches only; a custom batch sampler is counted batch by batch (its
    sampler's length when it has one, else one pass over it); a loader without any length (an iterable data
    set) counts batches × batch size.

        >>> from torch.utils.data import SubsetRandomSampler, TensorDataset
        >>> data = TensorDataset(torch.zeros(100, 1))
        >>> dataset_size(DataLoader(data, batch_size=8, sampler=SubsetRandomSampler(range(30))))
        30
        >>> dataset_size(DataLoader(data, batch_size=8, drop_last=True))
        96
    """
    batches = getattr(loader, "batch_sampler", None)
    if isinstance(batches, BatchSampler):
        if batches.drop_last:
            return len(batches) * batches.batch_size
        with contextlib.suppress(TypeError):
            return len(batches.sampler)  # type: ignore[arg-type]
    elif batches is not None:
        with contextlib.suppress(AttributeError, TypeError):
            return len(batches.sampler)  # type: ignore[attr-defined]
        return sum(len(batch) for batch in batches)
    with contextlib.suppress(TypeError):
        return len(loader.dataset)  # type: ignore[arg-type]
    return len(loader) * (loader.batch_size or 1)


def loader_samples(loader: DataLoader, *, method: str, role: str) -> Dataset:
    """The samples one pass over ``loader`` draws, as a data set, for a method that builds its own loader.

    Retraining, SSD's training set and Amnesiac's relabelled union re-batch the samples behind a loader, as the
    reference does with ``loader.dataset``. Behind ``DataLoader(full_set, sampler=SubsetRandomSampler(idx))``
    that would be the whole ``full_set`` (the forget samples included, for a retain loader), so the drawn
    subset is taken instead; a sampler whose draws are not a fixed subset is refused with the fix.

    Raises:
        ConfigError: ``loader`` has no data set, or a sampler other than the default ones and
            ``SubsetRandomSampler``.
    """
    dataset = getattr(loader, "dataset", None)
    batches = getattr(loader, "batch_sampler", None)
    if isinstance(batches, BatchSampler):
        sampler = batches.sampler
    elif batches is not None:  # a custom batch sampler decides the draws; the loader's own sampler is unused
        sampler = getattr(batches, "sampler", batches)
    else:  # batch_size=None: the loader's sampler draws the items one by one
        sampler = getattr(loader, "sampler", None)
    if dataset is None:
        raise ConfigError(f"{method} builds its own loader from the samples of the {role} loader, but the "
                          f"{type(loader).__name__} passed has no data set; pass a torch DataLoader")
    if batches is None and not isinstance(loader, DataLoader):
        return dataset  # a loader of its own kind (nablatau's ResidentLoader) yields its whole data set
    if isinstance(sampler, SequentialSampler) or (isinstance(sampler, RandomSampler) and not sampler.replacement
                                                  and sampler.num_samples == len(dataset)):  # type: ignore[arg-type]
        return dataset
    if isinstance(sampler, SubsetRandomSampler):
        return Subset(dataset, list(sampler.indices))
    raise ConfigError(f"{method} builds its own loader from the samples of the {role} loader, and cannot tell which "
                      f"samples its {type(sampler).__name__} draws; pass "
                      f"DataLoader(torch.utils.data.Subset(dataset, indices), ...) or a SubsetRandomSampler")


class RunningMean:
    """Running sample-weighted mean of per-sample values (NaN when nothing was added).

        >>> mean = RunningMean()
        >>> mean.add(torch.tensor([1.0, 2.0])); mean.add(torch.tensor(4.0), count=2)
        >>> mean.value
        2.75
    """

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, values: torch.Tensor, count: int | None = None) -> None:
        """Add per-sample ``values``, or one batch mean ``values`` that stands for ``count`` samples."""
        values = values.detach()
        self.total += float(values.sum() if count is None else values * count)
        self.count += values.numel() if count is None else count

    @property
    def value(self) -> float:
        """The mean so far (NaN before the first value)."""
        return self.total / self.count if self.count else math.nan


class EpochLoop:
    """The epoch loop every method shares, as a context manager around the method's epochs.

    On entry: seeds torch with ``config["seed"]`` (when not ``None``), switches the model to
    channels-last on CUDA, puts it in ``config["train_mode"]`` and starts the clock and the epoch bar.
    :meth:`end_epoch` records a history row, runs the callback (its time is kept out of the wall time
    and of ``elapsed_s``, and the model is put back in ``train_mode`` after it, since a callback that
    evaluates may switch modes). On exit, normal or not: a :class:`DivergenceError` gets the history so
    far as ``error.history``, the bar closes, ``result.wall_time_s`` and ``config["callback_s"]`` are set,
    and the model goes back to the caller's mode and the default memory layout.

    Args:
        model: the model being unlearned, updated in place.
        config: the method's resolved settings; it must hold ``method``, ``epochs``, ``seed`` and
            ``train_mode``, and becomes ``result.config``.
        callback: ``callback(epoch, model)`` after every epoch (see :data:`EpochCallback`).
        progress: show progress over epochs (:mod:`nablatau.progress`: a live bar, or one line for a batch run).
        desc: the bar's label; default ``config["method"]``.

    Attributes:
        result: the :class:`UnlearnResult` being filled in.
        device: the model's device; ``on_cuda`` whether it is a CUDA device.
    """

    def __init__(self, model: nn.Module, config: dict[str, Any], *, callback: EpochCallback | None = None,
                 progress: bool = True, desc: str | None = None) -> None:
        self.model, self.config, self.callback, self.progress = model, config, callback, progress
        self.desc = config["method"] if desc is None else desc
        self.train_mode = config["train_mode"]
        self.result = UnlearnResult(config=config)
        self.device = model_device(model)
        self.on_cuda = self.device.type == "cuda"
        config.setdefault("precision", precision_of(self.device))

    def __enter__(self) -> EpochLoop:
        if self.config["seed"] is not None:
            torch.manual_seed(self.config["seed"])
        if self.on_cuda:  # the fast path: channels-last convolutions under bf16 autocast
            self.model.to(memory_format=torch.channels_last)
        self.was_training = self.model.training
        self.model.train(self.train_mode)
        self.start = time.perf_counter()
        self.callback_time = 0.0  # measuring is not unlearning: kept out of wall_time_s
        self.bar = progress_bar(range(self.config["epochs"]), desc=self.desc, unit="epoch", enabled=self.progress)
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
        """The epoch numbers, 0 to ``config["epochs"] - 1``, advancing the bar."""
        yield from self.bar

    def unpack(self, batch: Any) -> tuple[Inputs, torch.Tensor]:
        """``(inputs, targets)`` of ``batch`` on the model's device (see :func:`~nablatau.batches.unpack`)."""
        return unpack(batch, self.device)

    def fast(self, inputs: Inputs) -> Inputs:
        """``inputs`` in the layout of the fast path: channels-last image batches on CUDA, else unchanged."""
        return channels_last(inputs) if self.on_cuda else inputs

    def frozen_copy(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` on this loop's device and layout, in eval mode, without gradients: a teacher."""
        frozen = copy.deepcopy(model).to(self.device).eval().requires_grad_(False)
        return frozen.to(memory_format=torch.channels_last) if self.on_cuda else frozen

    def end_epoch(self, epoch: int, optimizer: torch.optim.Optimizer | None = None, *,
                  postfix: Mapping[str, float] | None = None, **values: float) -> None:
        """Record the history row ``{epoch, **values, lr, elapsed_s}`` plus the callback's mapping.

        Args:
            epoch: the epoch just finished.
            optimizer: when given, its current learning rate is recorded as ``lr`` after ``values``;
                ``None`` for a method that takes no step, or that records ``lr`` among ``values``.
            postfix: what the bar shows; default ``values``.
            **values: the epoch's measurements (losses, α, ...), in the order of the row.
        """
        lr = {} if optimizer is None else {"lr": optimizer.param_groups[0]["lr"]}
        row = dict(epoch=epoch, **values, **lr, elapsed_s=time.perf_counter() - self.start - self.callback_time)
        if self.callback is not None:
            callback_start = time.perf_counter()
            row.update(self.callback(epoch, self.model) or {})
            self.model.train(self.train_mode)  # a callback that evaluates may have switched modes
            self.callback_time += time.perf_counter() - callback_start
        self.result.history.append(row)
        # A value that does not apply this epoch (NaN, e.g. SCRUB's forget KL after its max steps) is not shown.
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in (values if postfix is None else postfix).items()
                              if not (isinstance(v, float) and math.isnan(v))})
