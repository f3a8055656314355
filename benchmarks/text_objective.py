"""Measurement: what the reference text notebook's ∇τ details change, on the quick GoEmotions profile (CPU).

Three details of the authors' text notebook (Unlearning_main_NLP) that nablatau did not follow before:
(1) the two-sided ascent term relu(Δ²) = Δ² instead of relu(Δ)², (2) unlearning a copy of the classifier
with head dropout 0, (3) L̄_val measured in eval mode. This script trains (or loads from the checkpoint
cache, shared with the text notebook) the quick profile's original and retrained models, then runs ∇τ
with the text settings from the same original four times, adding the details one by one:

    before      one-sided, head dropout 0.5, L̄_val measured in train mode (dropout on)
    +1          two-sided
    +1+2        two-sided, head dropout 0
    after       two-sided, head dropout 0, L̄_val in eval mode (what nablatau does now)

"L̄_val in train mode" is emulated by a validation loader that switches the model to train mode when
iterated; nablatau itself always measures L̄_val in eval mode. Prints loss-MIA, test accuracy and test
micro-F1 of each, next to the original's and the retrained model's; ``--output`` writes them as JSON.

    python benchmarks/text_objective.py --fractions 0.15 0.30
    python benchmarks/text_objective.py --unlearn-seeds 0 1 2 3   # each variant with 4 ∇τ seeds: the spread
"""

from __future__ import annotations

import argparse
import copy
import json

import pandas as pd

import nablatau
from nablatau.data import loaders
from nablatau.models import without_head_dropout
from nablatau.profiles import TEXT_METHOD_SETTINGS
from nablatau.runner import measuring_loaders, original_model, retrained_model
from nablatau.setups import text_setup
from nablatau.spec import Spec

COLUMNS = ("mia_loss", "test_acc", "test_f1_micro", "forget_acc", "retain_acc")


class TrainModeWhileIterated:
    """A loader that puts ``model`` in train mode whenever it is iterated: L̄_val as nablatau measured it before."""

    def __init__(self, loader, model):
        self.loader, self.model, self.dataset, self.batch_size = loader, model, loader.dataset, loader.batch_size

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.model.train()
        return iter(self.loader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.15, 0.30])
    parser.add_argument("--seed", type=int, default=0, help="the text notebook's seed: subsets, models, loaders")
    parser.add_argument("--unlearn-seeds", type=int, nargs="+", default=None,
                        help="rerun each ∇τ variant with these seeds (loader order, dropout) to see its spread")
    parser.add_argument("--output", help="write the table as JSON here")
    args = parser.parse_args()

    rows = []
    for fraction in args.fractions:
        # The text notebook's setup, so the original and retrained models come from the same checkpoints.
        spec = Spec("text", "original", profile="quick", forget_fraction=fraction, seed=args.seed)
        setup, settings = text_setup(spec, progress=False), spec.settings
        original, _ = original_model(setup)
        retrained, _ = retrained_model(setup)
        splits, batch_size = setup.splits, settings["unlearn_batch_size"]
        measured = measuring_loaders(splits, batch_size, collate_fn=setup.collate_fn)
        evaluate = lambda model: nablatau.evaluate(  # noqa: E731
            model, {k: measured[k] for k in ("retain", "forget", "test")}, task="multilabel", seed=args.seed)
        for name, model in (("original", original), ("retrain", retrained)):
            rows.append({"fraction": fraction, "model": name, **{c: evaluate(model)[c] for c in COLUMNS}})
        variants = {
            "before": dict(ascent="one_sided", head_dropout_0=False, train_mode_target=True),
            "+1": dict(ascent="two_sided", head_dropout_0=False, train_mode_target=True),
            "+1+2": dict(ascent="two_sided", head_dropout_0=True, train_mode_target=True),
            "after": dict(ascent="two_sided", head_dropout_0=True, train_mode_target=False),
        }
        for name, variant in variants.items():
            for seed in args.unlearn_seeds or [args.seed]:
                model = without_head_dropout(original) if variant["head_dropout_0"] else copy.deepcopy(original)
                batches = loaders(splits, batch_size=batch_size, seed=seed, collate_fn=setup.collate_fn)
                val = TrainModeWhileIterated(batches["val"], model) if variant["train_mode_target"] else batches["val"]
                nablatau_settings = {**TEXT_METHOD_SETTINGS["nablatau"], "ascent": variant["ascent"]}
                result = nablatau.unlearn(model, batches["forget"], batches["retain"], val, seed=seed,
                                          progress=False, **nablatau_settings)
                rows.append({"fraction": fraction, "model": f"∇τ {name}", "unlearn_seed": seed,
                             **{c: evaluate(model)[c] for c in COLUMNS},
                             "target_loss_epoch0": result.history[0]["target_loss"], "epochs": result.config["epochs"]})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.output:
        with open(args.output, "w") as file:
            json.dump(rows, file, indent=1)


if __name__ == "__main__":
    main()
