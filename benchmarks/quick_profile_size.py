"""Benchmark: how small the quick image profile can get, measured on its original and retrained models.

Why: the quick profile has to fit a one-seed ``make reproduce`` in 45 minutes on 2 CPU cores, and every
training and unlearning run costs in proportion to its images; the original must also stay a
usable model (test accuracy ≥ 0.45) with a clear membership gap, and that every retrained model be a sound
reference. This runs the ``train_original`` experiment (:func:`nablatau.removal.run_train_original`) with the
quick profile's SGD recipe, only the number of images and of training epochs replaced, for each
``images:seed[:epochs]`` asked for, and reports the original's test accuracy on the 1,000-image test half that
every removal run tests on, its training accuracy, its loss attack (training set against test half) and its
training time. With ``--forget`` it also retrains from scratch without that random fraction, as subset removal
does (:func:`nablatau.removal.run_removal` with no method), and reports the soundness check every removal run
makes (:func:`nablatau.runner.reference_problems`). The models go to the checkpoint cache
(``$NABLATAU_CACHE_DIR``), so a rerun only measures; the results files to a temporary folder, so that they never
mix with the profile's own.

Measured on 2026-11-30 (the faster machine of docs/reproducing.md's *Time*), the original's test accuracy for seeds 1, 2, 3:
8,000 images × 20 epochs (the first SGD profile) 0.575, 0.553, 0.540; 4,000 × 20: 0.477, 0.473, 0.443;
4,000 × 25 (the next profile): 0.500, 0.485, 0.483; 4,500 × 20, seed 3: 0.467; 4,000 × 30, seeds 2, 3:
0.496, 0.472; 4,000 × 40, seeds 2, 3: 0.496, 0.496; 3,500 × 40 (the profile now): 0.519, 0.451, 0.523.

The retrained models (``--forget``), test accuracy original → retrained and final training loss original /
retrained, on the same days:

| images × epochs | seed, forgotten | test accuracy | final training loss | sound |
|---|---|---|---|---|
| 4,000 × 25 | 2, 15 % | 0.485 → 0.436 | 0.016 / 0.169 | no (loss) |
| 4,000 × 25 | 2, 30 % | 0.485 → 0.420 | 0.016 / 0.274 | no (accuracy, loss) |
| 4,000 × 25 | 3, 30 % | 0.483 → 0.428 | 0.051 / 0.194 | no (accuracy, loss) |
| 4,000 × 30 | 2, 15 % | 0.496 → 0.451 | 0.008 / 0.034 | yes |
| 4,000 × 30 | 2, 30 % | 0.496 → 0.439 | 0.008 / 0.152 | no (accuracy, loss) |
| 4,000 × 30 | 3, 30 % | 0.472 → 0.454 | 0.023 / 0.083 | yes |
| 4,000 × 40 | 2, 15 % | 0.496 → 0.458 | 0.005 / 0.012 | yes |
| 4,000 × 40 | 2, 30 % | 0.496 → 0.463 | 0.005 / 0.058 | yes |
| 4,000 × 40 | 3, 30 % | 0.496 → 0.449 | 0.012 / 0.020 | yes |
| 3,500 × 40 | 2, 15 % | 0.451 → 0.472 | 0.011 / 0.014 | yes |
| 3,500 × 40 | 3, 15 % | 0.523 → 0.501 | 0.004 / 0.005 | yes |
| 3,500 × 40 | 1, 30 % | 0.519 → 0.440 | 0.005 / 0.014 | no (accuracy) |
| 3,500 × 40 | 2, 30 % | 0.451 → 0.426 | 0.011 / 0.016 | yes |
| 3,500 × 40 | 3, 30 % | 0.523 → 0.485 | 0.004 / 0.018 | yes |

At 25 epochs the retrained models end under-trained (they take (1 − f) of the original's steps and the original
only converges in its last epochs); at 40 every one ends near its original's loss. What 40 epochs do not remove:
on 3,500 images, 30 % fewer of them can cost the test accuracy more than the check's 5 points by themselves
(seed 1: 0.079, its training loss converged), and the originals of different seeds already differ by up to 0.07.

    python benchmarks/quick_profile_size.py 3500:1 3500:2 3500:3                # about 7 minutes on 2 cores
    python benchmarks/quick_profile_size.py 3500:1 3500:2 --forget 0.15 0.3     # about 12 more
"""

from __future__ import annotations

import argparse
import tempfile

import pandas as pd

from nablatau.data import load_cifar
from nablatau.profiles import QUICK_IMAGE_RECIPE
from nablatau.removal import run_removal, run_train_original


def parse_point(text: str) -> tuple[int, int, int]:
    """``"3500:3:40"`` → (images, seed, epochs); the epochs default to the profile's."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected images:seed[:epochs], e.g. 3500:1:40, got {text!r}")
    images, seed = int(parts[0]), int(parts[1])
    epochs = int(parts[2]) if len(parts) == 3 else QUICK_IMAGE_RECIPE.epochs
    return images, seed, epochs


def profile_overrides(images: int, epochs: int) -> dict:
    """The quick profile with ``images`` images and ``epochs`` training epochs; nothing else changes."""
    return {"n_train": images, "recipe": QUICK_IMAGE_RECIPE.replace(epochs=epochs)}


def measure_original(data, images: int, seed: int, epochs: int, output_dir: str) -> dict:
    """The quick original with ``images`` images and ``epochs`` epochs, trained (or loaded) and measured."""
    run = run_train_original(profile="quick", seed=seed, data=data, output_dir=output_dir, progress=False,
                             overrides=profile_overrides(images, epochs))
    original = run.models["original"]
    return {"images": images, "epochs": epochs, "seed": seed, "test_acc": original["test_acc"],
            "train_acc": original["train_acc"], "loss_mia": original["mia_loss"], "train_s": original["runtime_s"]}


def measure_retrained(data, images: int, seed: int, epochs: int, fraction: float, output_dir: str) -> dict:
    """The model retrained without a random ``fraction`` of the images, checked against its original as every
    subset removal run checks it."""
    run = run_removal("subset_removal", profile="quick", forget_fraction=fraction, seed=seed, methods=[], data=data,
                      output_dir=output_dir, progress=False, overrides=profile_overrides(images, epochs))
    original, retrained = run.models["original"], run.models["retrain"]
    return {"images": images, "epochs": epochs, "seed": seed, "forget": fraction,
            "original_test_acc": original["test_acc"], "retrained_test_acc": retrained["test_acc"],
            "original_loss": original["history"][-1]["loss"], "retrained_loss": retrained["history"][-1]["loss"],
            "sound": not run.reference_problems, "retrain_s": retrained["runtime_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("points", nargs="+", type=parse_point, help="images:seed[:epochs], e.g. 3500:1:40")
    parser.add_argument("--forget", nargs="+", type=float, default=[], metavar="FRACTION",
                        help="also retrain without these random fractions (e.g. 0.15 0.3) and check the retrained models")
    parser.add_argument("--data-root", help="folder holding cifar10/ (default: $NABLATAU_DATA_DIR)")
    args = parser.parse_args()
    if not all(0 < fraction < 1 for fraction in args.forget):
        parser.error(f"--forget takes fractions between 0 and 1, e.g. 0.15 0.3; got {args.forget}")
    data = load_cifar("cifar10", args.data_root)
    originals, retrained = [], []
    with tempfile.TemporaryDirectory() as output_dir:
        for images, seed, epochs in args.points:
            originals.append(measure_original(data, images, seed, epochs, output_dir))
            print(originals[-1], flush=True)
            for fraction in args.forget:
                retrained.append(measure_retrained(data, images, seed, epochs, fraction, output_dir))
                print(retrained[-1], flush=True)
    print()
    print(pd.DataFrame(originals).to_markdown(index=False, floatfmt=("g", "g", "g", ".3f", ".3f", ".3f", ".1f")))
    if retrained:
        print()
        print(pd.DataFrame(retrained).to_markdown(index=False, floatfmt=("g", "g", "g", "g", ".3f", ".3f", ".4f",
                                                                         ".4f", "g", ".1f")))


if __name__ == "__main__":
    main()
