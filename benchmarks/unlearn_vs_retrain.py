"""Benchmark: ∇τ vs retraining from scratch on the retain set, on a real CIFAR-10 subset (CPU).

For each forget fraction the original model (cached) is unlearned with ∇τ's default rules and a fresh
ResNet-18 is trained on the retain set with the original's recipe (the paper's gold standard, same
epoch budget as the original): the ``quick`` profile of :mod:`nablatau.profiles`, run by
:func:`nablatau.removal.run_removal` like every notebook. Prints wall times, their ratio, and the
loss-MIA of the original, the unlearned and the retrained model; writes the rows as JSON when --output
is given. Trained models come from the checkpoint cache when there (their recorded training time is
reported), so run with an empty NABLATAU_CACHE_DIR for fresh timings.

    python benchmarks/unlearn_vs_retrain.py                    # 2,000 images, 3 / 15 / 30 %
    python benchmarks/unlearn_vs_retrain.py --n-train 5000 --fractions 0.1
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile

import pandas as pd
import torch

from nablatau.data import load_cifar
from nablatau.profiles import resolve_profile
from nablatau.removal import run_removal
from nablatau.runner import default_device
from nablatau.train import recipe_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2000, help="training images (subset of CIFAR-10)")
    parser.add_argument("--n-heldout", type=int, default=1000, help="held-out images (val + test halves)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.03, 0.15, 0.30])
    parser.add_argument("--batch-size", type=int, default=64, help="unlearning batch size")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (original, retrain)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write the table as JSON here")
    args = parser.parse_args()
    quick = resolve_profile("quick")
    overrides = {"n_train": args.n_train, "n_heldout": args.n_heldout, "unlearn_batch_size": args.batch_size,
                 "recipe": quick["recipe"].replace(epochs=args.epochs)}
    recipe, device = quick["recipe"].replace(epochs=args.epochs), default_device()
    cifar = load_cifar("cifar10")

    rows = []
    # The runner's results files go to a scratch folder, so every benchmark run measures afresh; trained
    # models still come from the checkpoint cache when there.
    with tempfile.TemporaryDirectory() as scratch:
        for fraction in args.fractions:
            run = run_removal("unlearn_vs_retrain", profile="quick", overrides=overrides, forget_fraction=fraction,
                              seed=args.seed, methods=["nablatau"], output_dir=scratch, data=cifar, device=device)
            before, after, gold = (run.models[name] for name in ("original", "nablatau", "retrain"))
            rows.append({
                "forget_fraction": fraction, "n_forget": len(before["sample_losses"]["forget"]),
                "unlearn_epochs": after["config"]["epochs"], "alpha0": round(after["config"]["alpha0"], 4),
                "unlearn_s": round(after["runtime_s"], 1), "retrain_s": round(gold["runtime_s"], 1),
                "retrain/unlearn": round(gold["runtime_s"] / after["runtime_s"], 2),
                "mia_original": round(before["mia_loss"], 3), "mia_unlearned": round(after["mia_loss"], 3),
                "mia_retrained": round(gold["mia_loss"], 3), "test_acc_original": round(before["test_acc"], 3),
                "test_acc_unlearned": round(after["test_acc"], 3), "test_acc_retrained": round(gold["test_acc"], 3),
            })
            original_time = before["runtime_s"]

    table = pd.DataFrame(rows)
    where = torch.cuda.get_device_name() if device.type == "cuda" else (
        f"{torch.get_num_threads()} CPU threads on {platform.processor() or platform.machine()}")
    print(f"\nCIFAR-10 subset: {args.n_train} train / {args.n_heldout} held-out images, ResNet-18, {where}; "
          f"original model trained in {original_time:.1f} s ({recipe.epochs} epochs, as recorded when trained).")
    print(table.to_string(index=False))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump({"args": vars(args), "recipe": recipe_spec(recipe), "rows": rows,
                       "torch": torch.__version__}, handle, indent=2)


if __name__ == "__main__":
    main()
