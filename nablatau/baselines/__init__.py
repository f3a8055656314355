"""The unlearning baselines the ∇τ paper compares against, with the same calling convention as ∇τ.

:data:`nablatau.methods.METHODS` is the registry of every unlearning method by name: ∇τ
(``"nablatau"``) and the baselines of :data:`METHODS` here, each an ordinary entry called alike.

- :func:`finetune`: fine-tuning on the retain set, run as ∇τ with α = 0 for the reference's fine-tuning
  epochs (:func:`finetune_epochs`), as in the ∇τ reference notebooks (Trippa et al. 2024, arXiv:2403.14339).
- :func:`neggrad_plus`: NegGrad+, descent on the retain set and ascent on the forget set, weighted by β
  (Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023,
  arXiv:2302.09880).
- :func:`scrub`: SCRUB, a student moving away from its frozen teacher on the forget set and staying
  close to it on the retain set (Kurmanji et al. 2023, same paper).
- :func:`amnesiac`: the relabelling variant of amnesiac unlearning, training on the forget set with
  random wrong labels mixed with the retain set (Graves, Nagisetty, Ganesh, "Amnesiac Machine
  Learning", AAAI 2021, arXiv:2010.10981).
- :func:`bad_teacher`: distillation from an incompetent teacher on the forget set and from the original
  model on the retain set (Chundawat, Tarun, Mandal, Kankanhalli, "Can Bad Teaching Induce Forgetting?
  Unlearning in Deep Networks Using an Incompetent Teacher", AAAI 2023, arXiv:2205.08096).
- :func:`ssd`: Selective Synaptic Dampening, shrinking the weights that matter far more to the forget set
  than to the whole training set, by their diagonal Fisher importances; no training (Foster, Schoepf,
  Brintrup, "Fast Machine Unlearning Without Retraining Through Selective Synaptic Dampening", AAAI 2024,
  arXiv:2308.07707).
- :func:`retrain`: the gold standard, retraining from scratch on the retain set with a training recipe.
  It is not in :data:`METHODS` (nor in :data:`nablatau.methods.METHODS`): the experiment runner trains
  the retrained reference through its checkpoint cache instead.

One module each (:mod:`~nablatau.baselines.finetune`, ...), and :mod:`~nablatau.baselines.common` for
what they share.

**The calling convention.** Every method, ∇τ (:func:`nablatau.unlearn`) included, is called as::

    method(model, forget, retain, val, *, <its own settings>, task="multiclass", loss=None,
           train_mode=False, seed=None, progress=True, callback=None) -> UnlearnResult

updates ``model`` in place, and works for multiclass (integer targets) and multilabel (multi-hot
targets) tasks alike, so an experiment loop calls any entry of :data:`nablatau.methods.METHODS`
the same way. :func:`retrain` takes a training ``recipe`` instead of unlearning settings (and no
``train_mode``). Each method's docstring documents its own settings, and where it uses a shared one
differently; the shared parameters are:

- ``model``: the trained model, updated in place. The caller's train/eval mode is restored at the end,
  also when the method fails.
- ``forget``, ``retain``, ``val``: DataLoaders of the samples to forget, the samples to keep and held-out
  samples, whose batches are ``(inputs, targets)`` tuples or dicts with ``"labels"``. ``val`` is
  accepted by all of them for a uniform signature; only ∇τ uses it, for its target loss L̄_val
  (:func:`finetune` passes it to ∇τ, which at α = 0 never reads it).
- ``task``: ``"multiclass"`` or ``"multilabel"``; picks the default loss (and the KL of the
  distillation methods). For ∇τ the default loss is all it picks.
- ``loss``: per-sample loss ``(logits, targets) -> Tensor[batch]`` (see :mod:`nablatau.losses`); default
  :data:`TRAIN_LOSS` of the task, ``cross_entropy`` (multiclass) or ``multilabel_bce`` (multilabel).
  An explicit ``loss`` is used whatever the task.
- ``train_mode``: run the model in train mode during unlearning (the reference: eval for vision, so
  BatchNorm statistics stay frozen, train for text). Default False, except where a method says
  otherwise; teachers always run in eval mode.
- ``seed``: seeds torch before the loop (dropout in train mode); ``None`` leaves torch's generator as
  it is. Loaders carry their own seeds.
- ``progress``: show a tqdm bar over epochs.
- ``callback``: ``callback(epoch, model)``, called after each epoch; a returned mapping joins that
  epoch's history row (e.g. MIA and accuracy for curves over epochs). Its time is kept out of
  ``wall_time_s`` and ``elapsed_s`` and reported as ``config["callback_s"]``.

An unknown keyword argument raises ``TypeError``, as for any Python function.

**Returns.** An :class:`~nablatau.nabla_tau.UnlearnResult`: ``config`` holds the method's name, the task,
every setting, the loss's name and the data sizes; ``history`` one row per epoch (``epoch`` from 0, the
method's losses, ``lr`` when it steps an optimizer, ``elapsed_s``); ``wall_time_s`` the run time.

**Raises.** ``ConfigError`` listing every problem at once (empty loaders, unknown task, out-of-range
settings) before the model is touched; ``ShapeError`` for targets that do not fit ``loss``;
``DivergenceError`` at a NaN or infinite loss: the model keeps the weights of its last finite step and
the error carries the finished epochs as ``error.history``.

Each default says where it comes from: the ∇τ reference notebooks, the method's own paper or code, or
our choice where neither fixes it. On CUDA every method runs in bf16 autocast with channels-last
convolutions like :func:`~nablatau.unlearn`; on the CPU it runs in plain fp32.

    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
    >>> float(distillation_kl(logits, logits, temperature=4.0, task="multiclass")[0])
    0.0
    >>> random_wrong_labels(torch.tensor([0, 1, 2]), 3, "multiclass", torch.Generator().manual_seed(0))
    tensor([1, 2, 1])
"""

from __future__ import annotations

from collections.abc import Callable

from ..loop import UnlearnResult
from ..losses import TRAIN_LOSS
from .amnesiac import amnesiac, random_wrong_labels
from .bad_teacher import bad_teacher
from .common import distillation_kl
from .finetune import FINETUNE_EPOCH_RULES, finetune, finetune_epochs
from .neggrad_plus import neggrad_plus
from .retrain import retrain
from .scrub import parameter_distance, scrub
from .ssd import fisher_importance, ssd, training_set_batches

#: Every baseline by name (:func:`retrain`, the reference, is not one of them).
#: :data:`nablatau.methods.METHODS`, the registry experiment loops read, adds ∇τ to these.
METHODS: dict[str, Callable[..., UnlearnResult]] = {
    "finetune": finetune,
    "neggrad_plus": neggrad_plus,
    "scrub": scrub,
    "amnesiac": amnesiac,
    "bad_teacher": bad_teacher,
    "ssd": ssd,
}

__all__ = [
    "FINETUNE_EPOCH_RULES", "METHODS", "TRAIN_LOSS", "amnesiac", "bad_teacher", "distillation_kl", "finetune",
    "finetune_epochs", "fisher_importance", "neggrad_plus", "parameter_distance", "random_wrong_labels",
    "retrain", "scrub", "ssd", "training_set_batches",
]
