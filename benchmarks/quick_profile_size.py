"""Benchmark: how small the quick image profile can get, measured on its original model.

Why: the quick profile has to fit a one-seed ``make reproduce`` in 45 minutes on 2 CPU cores, and every
training and unlearning run costs in proportion to its images; issue 11 also asks that the original stay a
usable model (test accuracy ≥ 0.45) with a clear membership gap. This runs the ``train_original``
experiment (:func:`nablatau.removal.run_train_original`) with the quick profile's SGD recipe, only the number
of images and of training epochs replaced, for each ``images:seed[:epochs]`` asked for, and reports the
original's test accuracy on the 1,000-image test half that every removal run tests on, its training
accuracy, its loss attack (training set against test half) and its training time. The models go to the
checkpoint cache (``$NABLATAU_CACHE_DIR``), so a rerun only measures; the results files to a temporary
folder, so that they never mix with the profile's own.

Measured on 2026-11-30 (the faster machine of the README's *Time*), test accuracy for seeds 1, 2, 3:
8,000 images × 20 epochs (the first SGD profile) 0.575, 0.553, 0.540; 4,000 × 20: 0.477, 0.473, 0.443;
4,000 × 25 (the next profile): 0.500, 0.485, 0.483; 4,500 × 20, seed 3: 0.467; 4,000 × 30, seeds 2, 3:
0.496, 0.472; 4,000 × 40, seeds 2, 3: 0.496, 0.496; 3,500 × 40 (the profile now): 0.519, 0.451, 0.523.
Why 40 epochs: :mod:`nablatau.profiles` and ``benchmarks/retrain_soundness.py``.

    python benchmarks/quick_profile_size.py 3500:1:40 3500:2:40 3500:3:40     # about 7 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile

import pandas as pd

from nablatau.data import load_cifar
from nablatau.profiles import QUICK_IMAGE_RECIPE
from nablatau.removal import run_train_original


def parse_point(text: str) -> tuple[int, int, int]:
    """``"3500:3:40"`` → (images, seed, epochs); the epochs default to the profile's."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected images:seed[:epochs], e.g. 3500:1:40, got {text!r}")
    images, seed = int(parts[0]), int(parts[1])
    epochs = int(parts[2]) if len(parts) == 3 else QUICK_IMAGE_RECIPE.epochs
    return images, seed, epochs


def measure_original(data, images: int, seed: int, epochs: int, output_dir: str) -> dict:
    """The quick original with ``images`` images and ``epochs`` epochs, trained (or loaded) and measured."""
    run = run_train_original(profile="quick", seed=seed, data=data, output_dir=output_dir, progress=False,
                             overrides={"n_train": images, "recipe": QUICK_IMAGE_RECIPE.replace(epochs=epochs)})
    original = run.models["original"]
    return {"images": images, "epochs": epochs, "seed": seed, "test_acc": original["test_acc"],
            "train_acc": original["train_acc"], "loss_mia": original["mia_loss"], "train_s": original["runtime_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("points", nargs="+", type=parse_point, help="images:seed[:epochs], e.g. 3500:1:40")
    parser.add_argument("--data-root", help="folder holding cifar10/ (default: $NABLATAU_DATA_DIR)")
    args = parser.parse_args()
    data = load_cifar("cifar10", args.data_root)
    rows = []
    with tempfile.TemporaryDirectory() as output_dir:
        for images, seed, epochs in args.points:
            rows.append(measure_original(data, images, seed, epochs, output_dir))
            print(rows[-1], flush=True)
    print()
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=("g", "g", "g", ".3f", ".3f", ".3f", ".1f")))


if __name__ == "__main__":
    main()
