"""Data sets and forget-set selection for the unlearning experiments.

One concern per submodule:

* :mod:`~nablatau.data.cifar`: CIFAR-10/100 (images), read from the official files or downloaded;
* :mod:`~nablatau.data.goemotions`: GoEmotions (multi-label text), read from its TSV files or downloaded;
* :mod:`~nablatau.data.splits`: deterministic retain/forget splits (random or by class) of a training set
  and validation/test halves of a held-out set, as the reference implementation draws them;
* :mod:`~nablatau.data.loaders`: one loader per split, held on the device (:class:`ResidentLoader`) when it fits;
* :mod:`~nablatau.data.text`: a tokenising ``Dataset`` and a padding collate function for Hugging Face tokenizers.

Every public name is importable from ``nablatau.data`` itself. Data is looked up under :func:`data_dir`: an
explicit ``root``, else ``$NABLATAU_DATA_DIR``, else ``./data``.
"""

from ._common import ENV_VAR, PathLike, data_dir
from .cifar import (CIFAR100_MEAN, CIFAR100_STD, CIFAR_MEAN, CIFAR_STD, CIFAR_URL, ImageData, image_dataset_size,
                    load_cifar)
from .goemotions import (GOEMOTIONS_FILES, GOEMOTIONS_TRAIN_SIZE, GOEMOTIONS_URL, TextData, TextSplit,
                         load_goemotions)
from .loaders import ResidentLoader, can_stay_resident, loaders, tensors_of
from .splits import (UnlearningSplits, class_forget_split, forget_size, labels_of, make_splits, random_forget_split,
                     split_heldout, subset)
from .text import TextDataset, text_collate

__all__ = [
    "CIFAR100_MEAN", "CIFAR100_STD", "CIFAR_MEAN", "CIFAR_STD", "CIFAR_URL", "ENV_VAR", "GOEMOTIONS_FILES",
    "GOEMOTIONS_TRAIN_SIZE", "GOEMOTIONS_URL", "ImageData", "PathLike", "ResidentLoader", "TextData",
    "TextDataset", "TextSplit", "UnlearningSplits", "can_stay_resident", "class_forget_split", "data_dir",
    "forget_size", "image_dataset_size", "labels_of", "load_cifar", "load_goemotions", "loaders", "make_splits",
    "random_forget_split", "split_heldout", "subset", "tensors_of", "text_collate",
]
