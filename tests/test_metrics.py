"""evaluate(): the metrics dict the notebooks and results files rely on."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nablatau import evaluate
from nablatau.errors import ConfigError
from nablatau.metrics import accuracy, multilabel_f1


def test_accuracy_multiclass_and_multilabel_argmax_rule():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 0, 0])) == pytest.approx(0.75)
    multi_hot = torch.tensor([[1.0, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 1]])
    # arg-max of the target vector: 0, 1 (first of the tie), 0, 2
    assert accuracy(logits, multi_hot, "multilabel") == pytest.approx(0.5)


def test_multilabel_f1_on_a_hand_checked_case():
    logits = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # predictions [[1,0],[1,1]]: TP 2, FP 1, FN 0 → micro-F1 = 2·2/(2·2+1) = 0.8
    assert multilabel_f1(logits, targets)["f1_micro"] == pytest.approx(0.8)


def _loader(x, y):
    return DataLoader(TensorDataset(x, y), batch_size=16)


def test_memorised_forget_set_is_detected_and_metrics_are_fractions():
    torch.manual_seed(0)
    # A lookup table that is right (and confident) on the "training" inputs and guesses elsewhere.
    train_x, test_x = torch.arange(0, 60), torch.arange(60, 120)
    labels = torch.randint(0, 4, (120,))
    table = torch.zeros(120, 4)
    table[torch.arange(60), labels[:60]] = 8.0
    model = nn.Embedding.from_pretrained(table)
    splits = {"retain": _loader(train_x[:40], labels[:40]), "forget": _loader(train_x[40:], labels[40:60]),
              "test": _loader(test_x, labels[60:])}
    metrics = evaluate(model, splits)
    assert metrics["retain_acc"] == 1.0 and metrics["forget_acc"] == 1.0
    assert 0.0 <= metrics["test_acc"] <= 1.0
    assert metrics["mia_loss"] > 0.9  # forget losses ~0, test losses ~log 4: perfectly separable
    assert {"mia_entropy", "mia_loss_auc", "mia_entropy_auc"} <= metrics.keys()


def test_multilabel_task_reports_f1_per_split():
    torch.manual_seed(0)
    model = nn.Linear(4, 5)
    x, y = torch.randn(30, 4), (torch.rand(30, 5) > 0.6).float()
    splits = {"forget": _loader(x[:15], y[:15]), "test": _loader(x[15:], y[15:])}
    metrics = evaluate(model, splits, task="multilabel")
    assert {"forget_f1_micro", "forget_f1_macro", "test_f1_micro", "mia_loss"} <= metrics.keys()


def test_bad_task_and_missing_attack_split():
    model = nn.Linear(4, 3)
    loader = _loader(torch.randn(10, 4), torch.randint(0, 3, (10,)))
    with pytest.raises(ConfigError, match="task must be one of"):
        evaluate(model, {"forget": loader, "test": loader}, task="regression")
    with pytest.raises(ConfigError, match=r"\['test'\] are missing"):
        evaluate(model, {"forget": loader})
