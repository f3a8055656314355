"""Progress over long loops: a live bar for a person watching, one summary line for a run read afterwards.

A notebook executed by papermill or nbval, or a script writing to a log, is read after the fact. A live
bar there becomes hundreds of carriage-return updates (in a notebook: stderr outputs between the
results), so the style follows who is watching:

- ``"bars"``: a terminal, or a notebook open in JupyterLab: tqdm's live bar (a widget when ipywidgets
  is installed);
- ``"lines"``: a notebook executed in batch (papermill, nbval, nbconvert) or output going to a file: no
  bar, and when a loop that is kept (``leave=True``) ends, one line on stdout, e.g.
  ``∇τ: 16/16 epochs in 457 s (alpha=0.016, forget=1.099, target=1.795)``;
- ``"off"``: nothing.

``NABLATAU_PROGRESS=bars|lines|off`` overrides the choice.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

STYLES = ("bars", "lines", "off")
#: Programs that execute a notebook without anyone watching: a kernel whose parent process is one of
#: them gets summary lines (matched in the parent's command line).
BATCH_EXECUTORS = ("papermill", "pytest", "nbval", "nbconvert", "nbclient")


def progress_style() -> str:
    """``"bars"``, ``"lines"`` or ``"off"``: ``NABLATAU_PROGRESS`` if set, else from where the code runs."""
    chosen = os.environ.get("NABLATAU_PROGRESS", "").strip().lower()
    if chosen:
        if chosen not in STYLES:
            raise ConfigError(f"NABLATAU_PROGRESS must be one of {STYLES}, got {chosen!r}; unset it to choose "
                              "from where the code runs")
        return chosen
    if _in_kernel():
        return "lines" if _parent_is_batch_executor() else "bars"
    return "bars" if _stream_is_terminal(sys.stderr) else "lines"


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str, unit: str = "it", total: int | None = None,
                 initial: int = 0, leave: bool = True, enabled: bool = True) -> Any:
    """A tqdm bar or a :class:`SummaryLine`, by :func:`progress_style`; both take tqdm's calls used here.

    Args:
        iterable: what to iterate over (or None, and call ``update``).
        desc: the label, e.g. the method's name.
        unit: what one step is ("epoch", "batch", "cell").
        total: the number of steps (default ``len(iterable)`` where it has one).
        initial: steps already done (a resumed training).
        leave: keep the bar (and in ``"lines"`` style print the summary) when it ends; inner loops
            pass False and leave no trace.
        enabled: False shows nothing (the callers' ``progress=False``).
    """
    style = progress_style() if enabled else "off"
    if style == "bars":
        return _live_bar()(iterable, desc=desc, unit=unit, total=total, initial=initial, leave=leave)
    return SummaryLine(iterable, desc=desc, unit=unit, total=total, initial=initial,
                       report=style == "lines" and leave)


class SummaryLine:
    """Counts steps like a tqdm bar and prints one line when closed (nothing when ``report`` is False)."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, desc: str, unit: str = "it",
                 total: int | None = None, initial: int = 0, report: bool = True) -> None:
        self.iterable, self.desc, self.unit, self.report = iterable, desc, unit, report
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.initial = self.n = initial
        self.postfix = ""
        self.start = time.perf_counter()
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.n += 1
        self.close()

    def __enter__(self) -> SummaryLine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, **values: Any) -> None:
        values = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{key}={value}" for key, value in values.items())

    def set_postfix_str(self, text: str = "") -> None:
        self.postfix = text

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.report:
            return
        steps = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        resumed = f", resumed after {self.initial}" if self.initial else ""
        postfix = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {steps} {self.unit}s in {time.perf_counter() - self.start:.0f} s{resumed}{postfix}",
              flush=True)


def _live_bar() -> Any:
    if _in_kernel():
        try:
            import ipywidgets  # noqa: F401  # the notebook bar needs it; without it tqdm warns and prints text
        except ImportError:
            pass
        else:
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm
    from tqdm.std import tqdm as text_tqdm

    return text_tqdm


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython") and getattr(sys.modules["IPython"], "get_ipython", lambda: None)()
    return shell is not None and hasattr(shell, "kernel")


def _parent_is_batch_executor() -> bool:
    """Whether this process (a notebook kernel) was started by papermill, nbval/pytest or nbconvert."""
    try:
        command = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # not Linux: no way to tell, so keep the live bar a person in JupyterLab expects
        return False
    return any(name in command for name in BATCH_EXECUTORS)


def _stream_is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
