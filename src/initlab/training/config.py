"""The experiment configuration: one frozen, validated dataclass, changed with ``dataclasses.replace``.

Defaults are the tutorial's Part B: 784-64(sigmoid, ``RandomNormal()``)-10(softmax,
``glorot_uniform``), MSE, ``SGD(learning_rate=0.01)``, batch 128, 20 epochs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initlab import initializers
from initlab.accel.sparse_dense import MATMULS
from initlab.checks import MAX_BATCH, MAX_DEPTH, MAX_EPOCHS, MAX_UNITS, positive_int, seed_int
from initlab.data import datasets, file_sha256
from initlab.errors import InitlabError, unknown
from initlab.nn import activations, init_rules, losses, optimizers
from initlab.nn.models import MLP, DenseLayer, layer_name
from initlab.scaling.parametrizations import (
    OPTIMIZER_KINDS,
    PARAMETRIZATIONS,
    LayerRule,
    layer_rules,
    roles_of,
    scaled_optimizer,
)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that decides a training run's numbers.

    Attributes:
        dataset: registered data set name (``initlab list datasets``).
        data_file: an ``.npz`` with Keras's mnist layout to use instead of the shipped file.
        hidden_units: sizes of the hidden layers.
        activation: activation spec of the hidden layers.
        kernel_initializer: initializer spec of the hidden layers' kernels.
        bias_initializer: initializer spec of the hidden layers' biases.
        output_activation: activation spec of the output layer.
        output_kernel_initializer: initializer spec of the output kernel (Keras default).
        output_bias_initializer: initializer spec of the output bias.
        layer_kernel_initializers: per-layer overrides ``((layer_number, spec), ...)``,
            1-based, the output layer being ``len(hidden_units) + 1``.
        loss: loss spec. optimizer: optimizer spec, e.g. ``sgd(learning_rate=0.01)``.
        batch_size, epochs: as in ``model.fit``. seed: the only source of randomness.
        probe_every: per-layer probes (:mod:`initlab.measure.probes`) at initialization and every
            ``probe_every`` epochs (and after the last); 0 turns them off.
        probe_size: validation samples in the probe batch.
        defaults: a framework preset, ``keras``, ``torch`` or ``flax``, that gives every layer the
            initializers that framework gives it (:data:`initlab.nn.init_rules.PRESETS`); the
            shorthands above then apply only where set away from their defaults.
        init_rules: initializer rules ``PATTERN=SPEC`` per parameter path or role, applied in
            order after the preset and the shorthands (:mod:`initlab.nn.init_rules`), e.g.
            ``("Dense_0/kernel=RandomNormal()", "*/bias=zeros")``.
        matmul: the first layer's product: ``auto`` (initlab's sparse-input kernels where the
            inputs are mostly zeros and the kernels can run, else XLA's), ``xla`` or ``sparse``
            (:mod:`initlab.accel.sparse_dense`); the path used is recorded with the result.
        parametrization: how initialization, forward multipliers and learning rates scale with
            the hidden width (:mod:`initlab.scaling.parametrizations`): ``sp`` (standard, the
            default), ``ntk``, ``mup`` or ``mf``; every hidden layer then has one width.
        base_width: the width at which a parametrization other than ``sp`` equals the standard
            one (its width multiplier is ``hidden width / base_width``).
        architecture: a network other than the MLP, as a model spec (``initlab list models``):
            ``cnn(...)``, ``resnet(...)``, ``resmlp(...)``, ``transformer(...)``. The MLP's layer
            fields then do not apply; its initializers are the network's own (Flax's defaults and
            its scheme's), then ``defaults``, then ``kernel_initializer`` / ``bias_initializer``
            where set away from their defaults (every Dense and Conv kernel / bias), then
            ``init_rules``. Trained with ``parametrization='sp'`` only.
    """

    dataset: str = "mnist"
    data_file: str | None = None
    hidden_units: tuple[int, ...] = (64,)
    activation: str = "sigmoid"
    kernel_initializer: str = "random_normal"
    bias_initializer: str = "zeros"
    output_activation: str = "softmax"
    output_kernel_initializer: str = "glorot_uniform"
    output_bias_initializer: str = "zeros"
    layer_kernel_initializers: tuple[tuple[int, str], ...] = ()
    loss: str = "mean_squared_error"
    optimizer: str = "sgd(learning_rate=0.01)"
    batch_size: int = 128
    epochs: int = 20
    seed: int = 0
    probe_every: int = 0
    probe_size: int = 1000
    defaults: str | None = None
    init_rules: tuple[str, ...] = ()
    matmul: str = "auto"
    parametrization: str = "sp"
    base_width: int | None = None
    architecture: str | None = None

    def __post_init__(self) -> None:
        for name in ("dataset", "activation", "kernel_initializer", "bias_initializer", "output_activation",
                     "output_kernel_initializer", "output_bias_initializer", "loss", "optimizer", "parametrization"):
            if not isinstance(getattr(self, name), str):
                raise InitlabError(f"{name} must be a spec string such as 'glorot_uniform', got {getattr(self, name)!r}")
        if self.data_file is not None and not isinstance(self.data_file, str):
            raise InitlabError(f"data_file must be a path string, got {self.data_file!r}")
        if self.data_file is not None:  # absolute: a stored run means the same file from any folder
            object.__setattr__(self, "data_file", str(Path(self.data_file).expanduser().absolute()))
        if isinstance(self.hidden_units, (str, bytes)) or not hasattr(self.hidden_units, "__iter__"):
            raise InitlabError(f"hidden_units must be a list of layer sizes such as [64], got {self.hidden_units!r}")
        object.__setattr__(self, "hidden_units", tuple(self.hidden_units))
        pairs = tuple(tuple(pair) for pair in self.layer_kernel_initializers)
        for pair in pairs:
            if len(pair) != 2 or not isinstance(pair[0], int) or isinstance(pair[0], bool) or not isinstance(pair[1], str):
                raise InitlabError(f"layer_kernel_initializers expects (layer number, spec) pairs, got {pair!r}")
        object.__setattr__(self, "layer_kernel_initializers", pairs)
        for units in self.hidden_units:
            positive_int("hidden layer size", units, maximum=MAX_UNITS)
        if len(self.hidden_units) > MAX_DEPTH:
            raise InitlabError(f"hidden_units: at most {MAX_DEPTH} hidden layers, got {len(self.hidden_units)}")
        positive_int("batch_size", self.batch_size, maximum=MAX_BATCH)
        positive_int("epochs", self.epochs, maximum=MAX_EPOCHS)
        positive_int("probe_size", self.probe_size, maximum=MAX_BATCH)
        if not isinstance(self.probe_every, int) or isinstance(self.probe_every, bool) or self.probe_every < 0:
            raise InitlabError(f"probe_every must be a non-negative integer (0: no probes), got {self.probe_every!r}")
        seed_int("seed", self.seed)
        datasets.entry(self.dataset)
        if self.matmul not in MATMULS:
            raise unknown("matmul", self.matmul, MATMULS)
        # One configuration, one spelling: every spec is stored in its canonical text, so that
        # he_normal, HeNormal() and HE_NORMAL are one run (one hash, one name in every table).
        for name in ("activation", "output_activation"):
            object.__setattr__(self, name, activations.activations.canonical(getattr(self, name)))
        for name in ("kernel_initializer", "bias_initializer", "output_kernel_initializer", "output_bias_initializer"):
            object.__setattr__(self, name, initializers.initializers.canonical(getattr(self, name)))
        layer_count = len(self.hidden_units) + 1
        overrides = []
        for number, spec in self.layer_kernel_initializers:
            if not 1 <= number <= layer_count:
                raise InitlabError(f"layer number {number} is out of range: this network has layers 1-{layer_count}")
            overrides.append((number, initializers.initializers.canonical(spec)))
        object.__setattr__(self, "layer_kernel_initializers", tuple(overrides))
        object.__setattr__(self, "loss", losses.losses.canonical(self.loss))
        if losses.losses.resolve(self.loss)[1].get("from_logits") and self.output_activation != "linear":
            raise InitlabError(
                f"{self.loss} expects logits, but the output activation is {self.output_activation}: set it to linear "
                "(a softmax before the loss's own would be applied twice)"
            )
        optimizers.optimizers.build(self.optimizer)
        object.__setattr__(self, "optimizer", optimizers.optimizers.canonical(self.optimizer, always=("learning_rate",)))
        if isinstance(self.init_rules, (str, bytes)) or not hasattr(self.init_rules, "__iter__"):
            raise InitlabError(f"init_rules must be a list of PATTERN=SPEC strings, got {self.init_rules!r}")
        object.__setattr__(self, "init_rules", tuple(self.init_rules))
        if self.defaults is not None:
            init_rules.preset(self.defaults)
        if self.architecture is not None:
            self._check_architecture()
            return
        self.parameter_initializers()  # every rule parses, and matches a parameter of this network
        self._check_parametrization()

    def _check_architecture(self) -> None:
        from initlab.nn.model_specs import models

        if not isinstance(self.architecture, str):
            raise InitlabError(f"architecture must be a model spec such as 'cnn()', got {self.architecture!r}")
        entry = models.resolve(self.architecture)[0]
        if entry.name == "mlp":
            raise InitlabError("architecture: an MLP is described by hidden_units, activation and output_activation")
        object.__setattr__(self, "architecture", models.build(self.architecture).spec)
        if self.parametrization != "sp" or self.base_width is not None:
            raise InitlabError(f"parametrization {self.parametrization} scales MLPs only so far; {entry.name} trains with sp")
        if self.layer_kernel_initializers:
            raise InitlabError("layer_kernel_initializers number an MLP's layers; for another network use init_rules")
        self.rules()  # every rule parses

    def _check_parametrization(self) -> None:
        if self.parametrization not in PARAMETRIZATIONS:
            raise unknown("parametrization", self.parametrization, PARAMETRIZATIONS)
        if self.parametrization == "sp":
            if self.base_width is not None:
                raise InitlabError("a base width belongs to a width parametrization (ntk, mup or mf); sp has none")
            return
        name = self.parametrization
        if self.base_width is None:
            raise InitlabError(f"parametrization {name} needs a base width: the width at which it equals sp")
        positive_int("base width", self.base_width, maximum=MAX_UNITS)
        if not self.hidden_units or len(set(self.hidden_units)) != 1:
            shown = "-".join(map(str, self.hidden_units)) or "none"
            raise InitlabError(f"parametrization {name} needs hidden layers of one width, got {shown}")
        kind = optimizers.optimizers.resolve(self.optimizer)[0].name
        if kind not in OPTIMIZER_KINDS:
            raise InitlabError(f"parametrization {name} scales the learning rate of sgd or adam, not {kind}")
        for path, spec in self.parameter_initializers().items():
            if initializers.build(spec).data_dependent:
                raise InitlabError(
                    f"{path} is initialized by {spec}, which sets its scale from data; parametrization {name} "
                    "sets it by width: use one of them"
                )
        self.width_rules()  # mf: one hidden layer

    def width_rules(self) -> tuple[LayerRule, ...] | None:
        """Each Dense layer's width-scaling rule under ``parametrization`` (``None`` for ``sp``)."""
        if self.parametrization == "sp":
            return None
        return layer_rules(
            self.parametrization, roles_of(len(self.hidden_units) + 1), width=self.hidden_units[0], base_width=self.base_width
        )

    def optimizer_kind(self) -> str:
        """The optimizer's registered name (``sgd``, ``adam``, ...)."""
        return optimizers.optimizers.resolve(self.optimizer)[0].name

    def build_optimizer(self) -> Any:
        """The optax transformation that trains this config: its optimizer, with the
        parametrization's per-parameter learning-rate multipliers where it has one."""
        optimizer = optimizers.build(self.optimizer)
        rules = self.width_rules()
        return optimizer if rules is None else scaled_optimizer(optimizer, rules, self.optimizer_kind())

    def probes_at(self, epoch: int) -> bool:
        """Whether per-layer probes are taken after ``epoch`` (0: at initialization)."""
        if not self.probe_every:
            return False
        return epoch == 0 or epoch % self.probe_every == 0 or epoch == self.epochs

    def rules(self) -> tuple[init_rules.InitRule, ...]:
        """The initializer rules of this config, in the order they apply (the last match wins).

        The preset (``defaults``), then the shorthands (the hidden layers' kernels and biases,
        the output layer's, the per-layer overrides), then ``init_rules``. Under a preset, a
        shorthand left at its default value counts as unset, so the preset's choice stands.
        """
        rules = list(init_rules.preset(self.defaults)) if self.defaults else []
        if self.architecture is not None:
            for pattern, name in _ARCHITECTURE_SHORTHANDS:
                if initializers.initializers.canonical(getattr(self, name)) != _FIELD_DEFAULTS[name]:
                    rules.append(init_rules.InitRule(pattern, getattr(self, name), required=False))
            return (*rules, *(init_rules.parse(text) for text in self.init_rules))
        for pattern, name in _SHORTHANDS:
            value = getattr(self, name)
            if pattern.startswith("hidden/") and not self.hidden_units:
                continue
            if self.defaults and initializers.initializers.canonical(value) == _FIELD_DEFAULTS[name]:
                continue
            rules.append(init_rules.InitRule(pattern, value))
        rules += [init_rules.InitRule(f"{layer_name(number - 1)}/kernel", spec) for number, spec in self.layer_kernel_initializers]
        rules += [init_rules.parse(text) for text in self.init_rules]
        return tuple(rules)

    def parameter_initializers(self) -> dict[str, str]:
        """The canonical initializer spec of every parameter, ``{"Dense_0/kernel": "random_normal", ...}``."""
        paths = [f"{layer_name(i)}/{name}" for i in range(len(self.hidden_units) + 1) for name in ("kernel", "bias")]
        resolved = init_rules.resolve(paths, self.rules())
        return {path: initializers.initializers.canonical(spec) for path, spec in resolved.items()}

    def layers(self, classes: int) -> tuple[DenseLayer, ...]:
        """The Dense layers, the output layer having ``classes`` units."""
        specs = self.parameter_initializers()
        units = [*self.hidden_units, classes]
        rules = self.width_rules()
        return tuple(
            DenseLayer(
                units=size,
                activation=self.activation if index < len(self.hidden_units) else self.output_activation,
                kernel_initializer=specs[f"{layer_name(index)}/kernel"],
                bias_initializer=specs[f"{layer_name(index)}/bias"],
                input_multiplier=1.0 if rules is None else rules[index].forward,
            )
            for index, size in enumerate(units)
        )

    def model(self, input_dim: int, classes: int) -> MLP:
        return MLP(input_dim=input_dim, layers=self.layers(classes))

    def architecture_model(self, dataset: Any) -> Any:
        """The :class:`~initlab.nn.architecture.Architecture` of ``architecture`` for ``dataset``'s examples."""
        from initlab.nn.model_specs import build_architecture

        return build_architecture(
            self.architecture, dataset.input_shape, dataset.classes, vocabulary=dataset.vocabulary, framework=self.defaults
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hidden_units"] = list(self.hidden_units)
        data["layer_kernel_initializers"] = [list(pair) for pair in self.layer_kernel_initializers]
        data["init_rules"] = list(self.init_rules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown_keys = sorted(set(data) - fields)
        if unknown_keys:
            raise unknown("config key", unknown_keys[0], fields)
        return cls(**data)

    def config_hash(self) -> str:
        """A stable hash of what the run computes (its identity in stores and caches).

        Specs count in their canonical text. A data file counts by its content (SHA-256), not
        by its path: the same file reached from another folder is the same run, and a file
        that changed is a new one. Fields added after stores were first written count only
        away from their defaults, so a store's runs keep their hash.

        Raises:
            InitlabError: ``data_file`` cannot be read.
        """
        data = self.to_dict()
        for name, default in _HASHED_UNLESS_DEFAULT.items():
            if data[name] == default:
                del data[name]
        if self.data_file is not None:
            data["data_file"] = "sha256:" + file_sha256(self.data_file)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


_HASHED_UNLESS_DEFAULT = {
    "matmul": "auto", "defaults": None, "init_rules": [], "parametrization": "sp", "base_width": None, "architecture": None,
}

_SHORTHANDS = (
    ("hidden/kernel", "kernel_initializer"),
    ("hidden/bias", "bias_initializer"),
    ("output/kernel", "output_kernel_initializer"),
    ("output/bias", "output_bias_initializer"),
)
_ARCHITECTURE_SHORTHANDS = (
    ("dense/kernel", "kernel_initializer"),
    ("conv/kernel", "kernel_initializer"),
    ("dense/bias", "bias_initializer"),
    ("conv/bias", "bias_initializer"),
    ("output/kernel", "output_kernel_initializer"),
    ("output/bias", "output_bias_initializer"),
)
_FIELD_DEFAULTS = {
    field.name: field.default for field in dataclasses.fields(TrainConfig) if field.name in dict((n, p) for p, n in _SHORTHANDS)
}
