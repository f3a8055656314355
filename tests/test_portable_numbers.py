"""Numbers that are the same on every machine: ∇τ and each baseline on a tiny float64 problem, pinned.

The smoke experiments cannot be pinned: a few hundred SGD steps at lr 0.1 on a handful of images amplify
the last-bit differences between two instruction sets (torch picks its CPU kernels by the one it finds)
into different models. :mod:`tests.test_invariants` checks them in one process instead. Here the problem
is small and well conditioned, in float64, so that a change to a method's arithmetic moves these numbers
and a change of processor does not:

- a 8-16-3 tanh MLP; 120 training samples (the first 24 are forgotten), 48 validation and 48 test
  samples, from a noisy linear teacher;
- the data and every initial weight drawn by NumPy's PCG64, which gives the same bits everywhere
  (torch's vectorised random kernels do not: ``torch.randn`` and ``reset_parameters`` differ in the last
  bits between ``ATEN_CPU_CAPABILITY=default`` and ``avx2``);
- the original trained by 200 full-batch gradient steps; then each method for a fixed number of epochs
  on loaders of batch 16 seeded alike, measured by :func:`nablatau.evaluate` against the retrained model
  as the experiments measure (fixed order, the retrained model's logits as reference).

Bad Teacher runs with an explicit incompetent teacher and ``retain_fraction=0``: its retain term distils
the original into a student that starts equal to it, so its first gradients are rounding noise, which
Adam rescales to full-size steps (its numbers moved by 1e-5 between instruction sets). The forget term,
its distillation and its optimizer are pinned; the retain term is checked in process
(``tests/test_baselines.py``).

Tolerance: relative :data:`RTOL` = 1e-6 on every metric. It held with a margin of 40: pinned under the
native setting (which torch reports as AVX2 on the AMD EPYC this was pinned on), the largest relative
difference was 2.5e-8 under ``ATEN_CPU_CAPABILITY=default`` (SSD's KL divergence on the forget set; the
measured losses pass through the float32 predictions of :func:`nablatau.mia.predict`), 3e-16 with
``MKL_CBWR=COMPATIBLE``, none under ``=avx2`` or with two threads; the accuracies and attack scores were
equal. (Forcing ``=avx512`` there, above what torch chose, ended in SIGILL.)
:func:`test_the_numbers_hold_under_every_instruction_set_this_machine_offers` runs the same check under each
setting up to the native one on whatever machine runs the suite.

The loaders are built for the CPU device, as the experiment runner builds them: tensor data sets are then
served by :class:`nablatau.data.ResidentLoader`, whose batch order (one ``randperm`` per pass) is the one a
CUDA run gets, and differs from a ``DataLoader``'s over the same generator.

A change meant to move these numbers re-pins them in its own commit: ``python tests/test_portable_numbers.py
--pin`` prints the dictionary to paste into :data:`PINNED`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import nablatau
from nablatau.baselines import retrain
from nablatau.data import UnlearningSplits, loaders
from nablatau.methods import METHODS
from nablatau.mia import predict
from nablatau.train import TrainRecipe

RTOL = 1e-6
#: What is pinned of every model: :func:`nablatau.evaluate`'s metrics and the squared norm of the weights.
METRICS = ("retain_acc", "forget_acc", "test_acc", "mia_loss", "mia_entropy", "mia_loss_auc", "forget_mean_loss",
           "test_mean_loss", "kl_forget", "kl_test", "forget_ks", "weight_norm_sq")
BATCH, SEED = 16, 3
#: Each method's settings: a few epochs of its defaults otherwise.
SETTINGS = {"nablatau": {"epochs": 4}, "finetune": {"epochs": 4}, "scrub": {"epochs": 3},
            "neggrad_plus": {"epochs": 3}, "amnesiac": {"epochs": 2, "batch_size": BATCH},
            "bad_teacher": {"epochs": 2, "retain_fraction": 0.0}, "ssd": {}}
RETRAIN_RECIPE = TrainRecipe(optimizer="sgd", lr=0.1, momentum=0.9, epochs=20, batch_size=BATCH)
FEATURES, HIDDEN, CLASSES = 8, 16, 3


def mlp(seed: int) -> nn.Module:
    """The float64 MLP with weights drawn uniformly in [-0.5, 0.5] by NumPy's generator ``seed``."""
    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, CLASSES)).double()
    draw = np.random.default_rng(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.from_numpy(draw.uniform(-0.5, 0.5, parameter.shape)))
    return model


def problem() -> tuple[UnlearningSplits, nn.Module]:
    """The splits and the trained original model (see the module docstring)."""
    draw = np.random.default_rng(20240321)
    teacher = np.linspace(-1, 1, FEATURES * CLASSES).reshape(FEATURES, CLASSES)

    def samples(n):
        inputs = draw.standard_normal((n, FEATURES))
        labels = (inputs @ teacher + 0.8 * draw.standard_normal((n, CLASSES))).argmax(1)
        return torch.from_numpy(inputs), torch.from_numpy(labels)

    (inputs, labels), val, test = samples(120), samples(48), samples(48)
    splits = UnlearningSplits(retain=TensorDataset(inputs[24:], labels[24:]), forget=TensorDataset(inputs[:24], labels[:24]),
                              val=TensorDataset(*val), test=TensorDataset(*test))
    original = mlp(7)
    optimizer = torch.optim.SGD(original.parameters(), lr=0.2, weight_decay=1e-3)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(original(inputs), labels).backward()
        optimizer.step()
    return splits, original


def measure_all(device: str = "cpu") -> dict[str, dict[str, float]]:
    """``{model: {metric: value}}`` for the original, the retrained model and every method, run on ``device``."""
    splits, original = problem()
    original = original.to(device)

    def batches():
        return loaders(splits, BATCH, seed=SEED, device=device)

    retrained = copy.deepcopy(original)
    fresh = batches()
    retrain(retrained, fresh["forget"], fresh["retain"], fresh["val"], recipe=RETRAIN_RECIPE,
            build_model=lambda: mlp(5).to(device), seed=SEED, progress=False)
    in_order = {name: loader for name, loader in loaders(splits, BATCH, shuffle=False, device=device).items() if name != "val"}
    reference = {name: predict(retrained, in_order[name])[0] for name in ("forget", "test")}

    def metrics(model):
        measured = nablatau.evaluate(model, in_order, reference=reference)
        measured["weight_norm_sq"] = float(sum((p.detach() ** 2).sum() for p in model.parameters()))
        return {name: float(measured[name]) for name in METRICS}

    numbers = {"original": metrics(original), "retrain": metrics(retrained)}
    for name, settings in SETTINGS.items():
        model, fresh = copy.deepcopy(original), batches()
        if name == "bad_teacher":
            settings = {**settings, "incompetent_teacher": mlp(11).to(device)}
        METHODS[name](model, fresh["forget"], fresh["retain"], fresh["val"], seed=SEED, progress=False, **settings)
        numbers[name] = metrics(model)
    return numbers


#: Pinned with ``python tests/test_portable_numbers.py --pin`` (see the module docstring).
PINNED = {
    "original": {
        "retain_acc": 0.6145833134651184,
        "forget_acc": 0.7916666865348816,
        "test_acc": 0.4583333432674408,
        "mia_loss": 0.6399999999999999,
        "mia_entropy": 0.5599999999999999,
        "mia_loss_auc": 0.7833333333333333,
        "forget_mean_loss": 0.6647791002566615,
        "test_mean_loss": 1.115773033350706,
        "kl_forget": 0.5402906993542732,
        "kl_test": 0.29656055881863436,
        "forget_ks": 0.5,
        "weight_norm_sq": 26.028629627038775
    },
    "retrain": {
        "retain_acc": 0.8645833134651184,
        "forget_acc": 0.4166666567325592,
        "test_acc": 0.3541666567325592,
        "mia_loss": 0.5000000000000001,
        "mia_entropy": 0.64,
        "mia_loss_auc": 0.5166666666666667,
        "forget_mean_loss": 1.690058029256761,
        "test_mean_loss": 1.652520607613648,
        "kl_forget": 0.0,
        "kl_test": 0.0,
        "forget_ks": 0.0,
        "weight_norm_sq": 84.81352827081086
    },
    "nablatau": {
        "retain_acc": 0.625,
        "forget_acc": 0.75,
        "test_acc": 0.4375,
        "mia_loss": 0.6399999999999999,
        "mia_entropy": 0.54,
        "mia_loss_auc": 0.7833333333333333,
        "forget_mean_loss": 0.6747171441093087,
        "test_mean_loss": 1.1079621836543083,
        "kl_forget": 0.5368015043160729,
        "kl_test": 0.29429863816920376,
        "forget_ks": 0.5,
        "weight_norm_sq": 26.044002318979928
    },
    "finetune": {
        "retain_acc": 0.625,
        "forget_acc": 0.75,
        "test_acc": 0.4166666567325592,
        "mia_loss": 0.6799999999999999,
        "mia_entropy": 0.5599999999999999,
        "mia_loss_auc": 0.7833333333333333,
        "forget_mean_loss": 0.6684174994006753,
        "test_mean_loss": 1.1135502696658175,
        "kl_forget": 0.5406886552308189,
        "kl_test": 0.2957504929674179,
        "forget_ks": 0.5,
        "weight_norm_sq": 26.085509770825503
    },
    "scrub": {
        "retain_acc": 0.6145833134651184,
        "forget_acc": 0.7916666865348816,
        "test_acc": 0.4375,
        "mia_loss": 0.6399999999999999,
        "mia_entropy": 0.5599999999999999,
        "mia_loss_auc": 0.7833333333333333,
        "forget_mean_loss": 0.6648036992798249,
        "test_mean_loss": 1.1159804230555892,
        "kl_forget": 0.5403337108636137,
        "kl_test": 0.2964915466043724,
        "forget_ks": 0.5,
        "weight_norm_sq": 26.02860257770282
    },
    "neggrad_plus": {
        "retain_acc": 0.6666666865348816,
        "forget_acc": 0.625,
        "test_acc": 0.4583333432674408,
        "mia_loss": 0.6199999999999999,
        "mia_entropy": 0.5,
        "mia_loss_auc": 0.7499999999999999,
        "forget_mean_loss": 0.7028077083329359,
        "test_mean_loss": 1.0861991106842954,
        "kl_forget": 0.5208215888079619,
        "kl_test": 0.2867018990500523,
        "forget_ks": 0.5,
        "weight_norm_sq": 26.59267945729151
    },
    "amnesiac": {
        "retain_acc": 0.6145833134651184,
        "forget_acc": 0.75,
        "test_acc": 0.4583333432674408,
        "mia_loss": 0.6399999999999999,
        "mia_entropy": 0.54,
        "mia_loss_auc": 0.7833333333333333,
        "forget_mean_loss": 0.6662531575808922,
        "test_mean_loss": 1.1143795285994809,
        "kl_forget": 0.5386181752151723,
        "kl_test": 0.2954646911488574,
        "forget_ks": 0.5,
        "weight_norm_sq": 26.023428658007344
    },
    "bad_teacher": {
        "retain_acc": 0.6145833134651184,
        "forget_acc": 0.7916666865348816,
        "test_acc": 0.4583333432674408,
        "mia_loss": 0.6399999999999999,
        "mia_entropy": 0.5599999999999999,
        "mia_loss_auc": 0.7833333333333333,
        "forget_mean_loss": 0.6652370567123095,
        "test_mean_loss": 1.115218000796934,
        "kl_forget": 0.539520476607719,
        "kl_test": 0.2962538954760926,
        "forget_ks": 0.5,
        "weight_norm_sq": 26.018302977366353
    },
    "ssd": {
        "retain_acc": 0.6041666865348816,
        "forget_acc": 0.7916666865348816,
        "test_acc": 0.3541666567325592,
        "mia_loss": 0.7,
        "mia_entropy": 0.45999999999999996,
        "mia_loss_auc": 0.8166666666666668,
        "forget_mean_loss": 0.7430491860335072,
        "test_mean_loss": 1.1274648330484827,
        "kl_forget": 0.6365384113094166,
        "kl_test": 0.3409853439239665,
        "forget_ks": 0.4583333333333333,
        "weight_norm_sq": 25.225155856877812
    },
}


def differences(measured: dict[str, dict[str, float]]) -> list[str]:
    """Every number of ``measured`` that is not the pinned one to :data:`RTOL`, one line each."""
    if sorted(measured) != sorted(PINNED):
        return [f"models {sorted(measured)} != pinned {sorted(PINNED)}"]
    return [f"{name}.{metric}: {measured[name][metric]!r} != pinned {value!r}"
            for name, pinned in PINNED.items() for metric, value in pinned.items()
            if not math.isclose(measured[name][metric], value, rel_tol=RTOL, abs_tol=1e-12)]


@pytest.fixture(scope="module")
def measured():
    return measure_all()


def test_every_method_computes_the_pinned_numbers(measured):
    assert not differences(measured), "\n".join(differences(measured))


def test_the_problem_has_something_to_forget_and_the_methods_do_something(measured):
    # The pinned numbers only guard the methods if they move the model: the original must leak membership
    # and every method must change the forget loss.
    assert measured["original"]["mia_loss"] > 0.6 and measured["original"]["forget_acc"] > measured["original"]["test_acc"]
    for name in SETTINGS:
        assert measured[name]["forget_mean_loss"] != measured["original"]["forget_mean_loss"], name


#: torch's CPU capabilities, lowest first (``ATEN_CPU_CAPABILITY`` takes them in lower case).
CAPABILITIES = ("DEFAULT", "AVX2", "AVX512")


def _capabilities() -> list[str]:
    """The ``ATEN_CPU_CAPABILITY`` settings to try here: every one from the portable baseline up to the one torch
    chose for this CPU. A higher one is not tried: torch refuses it for a reason (the CPU lacks an instruction
    its kernels use, and forcing it ends in SIGILL)."""
    native = torch.backends.cpu.get_cpu_capability()
    return [name.lower() for name in CAPABILITIES[:CAPABILITIES.index(native) + 1]] if native in CAPABILITIES \
        else ["default"]


@pytest.mark.slow  # one interpreter per instruction set
def test_the_numbers_hold_under_every_instruction_set_this_machine_offers():
    failures, seen = {}, []
    for capability in _capabilities():
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, __file__, "--json"], env=env, capture_output=True, text=True, check=True)
        report = json.loads(out.stdout)
        seen.append(report["capability"])
        found = differences(report["numbers"])
        if found:
            failures[f"{capability} (torch: {report['capability']})"] = found
    assert not failures, "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in failures.items())
    assert "DEFAULT" in seen, seen


if __name__ == "__main__":
    numbers = measure_all()
    if "--pin" in sys.argv:
        print("PINNED = " + json.dumps(numbers, indent=4).replace("\n}", ",\n}"))
    else:
        print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "numbers": numbers}))
