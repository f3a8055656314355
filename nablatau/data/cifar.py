"""CIFAR-10/100 (images): the loader, the download of the official archive, and the parsing of its pickles.

The files are read directly, so that rebuilt copies of the official files (same content, other bytes) load
as well as the originals.
"""

from __future__ import annotations

import pathlib
import pickle
import socket
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ..errors import ConfigError, DataError, DataNotFoundError
from ._common import _DOWNLOAD_ERRORS, ENV_VAR, PathLike, data_dir

# Per-channel statistics of the CIFAR-10 training images; the reference and the NeurIPS'23 unlearning
# kit normalise with these (the std is the long-standing approximate value, not the exact 0.247/0.243/0.261).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
# CIFAR-100 has its own statistics, which the reference's CIFAR-100 notebooks normalise with.
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


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



def image_dataset_size(dataset: str) -> tuple[int, int]:
    """``(classes, training images)`` of an image data set, known without loading it.

    Raises:
        ConfigError: an unknown data set, listing the known ones.
    """
    if dataset not in _CIFAR:
        raise ConfigError(f"unknown image data set {dataset!r}; choose from {sorted(_CIFAR)}")
    return _CIFAR[dataset].num_classes, _CIFAR[dataset].n_train
