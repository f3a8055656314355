"""The one place that knows what a batch looks like.

nablatau is task-agnostic: a loader may yield ``(inputs, targets)`` tuples (torchvision style) or dicts
with a ``"labels"`` key (Hugging Face style). Models may return a tensor of logits or an object with a
``.logits`` attribute. Every loop in the package goes through :func:`unpack` and :func:`forward`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .errors import ConfigError

Inputs = Any  # a tensor, or a mapping of tensors passed to the model as keyword arguments


def _to(value: Any, device: torch.device | str | None) -> Any:
    if device is None or not isinstance(value, torch.Tensor):
        return value
    return value.to(device, non_blocking=True)


def unpack(batch: Any, device: torch.device | str | None = None) -> tuple[Inputs, torch.Tensor]:
    """Split a batch into model inputs and targets, moved to ``device``.

    Accepts ``(inputs, targets)`` sequences and mappings holding a ``"labels"`` entry; for mappings the
    inputs are every other entry (e.g. ``input_ids`` and ``attention_mask``).
    """
    if isinstance(batch, Mapping):
        if "labels" not in batch:
            raise ConfigError(
                f"A dict batch must hold the targets under 'labels'; got keys {sorted(batch)}. "
                "Rename the target entry to 'labels' in your dataset or collate function."
            )
        inputs = {k: _to(v, device) for k, v in batch.items() if k != "labels"}
        return inputs, _to(batch["labels"], device)
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return _to(batch[0], device), _to(batch[1], device)
    raise ConfigError(
        f"Expected a batch of (inputs, targets) or a dict with 'labels'; got {type(batch).__name__}. "
        "Make your DataLoader yield one of these two forms."
    )


def forward(model: nn.Module, inputs: Inputs) -> torch.Tensor:
    """Run ``model`` on ``inputs`` and return its logits as a tensor."""
    outputs = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return outputs.logits if hasattr(outputs, "logits") else outputs


def batch_size(targets: torch.Tensor) -> int:
    """Number of samples in a batch, read from its targets."""
    return int(targets.shape[0])


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def channels_last(inputs: Inputs) -> Inputs:
    """Image batches in channels-last layout (faster convolutions on CUDA); other inputs unchanged."""
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


#: Names the device every experiment runs on (e.g. ``cpu``, ``cuda``, ``cuda:1``); unset: CUDA when available.
DEVICE_ENV_VAR = "NABLATAU_DEVICE"


def default_device() -> torch.device:
    """``$NABLATAU_DEVICE`` when set, else CUDA when available (the fast path: bf16, channels-last, data
    resident on the GPU), else the CPU.

    The variable lets a GPU machine run on its CPU (the test suite does, so that its in-process checks
    compare the CPU's deterministic kernels) and picks one of several GPUs.

    Raises:
        ConfigError: a name torch does not know, or a CUDA device on a machine without one.
    """
    name = os.environ.get(DEVICE_ENV_VAR, "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"{DEVICE_ENV_VAR}={name!r} is not a device torch knows ({error}); use e.g. cpu, cuda "
                          f"or cuda:1, or unset it to use CUDA when available") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{DEVICE_ENV_VAR}={name!r} asks for CUDA but torch finds no CUDA device here; unset it "
                          "or set it to cpu")
    return device
