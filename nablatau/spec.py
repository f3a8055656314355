"""One experiment spec: what one model of one experiment is, frozen and validated once.

Every experiment of the package is a set of :class:`Spec` s, one per model its results file holds: the
original, the retrained reference and each method of a removal run (``subset_removal``,
``class_removal``, the benchmark's runs), the quickstart, the text comparison, the ``train_original``
notebook's original, and every cell of the α₀ sweep (a spec whose method is ∇τ with a given α₀).
:func:`nablatau.runner.run_spec` runs any of them and returns the measured model; the notebooks run
their specs in this process (:func:`nablatau.runner.run_experiment`), and :mod:`nablatau.grid` runs a
whole grid of them as Ray tasks, each after the specs it :attr:`~Spec.needs`.

A spec holds plain values only (it pickles to any Ray worker) and is checked when it is made: a bad value
raises :class:`~nablatau.errors.ConfigError` before anything is loaded or trained. Its :attr:`~Spec.config`
is everything that determines the numbers of its results file, whose hash names that file.

    >>> spec = Spec("removal", "nablatau", notebook="subset_removal", profile="smoke", forget_fraction=0.1,
    ...             seed=1, methods=("nablatau",))
    >>> spec.label
    'subset_removal cifar10/smoke forget 0.1 seed 1: nablatau'
    >>> [need.model for need in spec.needs]
    ['original', 'retrain']
    >>> Spec("removal", "nablatau", notebook="subset_removal", forget_fraction=1.5)
    Traceback (most recent call last):
    ...
    nablatau.errors.ConfigError: forget_fraction must be in (0, 1), got 1.5; the paper uses 0.03, 0.15 and 0.30
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .checks import forget_fraction_problems, is_int, is_number
from .data import GOEMOTIONS_TRAIN_SIZE, forget_size, image_dataset_size
from .errors import ConfigError, raise_if_any
from .methods import METHODS, method
from .profiles import IMAGE_METHOD_SETTINGS, TEXT_METHOD_SETTINGS, plain_settings, resolve_profile
from .references import reference_index, reference_names, reference_seed
from .results import results_path, run_id
from .sweep_rule import NOTEBOOK as SWEEP_NOTEBOOK

#: What a trained model is trained on: the whole training set, or the retain split (every retrained reference).
REFERENCE_MODELS = ("original", "retrain")

#: The experiments and the results folder of those whose folder is fixed (a removal run names its own).
NOTEBOOKS = {"removal": None, "quickstart": "quickstart", "text": "text_removal", "original": "train_original",
             "sweep": SWEEP_NOTEBOOK}

#: The α₀ sweep's fixed seeds (the reference sweep's): every model, loader and attack draws from
#: :data:`SWEEP_MODEL_SEED`, the validation/test halves from :data:`SWEEP_HELDOUT_SEED`; a cell's own seed
#: draws only its forget set, so one cached original serves every cell.
SWEEP_MODEL_SEED = 0
SWEEP_HELDOUT_SEED = 1337

#: Settings the runner itself reads (and removes) before calling a method.
RUNNER_SETTINGS = ("batch_size",)


@dataclass(frozen=True)
class Spec:
    """One model of one experiment; see the module docstring.

    Args:
        experiment: ``"removal"`` (subset or class removal on CIFAR), ``"quickstart"``, ``"text"``
            (GoEmotions), ``"original"`` (the ``train_original`` notebook) or ``"sweep"`` (an α₀ sweep cell).
        model: ``"original"``, a retrained reference (``"retrain"``, ``"retrain_2"``, ... up to the profile's
            ``references``) or a method of :data:`nablatau.methods.METHODS`.
        notebook: the results folder of a removal run (e.g. ``"subset_removal"``); fixed for the others.
        dataset, profile: the data set and the profile (:func:`nablatau.profiles.resolve_profile`).
        forget_fraction, forget_classes: what is forgotten (exactly one, for every experiment but ``original``).
        seed: model initialisation, loader order and the attack's splits (the sweep: always 0).
        split_seed: the forget split, and the validation/test halves unless ``heldout_seed`` is given
            (the sweep: the cell's seed, which draws only the forget set).
        heldout_seed: the validation/test halves (the sweep: 1337); None = ``split_seed``.
        methods: the experiment's methods, in the order its results file lists them.
        method_settings: this spec's method's settings beyond the profile's, as ``(name, value)`` pairs
            (the sweep: ``alpha0``, ``max_epochs``, ``train_mode``).
        overrides: profile settings to replace, as ``(name, value)`` pairs (recorded in the config).
        train_epochs: shortens the original's and the retrained model's training (recorded).
        encoder: text only: the encoder, None = the profile's.
    """

    experiment: str
    model: str
    notebook: str | None = None
    dataset: str = "cifar10"
    profile: str = "quick"
    forget_fraction: float | None = None
    forget_classes: tuple[int, ...] | None = None
    seed: int = 0
    split_seed: int = 42
    heldout_seed: int | None = None
    methods: tuple[str, ...] = ()
    method_settings: tuple[tuple[str, Any], ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()
    train_epochs: int | None = None
    encoder: str | None = None
    _config: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.experiment not in NOTEBOOKS:
            raise ConfigError(f"experiment must be one of {sorted(NOTEBOOKS)}, got {self.experiment!r}")
        fixed = NOTEBOOKS[self.experiment]
        if fixed is not None and self.notebook not in (None, fixed):
            raise ConfigError(f"a {self.experiment} spec writes to {fixed!r}; leave notebook out (got {self.notebook!r})")
        if fixed is None and not (isinstance(self.notebook, str) and self.notebook):
            raise ConfigError("a removal spec names its results folder: pass notebook, e.g. 'subset_removal'")
        put("notebook", fixed or self.notebook)
        if isinstance(self.forget_classes, int):
            put("forget_classes", (self.forget_classes,))
        if self.forget_classes is not None and isinstance(self.forget_classes, Sequence):
            classes = tuple(self.forget_classes)
            put("forget_classes", tuple(sorted(classes)) if all(is_int(c) for c in classes) else classes)
        for name in ("methods", "method_settings", "overrides"):
            value = getattr(self, name)
            put(name, tuple(value.items()) if isinstance(value, Mapping) else tuple(value))
        put("dataset", "goemotions" if self.experiment == "text" else self.dataset)
        put("_config", _CONFIGS[self.experiment](self))
        raise_if_any(_model_problems(self))

    # --- What it is ------------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        """Everything that determines the numbers of its results file (a fresh copy); its hash names the file."""
        return _copy(self._config)

    @property
    def settings(self) -> dict[str, Any]:
        """The resolved profile it runs with (training recipe as a :class:`~nablatau.train.TrainRecipe`)."""
        return self.config["settings"]

    @property
    def run_id(self) -> str:
        """The name of its results file: the hash of :attr:`config`."""
        return run_id(self._config)

    @property
    def id(self) -> str:
        """``<notebook>/<run-id>/<model>``: unique within a grid."""
        return f"{self.notebook}/{self.run_id}/{self.model}"

    @property
    def label(self) -> str:
        """For progress bars and errors, e.g. ``subset_removal cifar10/quick forget 0.15 seed 1: nablatau``."""
        forget = (f" forget {self.forget_fraction:g}" if self.forget_fraction is not None
                  else f" classes {list(self.forget_classes)}" if self.forget_classes is not None else "")
        extra = "".join(f" {key}={value:g}" for key, value in self.method_settings if key == "alpha0")
        # A sweep cell's seed draws its forget set; its models all start from seed 0.
        seed = self.split_seed if self.experiment == "sweep" and self.model != "original" else self.seed
        return f"{self.notebook} {self.dataset}/{self.profile}{forget} seed {seed}: {self.model}{extra}"

    @property
    def references(self) -> tuple[str, ...]:
        """Its experiment's retrained references (:func:`reference_names` of the profile's ``references``);
        none for ``train_original``, which has no forget set."""
        return () if self.experiment == "original" else reference_names(self._config["settings"]["references"])

    @property
    def file_models(self) -> tuple[str, ...]:
        """The models its results file holds, in order; empty for a model that only trains (the sweep's original)."""
        if self.experiment == "original":
            return ("original",)
        if self.experiment == "sweep":
            return () if self.model == "original" else (self.model,)
        return ("original", *self.references, *self.methods)

    @property
    def saves(self) -> bool:
        """Whether it writes a results file (every spec but the sweep's original, which only trains)."""
        return bool(self.file_models)

    def path(self, output_dir: str | Path) -> Path:
        """Its results file under ``output_dir``."""
        return results_path(output_dir, self.notebook, self._config)

    def other(self, model: str) -> Spec:
        """The spec of another model of the same experiment."""
        return dataclasses.replace(self, model=model)

    @property
    def trains(self) -> bool:
        """Whether it trains a model (the original or a retrained reference) before measuring it."""
        return self.model == "original" or reference_index(self.model) is not None

    @property
    def role(self) -> str | None:
        """What its model trains on: ``"original"`` (everything), ``"retrain"`` (the retain split), None (a method)."""
        return None if not self.trains else "original" if self.model == "original" else "retrain"

    @property
    def training_seed(self) -> int | None:
        """The seed its model trains with: the spec's, or for a further reference :func:`reference_seed`."""
        return None if not self.trains else self.seed if self.model == "original" else reference_seed(self.seed,
                                                                                                       self.model)

    @property
    def training(self) -> str | None:
        """What its training produces, or None for a method: specs with the same value train the same weights
        (the original of one seed serves every comparison of that seed), so a grid trains them once. The
        checkpoint key (:func:`checkpoint_key`) with what the cache adds to it: training-set size, recipe, seed."""
        if not self.trains:
            return None
        settings = self._config["settings"]
        forget = ({} if self.model == "original" else {"forget_classes": list(self.forget_classes)}
                  if self.forget_classes is not None else {"forget_fraction": self.forget_fraction,
                                                           "split_seed": self.split_seed})
        key = checkpoint_key(settings, self.role, dataset=self.dataset, **forget)
        return run_id({**key, "n_train": settings["n_train"], "recipe": settings["recipe"],
                       "seed": self.training_seed})

    @property
    def training_label(self) -> str:
        """The training it runs, for progress bars and errors, e.g. ``train retrain cifar10/quick seed 1 forget 0.15``."""
        forget = ("" if self.model == "original" else f" forget {self.forget_fraction:g} (split {self.split_seed})"
                  if self.forget_fraction is not None else f" classes {list(self.forget_classes)}")
        return f"train {self.model} {self.dataset}/{self.profile} seed {self.training_seed}{forget}"

    @property
    def needs(self) -> tuple[Spec, ...]:
        """The specs whose trained models it uses besides its own. Every model of a comparison is measured
        against the first retrained reference, so the original and the further references need it and a method
        needs it and the original; a sweep cell needs the original (a ∇τ cell unlearns it, a retraining checks
        itself against it). The rest need nothing."""
        if self.experiment == "original" or self.model == "retrain" and self.experiment != "sweep":
            return ()
        if self.experiment == "sweep":
            if self.model == "original":
                return ()
            return (Spec("sweep", "original", dataset=self.dataset, profile=self.profile, seed=self.seed,
                         heldout_seed=self.heldout_seed),)
        if self.model == "original" or reference_index(self.model) is not None:
            return (self.other("retrain"),)
        return (self.other("original"), self.other("retrain"))

    @property
    def method_kwargs(self) -> dict[str, Any]:
        """The keyword arguments its method runs with: the profile's settings for it, then its own."""
        table = TEXT_METHOD_SETTINGS if self.experiment == "text" else IMAGE_METHOD_SETTINGS
        return {**table.get(self.model, {}), **dict(self.method_settings)}


def experiment_specs(experiment: str, methods: Sequence[str] = (), **parameters: Any) -> list[Spec]:
    """The specs of one comparison: the original, the retrained model and each of ``methods``, in order.

    ``train_original`` has only the original. The first spec is made (and checked) before the others,
    so a bad parameter raises once.
    """
    methods = tuple(dict.fromkeys(methods))
    first = Spec(experiment, "original", methods=methods, **parameters)
    return [first, *(first.other(model) for model in first.file_models[1:])]


# --- Trained models ----------------------------------------------------------------------------


def checkpoint_key(settings: Mapping[str, Any], role: str = "original", *, dataset: str,
                   **forget: Any) -> dict[str, Any]:
    """What determines a trained model's weights besides its training set, recipe and seed.

    The one definition of checkpoint keys, for every notebook, the sweep, the benchmark and the tests,
    so they share cached checkpoints, and of what a grid trains once (:attr:`Spec.training`). Image models (``settings["experiment"] == "image"``) are ResNet-18s;
    text models add the encoder, pooling, maximum length and the dev/test subset sizes.

        >>> from nablatau.profiles import resolve_profile
        >>> checkpoint_key(resolve_profile("smoke"), "retrain", dataset="cifar10", forget_classes=[3])
        {'role': 'retrain', 'dataset': 'cifar10', 'model': 'resnet18', 'forget_classes': [3]}

    Args:
        settings: the resolved profile (:func:`nablatau.profiles.resolve_profile`).
        role: ``"original"`` (the whole training set) or ``"retrain"`` (the retain split only).
        dataset: the data set's name, e.g. ``"cifar10"`` or ``"goemotions"``.
        forget: for ``"retrain"``, what was removed: ``forget_fraction`` and ``split_seed``, or
            ``forget_classes``.

    Raises:
        ConfigError: an unknown role or forget key, or a retrained model without a forget set.
    """
    problems = []
    if role not in REFERENCE_MODELS:
        problems.append(f"role must be one of {list(REFERENCE_MODELS)}, got {role!r}")
    unknown = sorted(set(forget) - {"forget_fraction", "split_seed", "forget_classes"})
    if unknown:
        problems.append(f"unknown forget keys {unknown}; pass forget_fraction and split_seed, or forget_classes")
    if (role == "retrain") != bool(forget):
        problems.append("a retrained model's key names its forget set (forget_fraction and split_seed, or "
                        f"forget_classes) and the original's names none; got role {role!r} with {forget}")
    raise_if_any(problems)
    if settings["experiment"] == "text":
        model = {"model": "text-classifier", **{name: settings[name] for name in
                                                 ("encoder", "pooling", "max_length", "n_val", "n_test")}}
    else:
        model = {"model": "resnet18"}
    return {"role": role, "dataset": dataset, **model, **forget}



# --- Checks ------------------------------------------------------------------------------------


def method_problems(methods: Sequence[str], settings: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """Why ``methods`` (with ``settings`` per method) cannot run: unknown names, reference models among
    them, settings a method does not take. A method that takes ``**kwargs`` refuses unknown ones itself."""
    problems = []
    clash = sorted(name for name in methods if name == "original" or reference_index(name) is not None)
    if clash:
        problems.append(f"{clash} always run as the reference models; remove them from methods")
    for name in methods:
        if name in clash:
            continue
        try:
            parameters = inspect.signature(method(name)).parameters
        except ConfigError as error:
            problems.append(str(error))
            continue
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            continue
        unknown = sorted(set((settings or {}).get(name, {})) - set(parameters) - set(RUNNER_SETTINGS))
        if unknown:
            problems.append(f"{name} takes no settings {unknown}; its settings are "
                            f"{sorted(set(parameters) - {'model', 'forget', 'retain', 'val'})}")
    return problems


def _model_problems(spec: Spec) -> list[str]:
    problems = method_problems(spec.methods, {spec.model: dict(spec.method_settings)}
                               if spec.model in METHODS else None)
    allowed = {"original": ("original",), "sweep": ("original", *spec.references, "nablatau")}.get(
        spec.experiment, ("original", *spec.references, *spec.methods))
    if spec.model not in allowed:
        problems.append(f"a {spec.experiment} spec's model must be one of {list(allowed)}, got {spec.model!r}"
                        + ("; add it to methods" if spec.model in METHODS else ""))
    return problems


def forget_size_problems(settings: Mapping[str, Any], forget_fraction: float, full_size: int) -> list[str]:
    """Why ``forget_fraction`` of the profile's training set is too small a forget set; empty when it is not.

    The forget set must fill at least one unlearning batch: ∇τ's epoch rule divides by the number of
    forget batches, and an attack on a handful of samples measures nothing.
    """
    n_train = settings["n_train"] if settings["n_train"] is not None else full_size
    n_forget, batch = forget_size(n_train, forget_fraction), settings["unlearn_batch_size"]
    if n_forget >= batch:
        return []
    needed = next(f / 100 for f in range(1, 100) if forget_size(n_train, f / 100) >= batch) \
        if forget_size(n_train, 0.99) >= batch else None
    fix = (f"use forget_fraction >= {needed:g}" if needed is not None else "use a larger training set") + \
        f" or a profile with more training samples (n_train > {n_train}) or a smaller unlearn_batch_size"
    return [f"forget_fraction {forget_fraction:g} of the {settings['profile']} profile's {n_train} training samples "
            f"forgets {n_forget}, fewer than one unlearning batch ({batch}); {fix}"]


def _seed_problems(spec: Spec) -> list[str]:
    return [f"{name} must be a non-negative integer, got {getattr(spec, name)!r}"
            for name in ("seed", "split_seed", "heldout_seed")
            if getattr(spec, name) is not None and not (is_int(getattr(spec, name)) and getattr(spec, name) >= 0)]


# --- Configs: one per experiment, as its results files have always been named --------------------


def _removal(spec: Spec) -> dict[str, Any]:
    """Subset or class removal on CIFAR; ``train_epochs`` records ``shortened_training``."""
    problems = _seed_problems(spec)
    if spec.train_epochs is not None and not (is_int(spec.train_epochs) and spec.train_epochs >= 1):
        problems.append(f"train_epochs must be a positive integer (or None for the profile's), got {spec.train_epochs!r}")
    if (spec.forget_fraction is None) == (spec.forget_classes is None):
        problems.append("pass exactly one of forget_fraction (subset removal, e.g. 0.1) and forget_classes "
                        f"(class removal, e.g. [3]); got {spec.forget_fraction!r} and {spec.forget_classes!r}")
    if spec.forget_fraction is not None:
        problems += forget_fraction_problems(spec.forget_fraction, example="the paper uses 0.03, 0.15 and 0.30")
    num_classes, n_images = image_dataset_size(spec.dataset)
    classes = spec.forget_classes
    if classes is not None:
        if not classes or not all(is_int(c) and c >= 0 for c in classes):
            problems.append(f"forget_classes must be a non-empty list of class ids, got {list(classes)!r}")
        elif max(classes) >= num_classes:
            problems.append(f"forget_classes {list(classes)}: {spec.dataset} has classes 0 to {num_classes - 1}; "
                            f"pick class ids below {num_classes}")
        elif len(set(classes)) == num_classes:
            problems.append(f"forget_classes {list(classes)} removes every class of {spec.dataset}; leave at least one")
    settings = resolve_profile(spec.profile, dataset=spec.dataset, **dict(spec.overrides))
    if spec.forget_fraction is not None and not problems:
        problems += forget_size_problems(settings, spec.forget_fraction, n_images)
    raise_if_any(problems)
    config = {"notebook": spec.notebook, "dataset": spec.dataset, "profile": spec.profile,
              "forget_fraction": spec.forget_fraction, "forget_classes": list(classes) if classes is not None else None,
              "seed": spec.seed, "split_seed": spec.split_seed, "settings": settings,
              "method_settings": IMAGE_METHOD_SETTINGS, "nablatau_version": __version__}
    if spec.train_epochs is not None and spec.train_epochs != settings["recipe"].epochs:
        config["shortened_training"] = {"profile_epochs": settings["recipe"].epochs, "epochs": spec.train_epochs}
        settings["recipe"] = settings["recipe"].replace(epochs=spec.train_epochs)
    return config


def _quickstart(spec: Spec) -> dict[str, Any]:
    """∇τ alone on a random subset, forget split with the reference's seed 42."""
    settings = resolve_profile(spec.profile, dataset=spec.dataset)
    problems = _seed_problems(spec) + forget_fraction_problems(spec.forget_fraction)
    raise_if_any(problems or forget_size_problems(settings, spec.forget_fraction, image_dataset_size(spec.dataset)[1]))
    return {"profile": spec.profile, "dataset": spec.dataset, "forget_fraction": spec.forget_fraction,
            "seed": spec.seed, "settings": settings, "nablatau": plain_settings(IMAGE_METHOD_SETTINGS["nablatau"])}


def _text(spec: Spec) -> dict[str, Any]:
    """GoEmotions with the profile's encoder; the run id covers the method list."""
    raise_if_any(_seed_problems(spec))
    settings = resolve_profile(spec.profile, "text", **({"encoder": spec.encoder} if spec.encoder else {}))
    raise_if_any(forget_fraction_problems(spec.forget_fraction, example="the paper uses 0.15 and 0.30")
                 or forget_size_problems(settings, spec.forget_fraction, GOEMOTIONS_TRAIN_SIZE))
    return {"profile": spec.profile, "forget_fraction": spec.forget_fraction, "seed": spec.seed,
            "methods": list(spec.methods), "settings": settings,
            "method_settings": {name: plain_settings(TEXT_METHOD_SETTINGS[name]) for name in spec.methods}}


def _original(spec: Spec) -> dict[str, Any]:
    """The original alone, measured against the test half of ``split_seed``."""
    raise_if_any(_seed_problems(spec))
    return {"notebook": spec.notebook, "dataset": spec.dataset, "profile": spec.profile, "seed": spec.seed,
            "split_seed": spec.split_seed,
            "settings": resolve_profile(spec.profile, dataset=spec.dataset, **dict(spec.overrides)),
            "nablatau_version": __version__}


def _sweep(spec: Spec) -> dict[str, Any]:
    """An α₀ sweep cell: ``seed`` in its config is the forget-set seed (``split_seed`` here)."""
    problems = _seed_problems(spec)
    if spec.model != "original":  # the original is trained on every image: it has no forget set
        problems += forget_fraction_problems(spec.forget_fraction, name="fraction")
    if (spec.seed, spec.heldout_seed) != (SWEEP_MODEL_SEED, SWEEP_HELDOUT_SEED):
        problems.append(f"a sweep cell runs with seed {SWEEP_MODEL_SEED} and heldout_seed {SWEEP_HELDOUT_SEED} (the "
                        f"reference sweep's); its split_seed draws the forget set. Got {spec.seed}, {spec.heldout_seed}")
    cell = dict(spec.method_settings)
    if spec.model == "nablatau":
        missing = sorted({"alpha0", "max_epochs", "train_mode"} - set(cell))
        if missing:
            problems.append(f"a ∇τ sweep cell sets alpha0, max_epochs and train_mode; {missing} missing")
        elif not (is_number(cell["alpha0"]) and 0 <= cell["alpha0"] <= 1):
            problems.append(f"alpha0 must be in [0, 1], got {cell['alpha0']!r}")
    raise_if_any(problems)
    config = {"kind": spec.model, "dataset": spec.dataset, "profile": spec.profile,
              "forget_fraction": spec.forget_fraction, "seed": spec.split_seed, "model_seed": spec.seed,
              "heldout_seed": spec.heldout_seed, "settings": resolve_profile(spec.profile, dataset=spec.dataset)}
    if spec.model == "nablatau":
        config.update(alpha0=cell["alpha0"], max_epochs=cell["max_epochs"], train_mode=cell["train_mode"])
    return config


_CONFIGS = {"removal": _removal, "quickstart": _quickstart, "text": _text, "original": _original, "sweep": _sweep}


def _copy(value: Any) -> Any:
    """A copy of a config: dicts and lists copied, everything else (recipes, frozen tables) shared."""
    if isinstance(value, dict) and type(value) is dict:
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
