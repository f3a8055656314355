"""Data sets and forget-set selection for the unlearning experiments.

Three things live here:

* loaders for CIFAR-10/100 (images) and GoEmotions (multi-label text), reading the files directly so that
  rebuilt copies of the official files (same content, other bytes) load as well as the originals;
* deterministic splits of a training set into *retain* and *forget* parts (random or by class) and of a
  held-out set into *validation* (drives the unlearning target loss) and *test* (attack and accuracy),
  reproducing the ``random_split`` calls of the reference implementation index for index;
* a tokenising ``Dataset`` and a padding collate function for Hugging Face tokenizers.

Data is looked up under :func:`data_dir`: an explicit ``root``, else ``$NABLATAU_DATA_DIR``, else ``./data``.
"""

from __future__ import annotations

import csv
import math
import http.client
import numbers
import os
import pathlib
import pickle
import socket
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from .errors import ConfigError, DataError, DataNotFoundError, raise_if_any

PathLike = str | os.PathLike

ENV_VAR = "NABLATAU_DATA_DIR"

# Per-channel statistics of the CIFAR-10 training images; the reference and the NeurIPS'23 unlearning
# kit normalise with these (the std is the long-standing approximate value, not the exact 0.247/0.243/0.261).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
# CIFAR-100 has its own statistics, which the reference's CIFAR-100 notebooks normalise with.
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
GOEMOTIONS_URL = "https://raw.githubusercontent.com/google-research/google-research/master/goemotions/data"
GOEMOTIONS_FILES = ("train.tsv", "dev.tsv", "test.tsv", "emotions.txt")

# Errors a failed download can raise: network errors (URLError is an OSError), truncated HTTP bodies,
# torchvision's RuntimeError for a checksum mismatch, and broken archives.
_DOWNLOAD_ERRORS = (OSError, http.client.HTTPException, RuntimeError, tarfile.TarError, DataError)


def data_dir(path: PathLike | None = None) -> pathlib.Path:
    """Return the data root: ``path`` if given, else ``$NABLATAU_DATA_DIR``, else ``./data``."""
    if path is not None:
        return pathlib.Path(path).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path("data")


# --------------------------------------------------------------------------------------------- CIFAR


@dataclass
class ImageData:
    """An image classification data set: ``(image, label)`` tensor datasets and the class names.

    Images are float32 ``[N, 3, 32, 32]`` (normalised with :data:`CIFAR_MEAN` / :data:`CIFAR_STD` unless
    loaded with ``normalize=False``, then in ``[0, 1]``); labels are int64 ``[N]``.
    """

    train: TensorDataset
    test: TensorDataset
    classes: list[str]
    name: str

    @property
    def targets(self) -> torch.Tensor:
        """Labels of the training set."""
        return self.train.tensors[1]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class _CifarSpec:
    title: str
    folder: str  # what the official tarball unpacks to
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    label_key: str
    names_key: str
    torchvision_class: str
    mean: tuple[float, float, float]  # per-channel normalisation, as the reference notebooks of this data set
    std: tuple[float, float, float]
    num_classes: int
    n_train: int  # training images

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train, *self.test, self.meta)


_CIFAR = {
    "cifar10": _CifarSpec(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test=("test_batch",),
        meta="batches.meta",
        label_key="labels",
        names_key="label_names",
        torchvision_class="CIFAR10",
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        num_classes=10,
        n_train=50_000,
    ),
    "cifar100": _CifarSpec(
        title="CIFAR-100",
        folder="cifar-100-python",
        train=("train",),
        test=("test",),
        meta="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        torchvision_class="CIFAR100",
        mean=CIFAR100_MEAN,
        std=CIFAR100_STD,
        num_classes=100,
        n_train=50_000,
    ),
}


def load_cifar(
    name: str = "cifar10",
    root: PathLike | None = None,
    *,
    download: bool | None = None,
    normalize: bool = True,
) -> ImageData:
    """Load CIFAR-10 or CIFAR-100 (fine labels) from ``<root>/<name>/``, downloading it if missing.

    ``download=None`` or ``True`` fetch the official tarball with torchvision when files are missing;
    ``download=False`` never touches the network. Files already present are never re-downloaded.
    Raises :class:`DataNotFoundError` saying where to put the files if they are missing and cannot be fetched.
    """
    if name not in _CIFAR:
        raise ConfigError(f"Unknown CIFAR data set {name!r}; expected one of {sorted(_CIFAR)}.")
    spec = _CIFAR[name]
    root = data_dir(root) / name
    folder = root / spec.folder
    missing = [f for f in spec.files if not (folder / f).is_file()]
    if missing:
        if download is False:
            raise DataNotFoundError(_cifar_missing(spec, folder, missing, "download=False was passed."))
        try:
            _download_cifar(spec, root)
        except _DOWNLOAD_ERRORS as exc:
            raise DataNotFoundError(
                _cifar_missing(spec, folder, missing, f"Downloading it failed: {type(exc).__name__}: {exc}.")
            ) from exc
        missing = [f for f in spec.files if not (folder / f).is_file()]
        if missing:
            raise DataNotFoundError(
                _cifar_missing(spec, folder, missing, "The downloaded archive did not contain them.")
            )

    meta = _read_pickle(folder / spec.meta, [spec.names_key])
    statistics = (spec.mean, spec.std) if normalize else None
    train = _read_batches(folder, spec.train, spec.label_key, statistics)
    test = _read_batches(folder, spec.test, spec.label_key, statistics)
    return ImageData(train=train, test=test, classes=list(meta[spec.names_key]), name=name)


def _cifar_missing(spec: _CifarSpec, folder: pathlib.Path, missing: list[str], why: str) -> str:
    return (
        f"{spec.title} not found: expected the files {', '.join(spec.files)} in {folder.resolve()}, "
        f"but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing. {why} "
        f"Fix: download the 'python version' from {CIFAR_URL} and extract it into {folder.parent.resolve()} "
        f"(it unpacks to {spec.folder}/), or point root= or ${ENV_VAR} at the folder holding "
        f"{folder.parent.name}/, or allow download=True on a machine with internet access."
    )


def _download_cifar(spec: _CifarSpec, root: pathlib.Path) -> None:
    # Only the archive download of torchvision's class is used (its url, filename and tgz_md5): its
    # constructor would also md5-check each extracted pickle, which rejects rebuilt copies of the data.
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import download_and_extract_archive

    cls = getattr(tvd, spec.torchvision_class)
    archive = root / cls.filename
    existed = archive.exists()  # an archive the user put there is extracted and kept
    # torchvision's urlopen has no timeout: without one a silently dropped connection hangs forever.
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        download_and_extract_archive(
            cls.url, root, filename=cls.filename, md5=cls.tgz_md5, remove_finished=not existed
        )
    except BaseException:
        # A half-written or corrupted archive of ours would be found, and fail the same way, next time.
        if not existed and archive.exists():
            archive.unlink()
        raise
    finally:
        socket.setdefaulttimeout(previous_timeout)


def _read_pickle(path: pathlib.Path, keys: Sequence[str]) -> dict:
    try:
        with open(path, "rb") as f:
            # latin1 turns the Python-2 byte-string keys into str, as torchvision does.
            content = pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise DataError(
            f"{path} is not a readable CIFAR pickle ({exc}); delete it and download it again."
        ) from exc
    absent = [k for k in keys if not isinstance(content, dict) or k not in content]
    if absent:
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise DataError(
            f"{path} lacks the key(s) {absent} (found {found}); it is not a CIFAR python-version file. "
            "Replace it with the file from the official archive."
        )
    return content


def _read_batches(
    folder: pathlib.Path, files: Sequence[str], label_key: str,
    statistics: tuple[Sequence[float], Sequence[float]] | None,
) -> TensorDataset:
    images, labels = [], []
    for name in files:
        batch = _read_pickle(folder / name, ["data", label_key])
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch[label_key]) != len(data):
            raise DataError(
                f"{folder / name}: expected 'data' of shape [N, 3072] and N labels, got {data.shape} and "
                f"{len(batch[label_key])} labels. Replace it with the file from the official archive."
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    x = torch.from_numpy(np.concatenate(images)).float().div_(255)
    if statistics is not None:
        mean, std = statistics
        x.sub_(torch.tensor(mean).view(1, 3, 1, 1)).div_(torch.tensor(std).view(1, 3, 1, 1))
    return TensorDataset(x, torch.from_numpy(np.concatenate(labels)))


# ------------------------------------------------------------------------------------------- splits


#: Training comments in the official GoEmotions train split.
GOEMOTIONS_TRAIN_SIZE = 43_410


def image_dataset_size(dataset: str) -> tuple[int, int]:
    """``(classes, training images)`` of an image data set, known without loading it.

    Raises:
        ConfigError: an unknown data set, listing the known ones.
    """
    if dataset not in _CIFAR:
        raise ConfigError(f"unknown image data set {dataset!r}; choose from {sorted(_CIFAR)}")
    return _CIFAR[dataset].num_classes, _CIFAR[dataset].n_train


def forget_size(n: int, fraction: float) -> int:
    """How many of ``n`` samples :func:`random_forget_split` forgets at ``fraction`` (torch's rounding)."""
    return _fraction_sizes(n, [1 - fraction, fraction])[1]


def random_forget_split(n: int, fraction: float, seed: int = 42) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into ``(retain_indices, forget_indices)`` with ``fraction`` forgotten at random.

    Same call, hence same indices, as the reference: ``random_split(range(n), [1 - fraction, fraction],
    generator=torch.Generator().manual_seed(seed))``.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"forget fraction must be in (0, 1), got {fraction}; pass e.g. 0.1 for 10 %.")
    sizes = _fraction_sizes(n, [1 - fraction, fraction])
    if min(sizes) == 0:
        raise ConfigError(
            f"Forgetting a fraction {fraction} of {n} samples gives {sizes[0]} to retain and {sizes[1]} to "
            "forget; both must be non-empty. Use more samples or a fraction further from 0 and 1."
        )
    retain, forget = torch.utils.data.random_split(
        range(n), [1 - fraction, fraction], generator=torch.Generator().manual_seed(seed)
    )
    return torch.tensor(retain.indices, dtype=torch.long), torch.tensor(forget.indices, dtype=torch.long)


def _fraction_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    # torch's rule for fractional random_split: floor each share, then hand the remainder out round-robin.
    sizes = [int(n * f) for f in fractions]
    for i in range(n - sum(sizes)):
        sizes[i % len(sizes)] += 1
    return sizes


def class_forget_split(
    labels: torch.Tensor, classes: int | Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into ``(retain_indices, forget_indices)``: forget every sample of ``classes``."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise ConfigError(
            f"Class removal needs one integer label per sample (shape [N]); got labels of shape "
            f"{tuple(labels.shape)}. Multi-label targets cannot be split by class this way."
        )
    wanted = _as_list(classes)
    present = set(torch.unique(labels).tolist())
    valid = f"{min(present)}..{max(present)}" if present else "none (no labels)"
    problems = [f"forget_classes is empty; pass at least one class id in {valid}."] if not wanted else []
    problems += [
        f"Class id {c!r} is not among the labels; valid class ids are {valid}."
        for c in wanted
        if c not in present
    ]
    raise_if_any(problems)
    mask = torch.isin(labels, torch.tensor(wanted, dtype=labels.dtype))
    if mask.all():
        raise ConfigError(
            f"Forgetting classes {wanted} would forget all {len(labels)} samples and leave nothing to "
            "retain; keep at least one class."
        )
    return torch.nonzero(~mask).flatten(), torch.nonzero(mask).flatten()


def _as_list(classes: int | Sequence[int] | torch.Tensor) -> list:
    # Accept a single id, a sequence, numpy integers or a tensor; anything not an integer is kept as is
    # so that the "not among the labels" message shows it.
    if isinstance(classes, torch.Tensor):
        classes = classes.tolist()
    if isinstance(classes, numbers.Integral):
        return [int(classes)]
    return [int(c) if isinstance(c, numbers.Integral) else c for c in classes]


def split_heldout(n: int, seed: int = 42) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` in halves ``(val_indices, test_indices)`` as the reference does.

    The reference calls ``test_set, val_set = random_split(held_out, [0.5, 0.5], generator)`` with a
    generator seeded with ``seed``: the *first* part is the test set. The validation half feeds the
    unlearning target loss, the test half the membership attack and accuracy.
    """
    if n < 2:
        raise ConfigError(
            f"The held-out set needs at least 2 samples to split into validation and test; got {n}."
        )
    test, val = torch.utils.data.random_split(
        range(n), [0.5, 0.5], generator=torch.Generator().manual_seed(seed)
    )
    return torch.tensor(val.indices, dtype=torch.long), torch.tensor(test.indices, dtype=torch.long)


def subset(dataset: Dataset, n: int, seed: int) -> Subset:
    """A deterministic random subset of ``n`` items of ``dataset`` (indices in ascending order)."""
    size = len(dataset)
    if not 0 < n <= size:
        raise ConfigError(
            f"Cannot take a subset of {n} items from a data set of {size}; pass 1 <= n <= {size}."
        )
    perm = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return Subset(dataset, perm[:n].sort().values.tolist())


def labels_of(dataset: Dataset) -> torch.Tensor:
    """The labels of ``dataset``.

    Handles a ``TensorDataset`` (its second tensor), a ``Subset`` of a supported data set (recursively) and
    any data set with a ``.targets`` attribute.
    """
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        return dataset.tensors[1]
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return torch.as_tensor(targets)
    raise ConfigError(
        f"Cannot read the labels of a {type(dataset).__name__}: expected a TensorDataset (inputs, labels), a "
        "Subset of one, or a data set with a .targets attribute. Pass the labels explicitly instead."
    )


@dataclass
class UnlearningSplits:
    """The four data sets of an unlearning run, plus optional extras.

    ``retain`` and ``forget`` partition the training set; ``val`` and ``test`` halve the held-out set. For
    class removal, ``extras`` holds ``"test_forget_class"`` and ``"test_other_classes"``: the test half
    split by whether the label is one of the forgotten classes.
    """

    retain: Dataset
    forget: Dataset
    val: Dataset
    test: Dataset
    extras: dict[str, Dataset] = field(default_factory=dict)

    def items(self) -> Iterator[tuple[str, Dataset]]:
        """``(name, dataset)`` pairs of the four splits, then the extras."""
        yield from (("retain", self.retain), ("forget", self.forget), ("val", self.val), ("test", self.test))
        yield from self.extras.items()


def make_splits(
    train: Dataset,
    heldout: Dataset,
    *,
    forget_fraction: float | None = None,
    forget_classes: int | Sequence[int] | None = None,
    seed: int = 42,
    heldout_seed: int | None = None,
    heldout_labels: torch.Tensor | None = None,
) -> UnlearningSplits:
    """Build retain/forget from ``train`` and val/test from ``heldout``; give exactly one forget option.

    ``forget_fraction`` forgets a random fraction (:func:`random_forget_split`, drawn with ``seed``);
    ``forget_classes`` forgets whole classes (:func:`class_forget_split`, labels via :func:`labels_of`).
    The held-out halves are drawn with ``heldout_seed`` (default ``seed``; the reference's α₀ sweep
    keeps them fixed while its seeds vary the forget set). ``heldout_labels`` overrides the held-out
    labels used to fill ``extras`` for class removal.
    """
    if (forget_fraction is None) == (forget_classes is None):
        raise ConfigError(
            "Pass exactly one of forget_fraction (random forgetting, e.g. 0.1) and forget_classes (class "
            f"removal, e.g. [3]); got forget_fraction={forget_fraction!r}, forget_classes={forget_classes!r}."
        )
    if forget_fraction is not None:
        retain_idx, forget_idx = random_forget_split(len(train), forget_fraction, seed)
    else:
        retain_idx, forget_idx = class_forget_split(labels_of(train), forget_classes)
    val_idx, test_idx = split_heldout(len(heldout), seed if heldout_seed is None else heldout_seed)
    splits = UnlearningSplits(
        retain=Subset(train, retain_idx.tolist()),
        forget=Subset(train, forget_idx.tolist()),
        val=Subset(heldout, val_idx.tolist()),
        test=Subset(heldout, test_idx.tolist()),
    )
    if forget_classes is not None:
        labels = labels_of(heldout) if heldout_labels is None else torch.as_tensor(heldout_labels)
        if len(labels) != len(heldout):
            raise ConfigError(
                f"heldout_labels has {len(labels)} entries but the held-out set {len(heldout)}."
            )
        classes = _as_list(forget_classes)
        in_forget = torch.isin(labels[test_idx], torch.tensor(classes, dtype=labels.dtype))
        splits.extras["test_forget_class"] = Subset(heldout, test_idx[in_forget].tolist())
        splits.extras["test_other_classes"] = Subset(heldout, test_idx[~in_forget].tolist())
    return splits


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


# ---------------------------------------------------------------------------------------- GoEmotions


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


# ----------------------------------------------------------------------------------------- tokenising


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
