"""A tokenising ``Dataset`` and a padding collate function for Hugging Face tokenizers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import ConfigError


class TextDataset(Dataset):
    """Texts tokenised once at construction (truncated to ``max_length``, unpadded) with their targets.

    Items are ``{"input_ids": list[int], "attention_mask": list[int], "labels": targets[i]}``; batch them
    with :func:`text_collate`, which pads to the longest text of each batch.
    """

    def __init__(
        self, texts: Sequence[str], targets: torch.Tensor, tokenizer: Any, max_length: int = 40
    ) -> None:
        if len(texts) != len(targets):
            raise ConfigError(
                f"Got {len(texts)} texts but {len(targets)} targets; pass one target row per text."
            )
        if not isinstance(max_length, int) or max_length < 1:
            raise ConfigError(f"max_length must be a positive integer, got {max_length!r}.")
        encoded = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
        self.input_ids: list[list[int]] = list(encoded["input_ids"])
        self.attention_mask: list[list[int]] = list(encoded["attention_mask"])
        self.targets = torch.as_tensor(targets)
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": self.attention_mask[i],
            "labels": self.targets[i],
        }


def text_collate(tokenizer: Any) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
    """A collate function padding a batch of :class:`TextDataset` items to its longest text.

    Returns ``input_ids``/``attention_mask`` tensors from ``tokenizer.pad`` and float ``labels``.
    """

    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        labels = torch.stack([torch.as_tensor(f["labels"]) for f in features]).float()
        inputs = [{k: v for k, v in f.items() if k != "labels"} for f in features]
        batch = dict(tokenizer.pad(inputs, padding="longest", return_tensors="pt"))
        batch["labels"] = labels
        return batch

    return collate
