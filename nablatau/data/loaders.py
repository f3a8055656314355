"""Batches of the splits of an unlearning run: a ``DataLoader`` per split, or, when the splits are tensors
that fit on the device, a :class:`ResidentLoader` serving them from device memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ..errors import ConfigError
from .splits import UnlearningSplits


def tensors_of(dataset: Dataset) -> tuple[torch.Tensor, ...] | None:
    """The tensors behind a ``TensorDataset`` or (nested) ``Subset`` of one, gathered; else ``None``."""
    if isinstance(dataset, TensorDataset):
        return tuple(dataset.tensors)
    if isinstance(dataset, Subset):
        inner = tensors_of(dataset.dataset)
        if inner is not None:
            index = torch.as_tensor(dataset.indices, dtype=torch.long)
            return tuple(tensor[index] for tensor in inner)
    return None


class ResidentLoader:
    """Batches of a tensor data set held whole on one device: the GPU fast path.

    Per-sample indexing and collation dominate small-image training on a fast GPU; slicing tensors that
    already live on the device removes both. Shuffling uses ``generator`` (on the CPU) like a DataLoader.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, shuffle: bool = False,
                 generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                 drop_last: bool = False) -> None:
        tensors = tensors_of(dataset)
        if tensors is None:
            raise ConfigError(
                f"ResidentLoader needs a TensorDataset or a Subset of one, got {type(dataset).__name__}; "
                "use a DataLoader for other data sets."
            )
        self.dataset, self.batch_size, self.shuffle, self.generator = dataset, batch_size, shuffle, generator
        self.drop_last = drop_last
        self.tensors = tuple(tensor.to(device) for tensor in tensors)

    def __len__(self) -> int:
        n = len(self.tensors[0])
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.tensors[0])
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.tensors[0].device)
        for start in range(0, len(self) * self.batch_size if self.drop_last else n, self.batch_size):
            index = order[start:start + self.batch_size]
            yield tuple(tensor[index] for tensor in self.tensors)


def _fits_on(device: torch.device, datasets: list[Dataset]) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    needed = sum(t.numel() * t.element_size() for d in datasets for t in (tensors_of(d) or ()))
    return needed < free / 2  # leave half of the free memory to the model and activations


def can_stay_resident(datasets: Sequence[Dataset], device: torch.device | str | None,
                      collate_fn: Callable | None = None) -> bool:
    """Whether :class:`ResidentLoader` can serve ``datasets`` on ``device``: tensor-backed, default
    collation, and (on CUDA) together under half the free GPU memory."""
    return (device is not None and collate_fn is None
            and all(tensors_of(d) is not None for d in datasets)
            and _fits_on(torch.device(device), list(datasets)))


def loaders(
    splits: UnlearningSplits,
    batch_size: int,
    *,
    seed: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    shuffle: bool = True,
) -> dict[str, DataLoader | ResidentLoader]:
    """One loader per split (keys retain, forget, val, test and the extras).

    Retain and forget are shuffled with their own seeded generators, so a run is reproducible and the
    order of one does not depend on how far the other was iterated; the others keep their order.
    ``shuffle=False`` keeps every split in order: loaders for measuring, whose results then do not
    depend on how often a shuffled loader was iterated before.
    With ``device`` set and tensor-backed splits that fit (half the free GPU memory), the splits are
    copied to the device once and served by :class:`ResidentLoader` (the CUDA fast path).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    shuffled = {"retain": seed, "forget": seed + 1} if shuffle else {}
    named = dict(splits.items())
    generator = {name: torch.Generator().manual_seed(shuffled[name]) if name in shuffled else None
                 for name in named}
    if can_stay_resident(list(named.values()), device, collate_fn):
        return {name: ResidentLoader(dataset, batch_size, shuffle=name in shuffled, generator=generator[name],
                                     device=device) for name, dataset in named.items()}
    return {
        name: DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=name in shuffled,
            generator=generator[name],
            collate_fn=collate_fn,
            num_workers=num_workers,
            drop_last=False,
        )
        for name, dataset in named.items()
    }
