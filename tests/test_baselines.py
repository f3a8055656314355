"""The baselines on tiny models: the shared calling convention, each method's invariants, bad inputs."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nablatau
from nablatau.baselines import (METHODS, amnesiac, bad_teacher, distillation_kl, finetune, finetune_epochs,
                                fisher_importance, neggrad_plus, parameter_distance, random_wrong_labels, retrain,
                                scrub, ssd, training_set_batches)
from nablatau.errors import ConfigError, DivergenceError, ShapeError
from nablatau.batches import forward, unpack
from nablatau.losses import cross_entropy, multilabel_bce
from nablatau.train import TrainRecipe, recipe_spec, train
from nablatau.nabla_tau import UnlearnResult, default_epochs, mean_loss

from conftest import CountingLoader

LABELS = 5


def class_loader(n, *, seed, batch_size=8, shuffle=False):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


def tiny_model(seed=0, dropout=False):
    torch.manual_seed(seed)
    layers = [nn.Linear(4, 16), nn.ReLU()] + ([nn.Dropout(0.2)] if dropout else []) + [nn.Linear(16, 3)]
    return nn.Sequential(*layers)


class TinyTextModel(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.embedding = nn.EmbeddingBag(50, 8, mode="sum")
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(8, LABELS)

    def forward(self, input_ids, attention_mask):
        return self.head(self.dropout(self.embedding(input_ids, per_sample_weights=attention_mask.float())))


class DictDataset(torch.utils.data.Dataset):
    """Token ids with multi-hot labels, each sample with between 1 and LABELS - 1 positives."""

    def __init__(self, n, seed):
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 50, (n, 6), generator=generator)
        self.labels = (torch.rand(n, LABELS, generator=generator) > 0.6).float()
        self.labels[:, 0] = 1.0
        self.labels[:, -1] = 0.0

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(6), "labels": self.labels[i]}


def text_loader(n, *, seed, shuffle=False):
    return DataLoader(DictDataset(n, seed), batch_size=8, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed) if shuffle else None)


def setup(task, shuffle=False, dropout=False):
    """A model and forget/retain/val loaders: 2, 6 and 2 batches."""
    if task == "multiclass":
        return (tiny_model(dropout=dropout), class_loader(16, seed=1, shuffle=shuffle),
                class_loader(48, seed=2, shuffle=shuffle), class_loader(16, seed=3))
    return (TinyTextModel(), text_loader(16, seed=1, shuffle=shuffle), text_loader(48, seed=2, shuffle=shuffle),
            text_loader(16, seed=3))


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@torch.no_grad()
def mean_kl(student, teacher, loader, task, temperature=1.0):
    """Mean KL(teacher ‖ student) over ``loader``, both in eval mode (their modes are restored)."""
    modes = student.training, teacher.training
    student.eval()
    teacher.eval()
    values = []
    for batch in loader:
        inputs, _ = unpack(batch)
        values.append(distillation_kl(forward(student, inputs),
                                      forward(teacher, inputs),
                                      temperature=temperature, task=task))
    student.train(modes[0])
    teacher.train(modes[1])
    return float(torch.cat(values).mean())


# Few epochs keep the suite fast (finetune's own default is tested on its own).
# The shared tests run SSD at alpha = 1, which selects more elements on these tiny sets than the default 10.
SHORT = {"finetune": {"epochs": 4}, "neggrad_plus": {"epochs": 2}, "scrub": {"epochs": 3, "max_steps": 2},
         "amnesiac": {"epochs": 2}, "bad_teacher": {"epochs": 2}, "ssd": {"alpha": 1.0}}
# The methods that take optimizer steps (SSD takes none: no lr, no epochs setting).
STEPPING = sorted(set(METHODS) - {"ssd"})


# --- The shared calling convention ------------------------------------------------------------------

def test_methods_are_registered_by_name():
    assert METHODS == {"finetune": finetune, "neggrad_plus": neggrad_plus, "scrub": scrub,
                       "amnesiac": amnesiac, "bad_teacher": bad_teacher, "ssd": ssd}
    assert retrain not in METHODS.values()  # the experiment runner retrains through its checkpoint cache


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_runs_on_both_tasks_and_restores_the_callers_mode(name, task):
    model, forget, retain, val = setup(task)
    train_mode = task == "multilabel"  # the reference: eval mode for vision, train mode for text
    model.train(not train_mode)
    before = weights(model)
    result = METHODS[name](model, forget, retain, val, task=task, train_mode=train_mode, progress=False,
                           **SHORT[name])
    assert isinstance(result, UnlearnResult)
    assert result.config["method"] == name and result.config["task"] == task
    assert result.config["train_mode"] == train_mode
    assert result.config["loss"] == ("cross_entropy" if task == "multiclass" else "multilabel_bce")
    epochs = SHORT[name].get("epochs", result.config["epochs"])
    assert result.config["epochs"] == epochs and len(result.history) == epochs
    assert [row["epoch"] for row in result.history] == list(range(epochs))
    assert all(row["elapsed_s"] > 0 for row in result.history)
    assert all(row["lr"] > 0 for row in result.history) if name in STEPPING else "lr" not in result.history[0]
    assert result.wall_time_s > 0
    assert not same_weights(before, weights(model))
    assert model.training == (not train_mode)


def test_callback_rows_join_the_history():
    model, forget, retain, val = setup("multiclass")
    result = scrub(model, forget, retain, val, epochs=2, progress=False,
                   callback=lambda epoch, m: {"probe": 10 * epoch, "mode": m.training})
    assert [row["probe"] for row in result.history] == [0, 10]
    assert [row["mode"] for row in result.history] == [True, True]  # SCRUB trains the student in train mode by default


@pytest.mark.parametrize("name", sorted(METHODS))
def test_same_seed_gives_identical_weights_and_another_seed_does_not(name):
    runs = []
    for seed in (0, 0, 1):
        model, forget, retain, val = setup("multiclass", shuffle=True, dropout=True)
        METHODS[name](model, forget, retain, val, seed=seed, train_mode=True, progress=False, **SHORT[name])
        runs.append(weights(model))
    assert same_weights(runs[0], runs[1])
    assert not same_weights(runs[0], runs[2])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_nan_loss_raises_divergence_and_keeps_the_weights(name):
    model, forget, retain, val = setup("multiclass")
    poisoned = [DataLoader(TensorDataset(torch.full((16, 4), math.nan), torch.zeros(16, dtype=torch.long)),
                           batch_size=8) for _ in range(2)]
    before = weights(model)
    with pytest.raises(DivergenceError, match="at epoch 0, step 0") as caught:
        METHODS[name](model, poisoned[0], poisoned[1], val, progress=False, **SHORT[name])
    assert caught.value.epoch == 0 and caught.value.history == []
    assert same_weights(before, weights(model)) and model.training


# --- finetune -----------------------------------------------------------------------------------------

def test_finetune_epochs_are_the_reference_notebooks_rules():
    for n_retain, n_forget in [(166, 30), (142, 59), (23, 4), (22, 4), (6, 2), (7, 3)]:
        # Unlearning_main_Cifar10: forget_epochs = int((len(retain_loader) / (len(forget_loader))) * 6)
        assert finetune_epochs(n_retain, n_forget, "images") == int((n_retain / n_forget) * 6)
        # Unlearning_main_NLP: forget_epochs = int(len(retain_loader) / (len(forget_loader) * 2)), then × 2
        assert finetune_epochs(n_retain, n_forget, "text") == int(n_retain / (n_forget * 2)) * 2
    assert finetune_epochs(22, 4, "images") == 33 != 2 * default_epochs(22, 4)  # not simply twice ∇τ's
    with pytest.raises(ConfigError, match="epoch_rule must be one of"):
        finetune_epochs(22, 4, "audio")


def test_finetune_is_nablatau_with_alpha_zero_for_the_reference_epochs():
    model, forget, retain, val = setup("multiclass")
    reference = copy.deepcopy(model)
    result = finetune(model, forget, retain, val, seed=0, progress=False)
    assert result.config["alpha0"] == 0.0 and result.config["epoch_rule"] == "images"
    assert result.config["epochs"] == int(len(retain) / len(forget) * 6) == 18
    nablatau.unlearn(reference, forget, retain, val, alpha0=0.0, epochs=18, seed=0, progress=False)
    assert same_weights(weights(model), weights(reference))


def test_finetune_text_settings_pass_through():
    model, forget, retain, val = setup("multilabel")
    result = finetune(model, forget, retain, val, task="multilabel", epoch_rule="text", lr=3e-4,
                      lr_end_factor=None, train_mode=True, progress=False)
    assert result.config["epochs"] == 2 * default_epochs(6, 2, 1) == 2
    assert all(row["lr"] == 3e-4 for row in result.history)


# --- neggrad_plus -------------------------------------------------------------------------------------

def test_neggrad_plus_with_beta_one_is_finetuning_on_the_retain_set():
    model, forget, retain, val = setup("multiclass")
    reference = copy.deepcopy(model)
    neggrad_plus(model, forget, retain, val, beta=1.0, epochs=2, progress=False)

    optimizer = torch.optim.SGD(reference.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    reference.eval()
    for _ in range(2):
        for x, y in retain:
            optimizer.zero_grad()
            nn.functional.cross_entropy(reference(x), y).backward()
            optimizer.step()
    for name, value in reference.state_dict().items():
        assert torch.allclose(model.state_dict()[name], value, atol=1e-6), name


def test_neggrad_plus_with_beta_zero_raises_the_forget_loss():
    model, forget, retain, val = setup("multiclass")
    before = mean_loss(model, forget)
    result = neggrad_plus(model, forget, retain, val, beta=0.0, epochs=1, progress=False)
    assert mean_loss(model, forget) > before
    assert result.history[0]["loss"] == pytest.approx(-result.history[0]["forget_loss"])


# --- scrub --------------------------------------------------------------------------------------------

# With α = γ = 0, no momentum and no weight decay the min pass leaves the weights alone, so what moves
# them is the max pass alone.
MAX_PASS_ONLY = dict(epochs=1, alpha=0.0, gamma=0.0, distance_weight=0.0, momentum=0.0, weight_decay=0.0, lr=0.5,
                     seed=0, progress=False)


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_scrub_max_pass_pushes_the_student_away_from_the_teacher_on_the_forget_set(task):
    # Train mode, as in the SCRUB code: dropout makes the student differ from the (eval-mode) teacher,
    # so the max pass has a gradient from its first step.
    kls = {}
    for max_steps in (0, 1):
        model, _, retain, val = setup(task, dropout=True)
        forget = class_loader(64, seed=1) if task == "multiclass" else text_loader(64, seed=1)
        teacher = copy.deepcopy(model)
        assert mean_kl(model, teacher, forget, task, temperature=4.0) == 0.0
        result = scrub(model, forget, retain, val, task=task, max_steps=max_steps, train_mode=True,
                       **MAX_PASS_ONLY)
        kls[max_steps] = mean_kl(model, teacher, forget, task, temperature=4.0)
    assert kls[0] == 0.0 and kls[1] > 1e-3
    assert result.history[0]["forget_kl"] > 0


def test_scrub_max_pass_starts_at_a_stationary_point_in_eval_mode():
    # The student starts as an exact copy of the teacher, where KL has zero gradient: in eval mode only
    # weight decay and momentum move it off (the docstring's caveat).
    model, _, retain, val = setup("multiclass")
    forget = class_loader(64, seed=1)
    teacher = copy.deepcopy(model)
    scrub(model, forget, retain, val, max_steps=1, **MAX_PASS_ONLY)
    assert abs(mean_kl(model, teacher, forget, "multiclass", temperature=4.0)) < 1e-6


def test_parameter_distance_is_the_scrub_codes_param_dist():
    model, anchor = tiny_model(seed=0), tiny_model(seed=1)
    # SCRUB's param_dist: sum of torch.norm(p1 - p2, p='fro') over parameter tensors.
    expected = sum(torch.norm(p1 - p2, p="fro") for p1, p2 in zip(model.parameters(), anchor.parameters()))
    assert float(parameter_distance(model, anchor).detach()) == pytest.approx(float(expected.detach()))
    same = copy.deepcopy(model)
    distance = parameter_distance(model, same)
    distance.backward()
    assert float(distance.detach()) == 0.0
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in model.parameters())  # no NaN at θ = θ₀
    assert all(p.grad is None for p in same.parameters())  # the anchor is a constant


def test_scrub_distance_term_pulls_the_student_back_to_its_starting_weights():
    # The min pass alone, with the task loss and the KL off: only the distance term acts. After the
    # weights are moved off the start it pulls them back; at the start it has no gradient.
    distances = {}
    for weight in (0.0, 0.5):
        model, forget, retain, val = setup("multiclass")
        start = copy.deepcopy(model)
        scrub(model, forget, retain, val, epochs=1, max_steps=0, alpha=0.0, gamma=1.0, distance_weight=weight,
              momentum=0.0, weight_decay=0.0, lr=0.05, seed=0, train_mode=False, progress=False)
        distances[weight] = float(parameter_distance(model, start).detach())
    assert 0 < distances[0.5] < distances[0.0]
    result = scrub(*setup("multiclass"), epochs=1, progress=False)
    assert result.config["distance_weight"] == 0.5  # the reference's smoothing


def test_scrub_max_pass_runs_only_in_the_first_max_steps_epochs_and_lr_decays_at_milestones():
    model, forget, retain, val = setup("multiclass")
    result = scrub(model, forget, retain, val, progress=False)
    assert result.config["epochs"] == 6 and result.config["max_steps"] == 3
    has_max = [not math.isnan(row["forget_kl"]) for row in result.history]
    assert has_max == [True, True, True, False, False, False]
    lrs = [row["lr"] for row in result.history]
    assert lrs == pytest.approx([5e-4, 5e-4, 5e-4, 5e-5, 5e-5, 5e-6])


# --- distillation_kl ----------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_distillation_kl_is_zero_for_identical_logits_and_positive_otherwise(task, temperature):
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(6, 5, generator=generator) * 3
    student = teacher + torch.randn(6, 5, generator=generator)
    same = distillation_kl(teacher.clone(), teacher, temperature=temperature, task=task)
    assert same.shape == (6,) and torch.equal(same, torch.zeros(6))
    assert (distillation_kl(student, teacher, temperature=temperature, task=task) > 0).all()


def test_distillation_kl_matches_the_scrub_criterion_and_the_bernoulli_kl():
    generator = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    T = 4.0
    scrub_criterion = nn.functional.kl_div(torch.log_softmax(student / T, 1), torch.softmax(teacher / T, 1),
                                           reduction="sum") * T ** 2 / 4
    per_sample = distillation_kl(student, teacher, temperature=T, task="multiclass")
    assert float(per_sample.mean()) == pytest.approx(float(scrub_criterion), rel=1e-5)

    p, q = torch.sigmoid(teacher / T), torch.sigmoid(student / T)
    bernoulli = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean(1) * T ** 2
    assert torch.allclose(distillation_kl(student, teacher, temperature=T, task="multilabel"), bernoulli,
                          atol=1e-6)


def test_distillation_kl_rejects_bad_arguments():
    logits = torch.zeros(2, 3)
    with pytest.raises(ShapeError, match="same shape"):
        distillation_kl(logits, torch.zeros(2, 4))
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        distillation_kl(logits, logits, temperature=0)
    with pytest.raises(ConfigError, match="task must be one of"):
        distillation_kl(logits, logits, task="regression")


# --- amnesiac -----------------------------------------------------------------------------------------

def test_multiclass_relabels_are_always_wrong_and_cover_every_other_class():
    targets = torch.arange(1000) % 10
    wrong = random_wrong_labels(targets, 10, "multiclass", torch.Generator().manual_seed(0))
    assert wrong.dtype == targets.dtype and wrong.shape == targets.shape
    assert (wrong != targets).all() and ((wrong >= 0) & (wrong < 10)).all()
    assert set(wrong[targets == 3].tolist()) == set(range(10)) - {3}


def test_multilabel_relabels_are_wrong_and_keep_the_number_of_positives():
    generator = torch.Generator().manual_seed(0)
    targets = (torch.rand(500, 4, generator=generator) > 0.5).float()
    targets[:, 0], targets[:, 1] = 1.0, 0.0  # 1 to 3 positives of 4: a same-count wrong vector exists
    wrong = random_wrong_labels(targets, 4, "multilabel", generator)
    assert wrong.dtype == targets.dtype and set(wrong.unique().tolist()) <= {0.0, 1.0}
    assert (wrong != targets).any(dim=1).all()
    assert torch.equal(wrong.sum(1), targets.sum(1))


def test_multilabel_relabels_of_all_or_nothing_vectors_are_still_wrong():
    targets = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    wrong = random_wrong_labels(targets, 3, "multilabel", torch.Generator().manual_seed(0))
    assert wrong.sum(1).tolist() == [1.0, 2.0]


@pytest.mark.parametrize("task, targets, size", [
    ("multiclass", torch.arange(40) % 4, 4),
    ("multilabel", torch.eye(4).repeat(10, 1), 4),
])
def test_relabelling_is_deterministic_under_a_seed(task, targets, size):
    draw = lambda seed: random_wrong_labels(targets, size, task, torch.Generator().manual_seed(seed))  # noqa: E731
    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def test_relabelling_rejects_targets_that_do_not_fit():
    with pytest.raises(ShapeError, match=r"class ids must lie in \[0, 3\)"):
        random_wrong_labels(torch.tensor([0, 3]), 3, "multiclass")
    with pytest.raises(ShapeError, match="task='multilabel'"):
        random_wrong_labels(torch.ones(2, 3), 3, "multiclass")
    with pytest.raises(ShapeError, match=r"multi-hot targets \[batch, 4\]"):
        random_wrong_labels(torch.ones(2, 3), 4, "multilabel")
    with pytest.raises(ConfigError, match="at least 2 classes"):
        random_wrong_labels(torch.tensor([0]), 1, "multiclass")


def test_amnesiac_shuffles_single_samples_of_the_relabelled_union_in_train_mode():
    # The reference: one shuffled DataLoader of batch 128 over [relabelled forget samples] + retain samples.
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = tiny_model()

        def forward(self, x):
            if self.training:
                seen.append((x.shape[0], x.detach().clone()))
            return self.inner(x)

    model, forget, retain, val = Recorder().eval(), class_loader(40, seed=1), class_loader(200, seed=2), class_loader(16, seed=3)
    result = amnesiac(model, forget, retain, val, epochs=1, num_classes=3, progress=False)
    assert result.config["train_mode"] is True and result.config["batch_size"] == 128
    assert [size for size, _ in seen] == [128, 112]  # 240 samples, whole union batches of 128
    rows = {tuple(row.tolist()) for _, x in seen for row in x}
    forget_rows = {tuple(row.tolist()) for row in forget.dataset.tensors[0]}
    retain_rows = {tuple(row.tolist()) for row in retain.dataset.tensors[0]}
    assert rows == forget_rows | retain_rows  # every sample once per epoch
    first_batch = {tuple(row.tolist()) for row in seen[0][1]}
    assert first_batch & forget_rows and first_batch & retain_rows  # forget and retain mixed in one batch
    assert not model.training  # the caller's mode is restored


def test_amnesiac_reads_the_number_of_classes_and_learns_the_wrong_labels():
    model, forget, retain, val = setup("multiclass")
    result = amnesiac(model, forget, retain, val, epochs=3, lr=1e-2, progress=False)
    assert result.config["num_classes"] == 3
    forget_losses = [row["forget_loss"] for row in result.history]
    assert forget_losses[-1] < forget_losses[0]  # fitting the wrong labels
    assert mean_loss(model, forget) > mean_loss(tiny_model(), forget)


# --- bad_teacher --------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_bad_teacher_moves_forget_predictions_towards_the_incompetent_teacher(task):
    model, forget, retain, val = setup(task)
    incompetent = tiny_model(seed=7) if task == "multiclass" else TinyTextModel(seed=7)
    before = mean_kl(model, incompetent, forget, task)
    result = bad_teacher(model, forget, retain, val, task=task, epochs=3, lr=1e-2,
                         incompetent_teacher=incompetent, progress=False)
    assert mean_kl(model, incompetent, forget, task) < 0.75 * before
    assert result.config["incompetent_teacher"] == "given"
    assert incompetent.training  # the caller's teacher is copied, not switched to eval mode


def test_bad_teacher_uses_the_retain_fraction_of_the_retain_batches():
    model, forget, _, val = setup("multiclass")
    retain = CountingLoader(class_loader(80, seed=2))  # 10 batches: 30 % is 3 per epoch
    result = bad_teacher(model, forget, retain, val, epochs=2, progress=False)
    assert retain.batches == 6 and result.config["retain_batches"] == 3
    assert result.config["incompetent_teacher"] == "reinitialised copy"
    assert result.history[0]["forget_kl"] > result.history[0]["retain_kl"]


# --- ssd ----------------------------------------------------------------------------------------------

def test_fisher_importance_is_the_mean_over_batches_of_squared_batch_gradients():
    # Cross-entropy of a linear layer has the closed-form gradient (softmax - one-hot)ᵀ x / batch size.
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    batches = [(torch.randn(5, 3), torch.randint(0, 4, (5,))), (torch.randn(2, 3), torch.randint(0, 4, (2,)))]
    weight_sq, bias_sq = torch.zeros(4, 3), torch.zeros(4)
    with torch.no_grad():
        for x, y in batches:
            error = torch.softmax(model(x), dim=1) - nn.functional.one_hot(y, 4).float()
            weight_sq += (error.T @ x / len(x)) ** 2
            bias_sq += error.mean(dim=0) ** 2
    before = weights(model)
    importance = fisher_importance(model, batches, cross_entropy)
    assert sorted(importance) == ["bias", "weight"]
    assert torch.allclose(importance["weight"], weight_sq / 2, rtol=1e-5, atol=1e-8)  # float32 rounding
    assert torch.allclose(importance["bias"], bias_sq / 2, rtol=1e-5, atol=1e-8)
    assert same_weights(before, weights(model)) and model.weight.grad is None


def test_fisher_importance_skips_frozen_parameters_and_rejects_no_batches():
    model = tiny_model()
    model[0].requires_grad_(False)
    assert sorted(fisher_importance(model, class_loader(8, seed=1), cross_entropy)) == ["2.bias", "2.weight"]
    with pytest.raises(ConfigError, match="fisher_importance got no batch; pass a non-empty loader"):
        fisher_importance(model, [], cross_entropy)


# α = 1 selects about a third of the elements; λ = 1.5 > α caps some selected factors at 1; exponent 2.
SSD_SETTINGS = dict(alpha=1.0, lam=1.5, exponent=2.0)


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_ssd_dampens_exactly_the_selected_elements(task):
    model, forget, retain, val = setup(task)
    model.train()
    loss = cross_entropy if task == "multiclass" else multilabel_bce
    reference = copy.deepcopy(model).eval()  # SSD scores in eval mode by default
    forget_imp = fisher_importance(reference, forget, loss)
    full_imp = fisher_importance(reference, training_set_batches(retain, forget), loss)
    before = weights(model)
    result = ssd(model, forget, retain, val, task=task, progress=False, **SSD_SETTINGS)

    after = weights(model)
    selected_count, elements, factors = 0, 0, []
    for name in forget_imp:
        selected = forget_imp[name] > SSD_SETTINGS["alpha"] * full_imp[name]
        ratio = SSD_SETTINGS["lam"] * full_imp[name][selected] / forget_imp[name][selected]
        factor = (ratio ** SSD_SETTINGS["exponent"]).clamp(max=1.0)
        assert torch.equal(after[name][~selected], before[name][~selected]), name  # never touched
        assert torch.allclose(after[name][selected], before[name][selected] * factor, rtol=1e-6, atol=0), name
        assert (after[name].abs() <= before[name].abs()).all(), name
        selected_count, elements = selected_count + int(selected.sum()), elements + selected.numel()
        factors.append(factor)
    factors = torch.cat(factors)
    assert 0 < selected_count < elements  # not vacuous: some elements kept, some dampened...
    assert (factors == 1.0).any() and (factors < 1.0).any()  # ...some of them capped at 1

    assert model.training  # the caller's mode is back
    assert result.config == dict(method="ssd", task=task, loss=loss.__name__, epochs=1, train_mode=False,
                                 seed=None, n_forget=16, n_retain=48, n_val=16, precision="fp32", callback_s=0.0,
                                 **SSD_SETTINGS)
    [row] = result.history
    assert row["epoch"] == 0 and row["dampened_parameters"] == selected_count
    assert row["dampened_fraction"] == pytest.approx(selected_count / elements)
    assert row["mean_factor"] == pytest.approx(float(factors.mean()), rel=1e-5)
    assert row["elapsed_s"] > 0 and result.wall_time_s > 0


def test_ssd_is_deterministic_and_reports_callback_rows():
    runs = []
    for _ in range(2):
        model, forget, retain, val = setup("multiclass")
        result = ssd(model, forget, retain, val, progress=False, callback=lambda epoch, m: {"probe": epoch},
                     **SSD_SETTINGS)
        runs.append(weights(model))
    assert same_weights(runs[0], runs[1])
    assert result.history[0]["probe"] == 0


def batchnorm_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def test_ssd_with_a_huge_alpha_changes_nothing_not_even_batchnorm_statistics():
    _, forget, retain, val = setup("multiclass")
    model = batchnorm_model()
    before = weights(model)  # running statistics included
    result = ssd(model, forget, retain, val, alpha=1e9, progress=False)
    assert same_weights(before, weights(model))
    assert result.history[0]["dampened_parameters"] == 0 and result.history[0]["dampened_fraction"] == 0.0
    assert math.isnan(result.history[0]["mean_factor"])
    # In train mode the importance passes do move them: the default eval mode is what keeps them.
    ssd(model, forget, retain, val, alpha=1e9, train_mode=True, progress=False)
    assert not torch.equal(before["1.running_mean"], model.state_dict()["1.running_mean"])


def test_ssd_selects_more_elements_at_a_lower_alpha():
    counts = []
    for alpha in (10.0, 1.0):
        model, forget, retain, val = setup("multiclass")
        counts.append(ssd(model, forget, retain, val, alpha=alpha, progress=False).history[0]["dampened_parameters"])
    assert counts[0] < counts[1]


def test_ssd_rejects_a_model_without_trainable_parameters():
    model, forget, retain, val = setup("multiclass")
    model.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameter.*unfreeze"):
        ssd(model, forget, retain, val, progress=False)


# --- retrain ------------------------------------------------------------------------------------------

RECIPE = TrainRecipe(optimizer="sgd", lr=0.05, momentum=0.9, epochs=2, batch_size=16)


def architecture():
    """An untrained tiny_model, initialised from torch's global generator (retrain seeds it)."""
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


class NeverRead:
    """A forget loader that fails the test if anything iterates it."""

    dataset, batch_size = list(range(16)), 8

    def __len__(self):
        return 2

    def __iter__(self):
        raise AssertionError("retrain read the forget loader")


def test_retrain_is_training_a_fresh_model_on_the_retain_set_only():
    model, _, retain, val = setup("multiclass")  # retain loader batches of 8; the recipe says 16
    trained = weights(model)
    model.train()
    result = retrain(model, NeverRead(), retain, val, recipe=RECIPE, build_model=architecture, seed=3,
                     progress=False)

    torch.manual_seed(3)
    reference = architecture()
    loader = DataLoader(retain.dataset, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3))
    train(reference, loader, RECIPE, seed=3, progress=False)
    assert same_weights(weights(model), weights(reference))  # CPU: the same seed gives the same weights
    assert not same_weights(weights(model), trained)

    assert model.training  # the caller's mode is back
    assert len(result.history) == RECIPE.epochs and [row["epoch"] for row in result.history] == [1, 2]
    assert result.wall_time_s > 0
    assert result.config["method"] == "retrain" and result.config["recipe"] == recipe_spec(RECIPE)
    assert result.config["init"] == "build_model" and result.config["seed"] == 3
    assert result.config["loss"] == "cross_entropy" and result.config["n_retain"] == 48


def test_retrain_by_reset_parameters_is_seeded_and_merges_the_callback_into_the_last_row():
    runs = []
    for seed in (0, 0, 1):
        model, forget, retain, val = setup("multiclass")
        result = retrain(model, forget, retain, val, recipe=RECIPE, seed=seed, progress=False,
                         callback=lambda epoch, m: {"probe": epoch, "mode": m.training})
        runs.append(weights(model))
    assert same_weights(runs[0], runs[1]) and not same_weights(runs[0], runs[2])
    assert result.config["init"] == "reset_parameters"
    assert "probe" not in result.history[0]
    assert result.history[-1]["probe"] == RECIPE.epochs - 1 and result.history[-1]["mode"] is False


def test_retrain_trains_multilabel_dict_batches():
    model, forget, retain, val = setup("multilabel")
    before = mean_loss(model, retain, multilabel_bce)
    recipe = TrainRecipe(optimizer="adamw", lr=1e-2, epochs=3, batch_size=8)
    result = retrain(model, forget, retain, val, recipe=recipe, task="multilabel", progress=False)
    assert result.config["loss"] == "multilabel_bce"
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert mean_loss(model, retain, multilabel_bce) < before


def test_retrain_rejects_bad_arguments():
    model, forget, retain, val = setup("multiclass")
    before = weights(model)
    with pytest.raises(ConfigError, match="recipe must be a TrainRecipe, got dict; use e.g. "
                                          "nablatau.train.CIFAR_RECIPE"):
        retrain(model, forget, retain, val, recipe={"lr": 0.1}, progress=False)
    with pytest.raises(ConfigError, match="retain loader is empty; retraining needs at least one"):
        retrain(model, forget, EMPTY, val, recipe=RECIPE, progress=False)
    with pytest.raises(ConfigError, match=r"(?s)2 problems.*task must be one of.*build_model must be a func"):
        retrain(model, forget, retain, val, recipe=RECIPE, task="x", build_model=architecture(), progress=False)
    assert same_weights(before, weights(model))  # validation comes before the re-initialisation


# --- Bad inputs ---------------------------------------------------------------------------------------

EMPTY = DataLoader(TensorDataset(torch.empty(0, 4), torch.empty(0, dtype=torch.long)), batch_size=8)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_unknown_task(name):
    model, forget, retain, val = setup("multiclass")
    with pytest.raises(ConfigError, match=r"task must be one of \('multiclass', 'multilabel'\), got 'regr"):
        METHODS[name](model, forget, retain, val, task="regression", progress=False)


@pytest.mark.parametrize("name", STEPPING)
@pytest.mark.parametrize("kwargs, message", [
    ({"lr": 0}, "lr must be > 0, got 0"),
    ({"lr": -1e-3}, "lr must be > 0"),
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"epochs": -2}, "epochs must be an integer >= 1"),
])
def test_shared_bad_settings(name, kwargs, message):
    model, forget, retain, val = setup("multiclass")
    with pytest.raises(ConfigError, match=message):
        METHODS[name](model, forget, retain, val, progress=False, **kwargs)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_empty_loaders_are_reported_together(name):
    model, _, retain, _ = setup("multiclass")
    with pytest.raises(ConfigError, match="the forget and val loader"):
        METHODS[name](model, EMPTY, retain, EMPTY, progress=False)


@pytest.mark.parametrize("method, kwargs, message", [
    (neggrad_plus, {"beta": 1.5}, r"beta must be in \[0, 1\], got 1.5"),
    (neggrad_plus, {"beta": -0.1}, r"beta must be in \[0, 1\], got -0.1"),
    (neggrad_plus, {"optimizer": "adam"}, "optimizer must be one of"),
    (neggrad_plus, {"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    (scrub, {"temperature": 0}, "temperature must be > 0"),
    (scrub, {"max_steps": -1}, "max_steps must be >= 0"),
    (scrub, {"alpha": -0.5}, "alpha must be >= 0"),
    (scrub, {"weight_decay": -1}, "weight_decay must be >= 0"),
    (scrub, {"lr_milestones": (0, 2)}, "lr_milestones must be positive integer epochs"),
    (amnesiac, {"num_classes": 1}, "num_classes must be >= 2"),
    (bad_teacher, {"retain_fraction": 1.5}, r"retain_fraction must be in \[0, 1\]"),
    (bad_teacher, {"temperature": -1}, "temperature must be > 0"),
    (finetune, {"epoch_rule": "audio"}, "epoch_rule must be one of"),
    (scrub, {"distance_weight": -0.5}, "distance_weight must be >= 0"),
    (amnesiac, {"batch_size": 0}, "batch_size must be a positive integer"),
    (ssd, {"alpha": 0}, "alpha must be > 0, got 0; SSD's defaults are alpha=10"),
    (ssd, {"lam": -1.0}, "lam must be > 0, got -1.0; SSD's defaults are .* lam=1"),
    (ssd, {"exponent": 0}, "exponent must be > 0, got 0; SSD's defaults are .* exponent=1"),
    (ssd, {"alpha": math.nan}, "alpha must be > 0, got nan"),
])
def test_method_specific_bad_settings(method, kwargs, message):
    model, forget, retain, val = setup("multiclass")
    before = weights(model)
    with pytest.raises(ConfigError, match=message):
        method(model, forget, retain, val, progress=False, **kwargs)
    assert same_weights(before, weights(model))


def test_several_problems_are_reported_in_one_error():
    model, forget, retain, val = setup("multiclass")
    with pytest.raises(ConfigError, match=r"(?s)3 problems.*task.*lr.*beta"):
        neggrad_plus(model, forget, retain, val, task="x", lr=0, beta=2, progress=False)


def test_multiclass_default_loss_rejects_multi_hot_targets():
    model, forget, retain, val = setup("multiclass")
    multi_hot = DataLoader(TensorDataset(torch.randn(16, 4), torch.ones(16, 3)), batch_size=8)
    with pytest.raises(ShapeError, match="multilabel_bce"):
        neggrad_plus(model, multi_hot, multi_hot, val, progress=False)


def test_training_set_batches_mix_every_retain_and_forget_sample_once():
    retain, forget = class_loader(48, seed=1), class_loader(16, seed=2)
    batches = list(training_set_batches(retain, forget, seed=0))
    inputs = torch.cat([x for x, _ in batches])
    expected = torch.cat([retain.dataset.tensors[0], forget.dataset.tensors[0]])
    assert len(batches) == 8 and len(inputs) == 64
    assert torch.equal(inputs[inputs[:, 0].argsort()], expected[expected[:, 0].argsort()])  # each sample once
    is_forget = [bool((x[:, None] == forget.dataset.tensors[0][None]).all(-1).any(-1).any()) for x, _ in batches]
    is_retain = [bool((x[:, None] == retain.dataset.tensors[0][None]).all(-1).any(-1).any()) for x, _ in batches]
    assert sum(f and r for f, r in zip(is_forget, is_retain)) >= 4  # forget samples share batches with retain ones
