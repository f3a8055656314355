"""What ``nablatau.audit`` shows on a small MLP memorising scikit-learn's digits, before and after ∇τ's defaults.

A new user's first try: an MLP trained to memorise its training digits, 10 % of them forgotten with
``nablatau.unlearn`` and its defaults, and two references retrained without them (other seeds). Prints each
model's mean loss on the forget and held-out digits and the audit's numbers and sentence, for the original,
the unlearned model, and one reference audited against the other (retraining's own floor). Trains in seconds
on a CPU; the numbers are this machine's.

    .venv/bin/python benchmarks/audit_digits.py
    .venv/bin/python benchmarks/audit_digits.py --n-train 300 --forget 100
"""

from __future__ import annotations

import argparse
import copy

import pandas as pd
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nablatau


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int) -> nn.Module:
    """Full-batch Adam (lr 1e-2) for ``epochs``: long enough to memorise the training digits."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1497, help="training digits (the rest of 1,797 minus 300)")
    parser.add_argument("--forget", type=int, default=150, help="forgotten digits, the first of the training set")
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    heldout = DataLoader(TensorDataset(x[1497:], y[1497:]), batch_size=64)
    forget = DataLoader(TensorDataset(x[:args.forget], y[:args.forget]), batch_size=64)
    retain_x, retain_y = x[args.forget:args.n_train], y[args.forget:args.n_train]
    retain = DataLoader(TensorDataset(retain_x, retain_y), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))

    original = fit(mlp(0), x[:args.n_train], y[:args.n_train], seed=0, epochs=args.epochs)
    references = [fit(mlp(seed), retain_x, retain_y, seed=seed, epochs=args.epochs) for seed in (1, 2)]
    unlearned = copy.deepcopy(original)
    result = nablatau.unlearn(unlearned, forget, retain, heldout, progress=False, seed=0)
    print(f"{args.n_train} training digits, {args.forget} forgotten, {len(heldout.dataset)} held out; "
          f"∇τ defaults: α₀ {result.config['alpha0']:.3f}, {result.config['epochs']} epochs")

    rows = {}
    for name, model, refs in (("original", original, references), ("∇τ (defaults)", unlearned, references),
                              ("retrained, seed 1", references[0], references[1:])):
        report = nablatau.audit(model, forget, heldout, references=refs)
        rows[name] = {"forget loss": report.forget_loss, "references' forget loss": report.reference_forget_loss,
                      "population AUC": report.population_auc, "KS p": report.ks_pvalue,
                      "calibrated AUC": report.calibrated_auc, "calibrated p": report.calibrated_pvalue,
                      "TPR@1%FPR": report.tpr_at_1pct_fpr, "TPR@5%FPR": report.tpr_at_5pct_fpr}
        print(f"- {name}: {report.summary()}")
    print(pd.DataFrame(rows).T.to_markdown(floatfmt=".4g"))


if __name__ == "__main__":
    main()
