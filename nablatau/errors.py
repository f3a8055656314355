"""Error classes of nablatau.

Every error is a ``ValueError`` subclass (so ``except ValueError`` keeps working) whose message says
what was expected, what was received, and how to fix it.
"""

from __future__ import annotations


class NablatauError(ValueError):
    """Base class of every error raised by nablatau."""


class ConfigError(NablatauError):
    """A parameter is outside its allowed range or of the wrong kind."""


class DataError(NablatauError):
    """A data set is missing, corrupted or does not fit the request."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The data files are not where nablatau looks for them and cannot be downloaded."""


class ShapeError(NablatauError):
    """Model outputs and targets do not fit the per-sample loss."""


class DivergenceError(NablatauError):
    """Unlearning produced a NaN or infinite loss; the model keeps its last good weights."""

    def __init__(self, message: str, *, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class CheckpointError(NablatauError):
    """A cached checkpoint is corrupted or belongs to another configuration."""


def raise_if_any(problems: list[str], error: type[NablatauError] = ConfigError) -> None:
    """Raise one ``error`` listing every problem found, so users fix them all in one go."""
    if problems:
        if len(problems) == 1:
            raise error(problems[0])
        raise error("Found %d problems:\n- %s" % (len(problems), "\n- ".join(problems)))
