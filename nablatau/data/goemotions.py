"""GoEmotions (multi-label text): the loader, the download of its files, and the parsing of its TSV files.

The files are read directly and every row is validated, so that a bad row names its file and line.
"""

from __future__ import annotations

import csv
import os
import pathlib
import tempfile
import urllib.request
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError, DataNotFoundError
from ._common import _DOWNLOAD_ERRORS, ENV_VAR, PathLike, data_dir

GOEMOTIONS_URL = "https://raw.githubusercontent.com/google-research/google-research/master/goemotions/data"
GOEMOTIONS_FILES = ("train.tsv", "dev.tsv", "test.tsv", "emotions.txt")

#: Training comments in the official GoEmotions train split.
GOEMOTIONS_TRAIN_SIZE = 43_410


@dataclass
class TextSplit:
    """One split of a multi-label text data set: texts, multi-hot targets and comment ids.

    ``targets`` is float32 ``[N, number of labels]``.
    """

    texts: list[str]
    targets: torch.Tensor
    ids: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TextData:
    """GoEmotions: the ``train``/``dev``/``test`` splits and the label names; ``data["train"]`` also works."""

    train: TextSplit
    dev: TextSplit
    test: TextSplit
    labels: list[str]

    def __getitem__(self, key: str) -> Any:
        if key not in ("train", "dev", "test", "labels"):
            raise KeyError(f"{key!r}; expected 'train', 'dev', 'test' or 'labels'")
        return getattr(self, key)


def load_goemotions(
    root: PathLike | None = None, *, download: bool | None = None, base_url: str = GOEMOTIONS_URL
) -> TextData:
    """Load GoEmotions from ``<root>/goemotions/`` (train.tsv, dev.tsv, test.tsv, emotions.txt).

    ``download=None`` or ``True`` fetch missing files from ``base_url``; ``download=False`` never does.
    Rows are validated (3 fields, label ids in range): bad rows raise :class:`DataError` naming file and
    line. Returns a :class:`TextData` (``data.train`` or ``data["train"]``).
    """
    folder = data_dir(root) / "goemotions"
    missing = [f for f in GOEMOTIONS_FILES if not (folder / f).is_file()]
    if missing:
        if download is False:
            raise DataNotFoundError(
                _goemotions_missing(folder, missing, base_url, "download=False was passed.")
            )
        folder.mkdir(parents=True, exist_ok=True)
        for name in missing:
            try:
                _fetch(f"{base_url}/{name}", folder / name)
            except _DOWNLOAD_ERRORS as exc:
                why = f"Downloading {name} failed: {type(exc).__name__}: {exc}."
                raise DataNotFoundError(_goemotions_missing(folder, missing, base_url, why)) from exc

    labels = [line.strip() for line in (folder / "emotions.txt").read_text(encoding="utf-8").splitlines()]
    labels = [label for label in labels if label]
    if not labels:
        raise DataError(
            f"{folder / 'emotions.txt'} holds no label names; replace it with the file from {base_url}."
        )
    return TextData(
        train=_read_tsv(folder / "train.tsv", len(labels)),
        dev=_read_tsv(folder / "dev.tsv", len(labels)),
        test=_read_tsv(folder / "test.tsv", len(labels)),
        labels=labels,
    )


def _goemotions_missing(folder: pathlib.Path, missing: list[str], base_url: str, why: str) -> str:
    return (
        f"GoEmotions not found: expected {', '.join(GOEMOTIONS_FILES)} in {folder.resolve()}, but "
        f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing. {why} "
        f"Fix: copy the files from {base_url}/ into that folder, or point root= or ${ENV_VAR} at the "
        "folder holding goemotions/, or allow download=True on a machine with internet access."
    )


def _fetch(url: str, dest: pathlib.Path, timeout: float = 60.0) -> None:
    # Write next to the destination and rename at the end, so an interrupted download leaves no file
    # that a later run would take for a complete one.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            written = 0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                written += len(chunk)
        # http.client's chunked read() silently stops at a dropped connection; compare with the header.
        if expected is not None and written != int(expected):
            raise DataError(f"{url}: got {written} of {expected} bytes; the connection was cut.")
        os.replace(tmp, dest)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def _read_tsv(path: pathlib.Path, num_labels: int) -> TextSplit:
    texts, ids, label_rows, problems = [], [], [], []
    with open(path, encoding="utf-8", newline="") as f:
        # A CSV reader, not str.split: texts holding '"' are CSV-quoted with doubled inner quotes.
        reader = csv.reader(f, delimiter="\t")
        for row in reader:
            if len(problems) >= 10:  # enough to see the pattern
                break
            where = f"line {reader.line_num}"
            if len(row) != 3:
                problems.append(
                    f"{where}: expected 3 tab-separated fields (text, label ids, id), got {len(row)}."
                )
                continue
            try:
                ids_here = [int(x) for x in row[1].split(",")]
            except ValueError:
                problems.append(f"{where}: label ids must be comma-separated integers, got {row[1]!r}.")
                continue
            bad = [i for i in ids_here if not 0 <= i < num_labels]
            if bad:
                problems.append(
                    f"{where}: label ids {bad} outside 0..{num_labels - 1} (emotions.txt has {num_labels})."
                )
                continue
            texts.append(row[0])
            label_rows.append(ids_here)
            ids.append(row[2])
    if problems:
        raise DataError(
            f"{path} is malformed:\n- "
            + "\n- ".join(problems)
            + f"\nFix: replace it with the original {path.name} from {GOEMOTIONS_URL}."
        )
    targets = torch.zeros(len(texts), num_labels, dtype=torch.float32)
    for row_idx, label_ids in enumerate(label_rows):
        targets[row_idx, label_ids] = 1.0
    return TextSplit(texts=texts, targets=targets, ids=ids)
