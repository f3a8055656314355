"""Real GoEmotions batches (dicts, multi-hot targets) go through ∇τ and the evaluation unchanged.

Uses the offline all-MiniLM-L6-v2 encoder on a 64-comment subset; it checks the text pipeline, not
the size of the unlearning effect (see the text_removal notebook for that).
"""

import pytest
import torch

import nablatau
from nablatau.data import load_goemotions, loaders, text_collate
from nablatau.profiles import TEXT_METHOD_SETTINGS, resolve_profile
from nablatau.setups import text_splits
from nablatau.models import TextClassifier, load_tokenizer

SETTINGS = resolve_profile("smoke", "text", n_train=64, n_val=16, n_test=32)


pytestmark = pytest.mark.slow  # end to end: a transformer through ∇τ, and trained, on real GoEmotions


@pytest.fixture(scope="module")
def text_batches(real_data_dir):
    tokenizer = load_tokenizer(SETTINGS["encoder"])
    _, splits = text_splits(load_goemotions(real_data_dir), SETTINGS, tokenizer, forget_fraction=0.25)
    return loaders(splits, batch_size=16, seed=0, collate_fn=text_collate(tokenizer))


def test_goemotions_dict_batches_are_what_unlearn_takes(text_batches):
    batch = next(iter(text_batches["forget"]))
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["labels"].shape[1] == 28 and batch["labels"].dtype.is_floating_point
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    assert batch["input_ids"].shape[1] <= SETTINGS["max_length"]


def test_reference_text_settings_run_on_real_batches(text_batches):
    torch.manual_seed(0)
    model = TextClassifier(SETTINGS["encoder"], num_labels=28, dropout=0.5, pooling=SETTINGS["pooling"])
    before = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    result = nablatau.unlearn(model, text_batches["forget"], text_batches["retain"], text_batches["val"],
                              seed=0, progress=False, **TEXT_METHOD_SETTINGS["nablatau"])
    # 48 retain and 16 forget comments in batches of 16: int(3 / (2 · 1)) = 1 epoch, α₀ fixed at 0.5.
    assert result.config["epochs"] == 1 and result.config["alpha0"] == 0.5
    assert result.config["train_mode"] and result.config["lr_end_factor"] is None
    row = result.history[0]
    assert row["lr"] == 3e-4 and row["target_loss"] > 0 and row["forget_loss"] > 0
    assert any(not torch.equal(before[k], v) for k, v in model.classifier.state_dict().items())
    metrics = nablatau.evaluate(model, {k: text_batches[k] for k in ("forget", "test")}, task="multilabel")
    assert 0.0 <= metrics["test_f1_micro"] <= 1.0 and 0.0 <= metrics["mia_loss"] <= 1.0


# --- The unlearning effect ----------------------------------------------------------------------------
# MiniLM memorises 200 comments (25 epochs, lr 1e-4; about 2.5 minutes here). Measured on the 30 % forget
# set (60 comments) against 60 test comments, in a fixed order: the loss attack's AUC 0.653 before and
# 0.567 after ∇τ with the reference's text settings (1 epoch by the rule); forget mean loss 3.12 → 3.98.
# The attack's accuracy is too noisy on 60 a side to test on (std 0.14 over its splits: 0.567 → 0.533
# here, 0.633 → 0.600 with another sample order), so the test reads the AUC of the same attack.
MEMORISED = resolve_profile("quick", "text", n_train=200, n_val=100, n_test=200)
MEMORISED["recipe"] = MEMORISED["recipe"].replace(epochs=25)


@pytest.fixture(scope="module")
def memorised_run(real_data_dir, tmp_path_factory):
    from nablatau.runner import checkpoint_key, trained_model
    from nablatau.losses import multilabel_bce
    from nablatau.train import CheckpointCache

    tokenizer = load_tokenizer(MEMORISED["encoder"])
    collate = text_collate(tokenizer)
    train_set, splits = text_splits(load_goemotions(real_data_dir), MEMORISED, tokenizer, forget_fraction=0.3)
    batches = loaders(splits, batch_size=MEMORISED["unlearn_batch_size"], seed=0, collate_fn=collate)
    # Measured in a fixed order, as the runner measures: a shuffled loader's order (and with it the attack's
    # splits) would depend on how often it was iterated before.
    measured = loaders(splits, batch_size=MEMORISED["unlearn_batch_size"], shuffle=False, collate_fn=collate)
    original, _ = trained_model(
        lambda: TextClassifier(MEMORISED["encoder"], num_labels=28, dropout=0.5, pooling=MEMORISED["pooling"]),
        train_set, MEMORISED, key=checkpoint_key(MEMORISED, dataset="goemotions"), loss=multilabel_bce, collate_fn=collate,
        progress=False, cache=CheckpointCache(tmp_path_factory.mktemp("checkpoints")))
    return original, batches, measured


def test_unlearning_moves_the_text_membership_attack_toward_chance(memorised_run):
    import copy

    original, batches, measured = memorised_run
    measure = lambda model: nablatau.evaluate(model, {k: measured[k] for k in ("forget", "test")}, task="multilabel")
    before = measure(original)
    assert before["mia_loss_auc"] >= 0.6, before  # the premise: the forget set leaks membership
    model = copy.deepcopy(original)
    nablatau.unlearn(model, batches["forget"], batches["retain"], batches["val"], seed=0, progress=False,
                     **TEXT_METHOD_SETTINGS["nablatau"])
    after = measure(model)
    # Margin 0.05: measured, the AUC's distance to chance shrinks by 0.086 (0.153 → 0.067); a no-op leaves it
    # unchanged (the same model, the same fixed order).
    assert abs(after["mia_loss_auc"] - 0.5) <= abs(before["mia_loss_auc"] - 0.5) - 0.05, (before, after)
    assert after["forget_mean_loss"] > before["forget_mean_loss"]
