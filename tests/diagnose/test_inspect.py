"""initlab inspect / check: laws against the real PyTorch, Keras and Flax, and findings on constructed cases."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from initlab.cli import app
from initlab.diagnose import Thresholds, inspect_model
from initlab.diagnose.laws import P_AGREE, agreement_with, torch_layout
from initlab.errors import InitlabError
from initlab.testing import assert_healthy_init

torch = pytest.importorskip("torch")
nn = torch.nn


def _params(inspection):
    return {p.name: p for p in inspection.params}


def test_every_pytorch_layer_types_default_is_its_declared_law():
    # The real PyTorch draws; initlab's law for each (layer type, parameter) must agree with them.
    torch.manual_seed(0)
    model = nn.ModuleDict({
        "linear": nn.Linear(300, 200), "conv": nn.Conv2d(16, 32, 3), "embedding": nn.Embedding(1000, 64),
        "norm": nn.LayerNorm(64), "batchnorm": nn.BatchNorm2d(8), "attention": nn.MultiheadAttention(64, 4),
    })  # fmt: skip
    from initlab.diagnose.torch_backend import declared_spec

    for module_name, module in model.items():
        weight = getattr(module, "weight", None)
        fan_in = int(weight.shape[1] * math.prod(weight.shape[2:])) if weight is not None and weight.dim() >= 2 else None
        for name, param in module.named_parameters():
            parent = "MultiheadAttention" if name.startswith("out_proj") else None
            kind = type(module if "." not in name else module.out_proj).__name__
            spec = declared_spec(kind, name.rsplit(".", 1)[-1], fan_in if "." not in name else 64, parent)
            assert spec is not None, (module_name, name)
            values = param.detach().numpy()
            layout = np.moveaxis(values, [0, 1], [-1, -2]) if values.ndim >= 2 else values
            agreement = agreement_with(layout, spec, torch_layout(tuple(values.shape)))
            assert agreement.p_value >= P_AGREE, (module_name, name, spec, agreement)


def test_a_reinitialization_is_named_as_torchvision_does_it():
    # torchvision's ResNet: nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu") on every conv.
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))  # fmt: skip
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    params = _params(inspect_model(model, input_shape=(3, 16, 16)))
    for name in ("0.weight", "2.weight"):
        assert not params[name].declared["agrees"]
        assert params[name].identified["spec"] == "torch.kaiming_normal(mode='fan_out', nonlinearity='relu')"
        assert params[name].std == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.03)
    assert params["6.weight"].declared["agrees"] and params["6.weight"].identified["spec"] == "torch.linear_default"


def test_orthogonal_is_told_by_its_structure_not_its_spread():
    # A conv whose kaiming fan_out std equals an orthogonal kernel's (128 x 64 x 3 x 3: both 1/sqrt(576)).
    torch.manual_seed(2)
    kaiming, orthogonal = nn.Conv2d(64, 128, 3), nn.Conv2d(64, 128, 3)
    nn.init.kaiming_normal_(kaiming.weight, mode="fan_out", nonlinearity="relu")
    nn.init.orthogonal_(orthogonal.weight)
    first = _params(inspect_model(nn.Sequential(kaiming), input_shape=(64, 8, 8)))["0.weight"]
    second = _params(inspect_model(nn.Sequential(orthogonal), input_shape=(64, 8, 8)))["0.weight"]
    assert first.identified["spec"] == "torch.kaiming_normal(mode='fan_out', nonlinearity='relu')"
    assert second.identified["spec"] == "torch.orthogonal" and second.identified["test"] == "structure"


def _mlp(activation, weight_std=None, bias=None, depth=2, width=128, inputs=784):
    torch.manual_seed(0)
    layers, fan = [], inputs
    for _ in range(depth):
        layers += [nn.Linear(fan, width), activation()]
        fan = width
    layers.append(nn.Linear(fan, 10))
    model = nn.Sequential(*layers)
    for module in model:
        if isinstance(module, nn.Linear):
            if weight_std is not None:
                nn.init.normal_(module.weight, 0.0, weight_std)
            if bias is not None:
                nn.init.constant_(module.bias, bias)
    return model


def _failing(model, **kwargs):
    return {f.kind for f in inspect_model(model, **kwargs).findings() if f.severity == "fail"}


def test_findings_are_right_on_constructed_cases():
    uniform = dict(input_shape=(784,), batch_size=64, input_law="uniform")
    assert _failing(_mlp(nn.ReLU), **uniform) == set()  # PyTorch's defaults: sane
    assert "dead" in _failing(_mlp(nn.ReLU, bias=-3.0), **uniform)  # negative biases kill ReLUs
    assert {"saturated", "loss"} <= _failing(_mlp(nn.Sigmoid, weight_std=1.0), **uniform)  # the tutorial's N(0, 1)
    deep_small = _mlp(nn.Tanh, weight_std=0.3 / 8, depth=20, width=64, inputs=64)  # too small weights, 20 layers
    assert "vanishing_gradients" in _failing(deep_small, input_shape=(64,), batch_size=64)
    dead = inspect_model(_mlp(nn.ReLU, bias=-3.0), **uniform)
    (finding,) = [f for f in dead.findings() if f.kind == "dead" and f.where == "1"]
    assert "100% of units are dead at initialization" in finding.message


def test_check_exits_1_on_a_bad_init_and_0_on_a_sane_one(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def sane():
            torch.manual_seed(0)
            return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))

        def dead():
            model = sane()
            nn.init.constant_(model[0].bias, -3.0)
            return model
    """))
    runner = CliRunner()
    args = ["--input-shape", "784", "--input-law", "uniform", "--batch", "64"]
    bad = runner.invoke(app, ["check", f"{path}:dead", *args])
    assert bad.exit_code == 1 and "dead at initialization" in bad.stdout, bad.stdout
    assert runner.invoke(app, ["check", f"{path}:sane", *args]).exit_code == 0
    relaxed = runner.invoke(app, ["check", f"{path}:dead", *args, "--max-dead", "1"])
    assert relaxed.exit_code == 0, relaxed.stdout
    as_json = runner.invoke(app, ["inspect", f"{path}:dead", *args, "--json", "--html", str(tmp_path / "i.html")])
    document = json.loads(as_json.stdout)
    assert not document["healthy"] and document["classes"] == 10
    assert document["log_classes"] == pytest.approx(math.log(10))
    assert "dead at initialization" in (tmp_path / "i.html").read_text()


def test_update_to_weight_ratios_after_steps_and_the_model_is_left_as_given():
    model = _mlp(nn.ReLU)
    before = [p.detach().clone() for p in model.parameters()]
    inspection = inspect_model(model, input_shape=(784,), batch_size=32, steps=3, learning_rate=0.1)
    ratios = {p.name: p.update_ratio for p in inspection.params}
    assert all(r > 0 for r in ratios.values())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_assert_healthy_init():
    with pytest.raises(AssertionError, match="dead at initialization"):
        assert_healthy_init(_mlp(nn.ReLU, bias=-3.0), input_shape=(784,), batch_size=64, input_law="uniform")
    assert_healthy_init(_mlp(nn.ReLU), np.random.default_rng(0).random((64, 784), dtype=np.float32))
    with pytest.raises(AssertionError) as relaxed:  # dead units allowed: what remains is their consequence
        assert_healthy_init(_mlp(nn.ReLU, bias=-3.0), input_shape=(784,), input_law="uniform",
                            thresholds=Thresholds(dead=1.0))  # fmt: skip
    assert "dead at initialization" not in str(relaxed.value) and "the signal vanishes" in str(relaxed.value)


def test_keras_weights_are_tested_against_their_layers_own_initializers(keras):
    model = keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="tanh", kernel_initializer=keras.initializers.HeNormal(seed=1)),
        keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    inspection = inspect_model(model, input_shape=(12, 12, 3), batch_size=16)
    kernels = {p.kind: p for p in inspection.params if p.name.endswith("/kernel")}
    assert kernels["Conv2D"].declared["spec"] == "glorot_uniform" and kernels["Conv2D"].declared["agrees"]
    dense_kernels = [p for p in inspection.params if p.kind == "Dense" and p.name.endswith("/kernel")]
    assert dense_kernels[0].declared["spec"] == "he_normal" and dense_kernels[0].declared["agrees"]
    assert inspection.classes == 10 and inspection.loss == pytest.approx(math.log(10), abs=0.5)
    assert [layer.activation for layer in inspection.layers if layer.kind == "Dense"] == ["tanh", "softmax"]


def test_a_flax_module_against_flaxs_defaults_and_dead_units():
    import flax.linen as fnn

    class Net(fnn.Module):
        bias: float = 0.0

        @fnn.compact
        def __call__(self, x):
            x = fnn.relu(fnn.Dense(128, bias_init=fnn.initializers.constant(self.bias))(x))
            return fnn.Dense(10)(x)

    healthy = inspect_model(Net(), input_shape=(784,), batch_size=64, input_law="uniform")
    kernels = [p for p in healthy.params if p.name.endswith("kernel")]
    assert all(p.declared["spec"] == "flax.lecun_normal" and p.declared["agrees"] for p in kernels)
    assert not [f for f in healthy.findings() if f.severity == "fail"]
    dead = inspect_model(Net(bias=-3.0), input_shape=(784,), batch_size=64, input_law="uniform")
    assert "dead" in {f.kind for f in dead.findings() if f.severity == "fail"}


def test_a_missing_framework_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "needs_torch.py"
    path.write_text("import torch\n\ndef model():\n    return None\n")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    result = CliRunner().invoke(app, ["inspect", f"{path}:model", "--input-shape", "4"])
    assert result.exit_code == 2
    assert "pip install initlab[torch]" in result.stderr


def test_inputs_and_targets_are_checked():
    with pytest.raises(InitlabError, match="give the inputs"):
        inspect_model(_mlp(nn.ReLU))
    with pytest.raises(InitlabError, match="unknown input law"):
        inspect_model(_mlp(nn.ReLU), input_shape=(784,), input_law="cauchy")
    with pytest.raises(InitlabError, match="not a model"):
        inspect_model(object(), input_shape=(3,))
    with pytest.raises(InitlabError, match="the model failed on"):
        inspect_model(_mlp(nn.ReLU), input_shape=(100,))


def test_a_keras_application_nobody_here_wrote(keras):
    # MobileNetV2's architecture only (weights=None: nothing downloaded): every weight whose layer
    # declares an initializer follows it, depthwise kernels included.
    keras.utils.set_random_seed(0)  # Keras draws the weights from its global generator
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10)
    inspection = inspect_model(model, input_shape=(32, 32, 3), batch_size=16)
    declared = [p for p in inspection.params if p.declared is not None]
    assert len(declared) == len(inspection.params)
    assert all(p.declared["agrees"] for p in declared), [p.name for p in declared if not p.declared["agrees"]]
    depthwise = [p for p in inspection.params if p.kind == "DepthwiseConv2D"]
    assert depthwise and all(p.declared["spec"] == "glorot_uniform" for p in depthwise)
    failing = {f.kind for f in inspection.findings() if f.severity == "fail"}
    assert "loss" not in failing  # within loss_excess of log(10), a uniform guess
    assert "vanishing" not in failing  # softmax probabilities are not a signal


def test_a_flax_resnet_nobody_here_wrote():
    # flaxmodels' ResNet18 (pretrained=None: nothing downloaded; `train` is an argument of its
    # __call__): Flax's own initialization is lecun_normal, a normal truncated at 2 standard
    # deviations rescaled to variance 1/fan_in, fan_in = kh * kw * c_in, for every Conv and the
    # Dense head; BatchNorm scales ones, biases zeros.
    flaxmodels = pytest.importorskip("flaxmodels")
    model = flaxmodels.ResNet18(output="logits", pretrained=None, num_classes=10)
    inspection = inspect_model(model, input_shape=(32, 32, 3), batch_size=8)
    assert all(p.declared is not None and p.declared["agrees"] for p in inspection.params)  # running statistics too
    trained = [p for p in inspection.params if not p.name.startswith("batch_stats/")]
    assert len(trained) == 62  # 20 convolutions, 20 BatchNorms (scale, bias), the Dense head (kernel, bias)
    assert all(p.declared is not None and p.declared["agrees"] for p in trained), [p.name for p in trained]
    kernels = [p for p in trained if p.name.endswith("/kernel")]
    assert {p.kind for p in kernels} == {"Conv", "Dense"} and len(kernels) == 21
    for p in kernels:
        fan_in = math.prod(p.shape[:-1])
        n = math.prod(p.shape)
        # the sample std of n draws: standard error ~ std / sqrt(2 n) (kurtosis of the truncated normal < 3)
        assert p.std == pytest.approx(1 / math.sqrt(fan_in), abs=4 / math.sqrt(fan_in) / math.sqrt(2 * n)), p.name
        assert p.declared["spec"] == "flax.lecun_normal"
    scales = [p for p in trained if p.name.endswith("/scale")]
    assert len(scales) == 20 and all(p.declared["spec"] == "ones" and p.std == 0 and p.mean == 1 for p in scales)
    assert inspection.framework == "flax"


def test_a_flax_layer_named_by_its_author_is_known_by_its_type():
    import flax.linen as nn

    class Named(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Conv(8, (3, 3), name="conv1")(x))
            return nn.Dense(10, name="classifier")(x.reshape((x.shape[0], -1)))

    inspection = inspect_model(Named(), input_shape=(8, 8, 1), batch_size=4)
    by_name = {p.name: p for p in inspection.params}
    assert by_name["conv1/kernel"].kind == "Conv" and by_name["conv1/kernel"].declared["spec"] == "flax.lecun_normal"
    assert by_name["classifier/bias"].kind == "Dense" and by_name["classifier/bias"].declared["spec"] == "zeros"


def test_keras_weight_gradients_and_update_ratios_match_the_closed_form(keras):
    # One softmax Dense layer, cross-entropy against the inspection's labels: dL/dW = x^T (p - y) / n,
    # dL/db = mean(p - y); k SGD steps of that in NumPy give the update-to-weight ratio.
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="softmax")])
    x = np.random.default_rng(2).standard_normal((8, 5)).astype(np.float32)
    kernel0, bias0 = (w.astype(np.float64) for w in model.get_weights())
    inspection = inspect_model(model, x, steps=3, learning_rate=0.5, seed=0)
    labels = np.random.default_rng(0).integers(0, 4, 8)  # the inspection's random labels (seed 0)
    targets = np.eye(4)[labels]
    kernel, bias, gradients = kernel0.copy(), bias0.copy(), []
    for _ in range(3):
        logits = x @ kernel + bias
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g_kernel, g_bias = x.T @ (p - targets) / 8, (p - targets).mean(0)
        gradients.append((g_kernel, g_bias))
        kernel, bias = kernel - 0.5 * g_kernel, bias - 0.5 * g_bias
    by_name = {p.name.rsplit("/", 1)[-1]: p for p in inspection.params}
    assert by_name["kernel"].gradient_std == pytest.approx(gradients[0][0].std(), rel=1e-4)
    assert by_name["bias"].gradient_std == pytest.approx(gradients[0][1].std(), rel=1e-4)
    expected = np.linalg.norm(kernel - kernel0) / np.linalg.norm(kernel0)
    assert by_name["kernel"].update_ratio == pytest.approx(expected, rel=1e-4)
    assert math.isnan(by_name["bias"].update_ratio)  # zero bias: no ratio
    np.testing.assert_array_equal(model.get_weights()[0], kernel0.astype(np.float32))  # the model is left as given
    assert inspection.steps == 3


def test_keras_gradients_with_respect_to_layer_outputs_match_backpropagation_by_hand(keras):
    # Dense(tanh) -> Dense(softmax), cross-entropy against the inspection's labels: dL/dp = -y / (n p) at the
    # softmax's output, dL/dh = (p - y) W2^T / n at the tanh layer's.
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6, activation="tanh"), keras.layers.Dense(4, activation="softmax")])
    x = np.random.default_rng(4).standard_normal((8, 5)).astype(np.float32)
    (w1, b1, w2, b2) = (w.astype(np.float64) for w in model.get_weights())
    inspection = inspect_model(model, x, seed=0)
    targets = np.eye(4)[np.random.default_rng(0).integers(0, 4, 8)]
    h = np.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    by_name = {layer.name: layer for layer in inspection.layers}
    first, second = (layer.name for layer in model.layers)
    assert by_name[second].gradient_std == pytest.approx((-targets / (8 * p)).std(), rel=1e-4)
    assert by_name[first].gradient_std == pytest.approx(((p - targets) @ w2.T / 8).std(), rel=1e-4)
    assert not any("layer outputs" in note for note in inspection.notes)
    # With BatchNormalization (training mode): measured, and the moving statistics are left as they were.
    normed = keras.Sequential([keras.Input((5,)), keras.layers.Dense(6), keras.layers.BatchNormalization(),
                               keras.layers.Dense(4, activation="softmax")])  # fmt: skip
    before = [w.copy() for w in normed.get_weights()]
    assert all(layer.gradient_std > 0 for layer in inspect_model(normed, x, seed=0).layers)
    for a, b in zip(before, normed.get_weights()):
        np.testing.assert_array_equal(a, b)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4, activation="softmax")

        def call(self, inputs):
            return self.dense(inputs)

    subclassed = Subclassed()
    subclassed(x)
    with pytest.raises(InitlabError, match="subclassed keras.Model has no layer graph"):
        inspect_model(subclassed, x, seed=0)


def test_a_config_initialized_gpt2_from_transformers_nobody_here_wrote():
    # Hugging Face's GPT2PreTrainedModel._init_weights: Conv1D and Embedding weights N(0, 0.02), biases zero,
    # LayerNorm ones and zeros, then every c_proj weight N(0, 0.02 / sqrt(2 n_layer)); lm_head tied to wte.
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    layers = 3
    config = transformers.GPT2Config(n_layer=layers, n_embd=128, n_head=4, vocab_size=1000, n_positions=64,
                                     bos_token_id=0, eos_token_id=0)  # fmt: skip
    model = transformers.GPT2LMHeadModel(config)
    inspection = inspect_model(model, np.random.default_rng(0).integers(0, 1000, (4, 32)))
    by_name = {param.name: param for param in inspection.params}
    for name, param in by_name.items():
        entries = math.prod(param.shape)
        if name.endswith("c_proj.weight"):  # a law none of the candidates has: its fitted family and std
            assert param.family["family"] == "normal", name
            assert param.std == pytest.approx(0.02 / math.sqrt(2 * layers), rel=4 / math.sqrt(2 * entries)), name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            # trunc_normal's default bounds are +-2, a hundred standard deviations out: the same law
            assert param.identified["spec"] in ("torch.normal(std=0.02)", "torch.trunc_normal(std=0.02)"), name
        elif name.endswith("bias"):
            assert param.std == 0 and param.mean == 0, name
        elif ".ln_" in name or "ln_f" in name:
            assert param.mean == 1 and param.std == 0, name
    assert by_name["transformer.wte.weight"].declared["agrees"] is False  # not nn.Embedding's own N(0, 1)
    assert "lm_head.weight" not in by_name and any("tied" in note for note in inspection.notes)
    assert inspection.classes == 1000 and inspection.loss == pytest.approx(math.log(1000), abs=0.05)


def test_mean_field_theory_beside_a_keras_stack(keras):
    # 784-1024(tanh)-1024(relu)-1024(sigmoid)-10(softmax), Keras's defaults: each hidden Dense
    # output's mean square against E[phi(sqrt(q^l) z)^2] from the measured sigma_w^2, sigma_b^2.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(1024, activation="tanh"),
                              keras.layers.Dense(1024, activation="relu"), keras.layers.Dense(1024, activation="sigmoid"),
                              keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    inspection = inspect_model(model, input_shape=(784,), batch_size=256, input_law="uniform")
    hidden = inspection.layers[:3]
    for layer in hidden:  # width 1024: one draw's fluctuation is a few percent
        assert layer.second_moment == pytest.approx(layer.predicted_second_moment, rel=0.1), layer.name
    assert inspection.layers[3].predicted_second_moment is None  # softmax is not elementwise
    convolutional = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                                      keras.layers.Dense(2)])  # fmt: skip
    assert all(layer.predicted_second_moment is None
               for layer in inspect_model(convolutional, input_shape=(8, 8, 1), batch_size=4).layers)  # fmt: skip


def test_mean_field_theory_beside_a_flax_stack():
    # 784-1024(tanh)-1024(relu)-1024(gelu)-10, Flax's defaults, N(0, 1) inputs: each hidden Dense's
    # pre-activation mean square against q^l from the measured sigma_w^2 (one draw of 1024 units, iid
    # inputs: about 1% from the prediction); the nonlinearities are recognized from what passes between.
    import flax.linen as linen

    class Stack(linen.Module):
        @linen.compact
        def __call__(self, x):
            x = linen.tanh(linen.Dense(1024)(x))
            x = linen.relu(linen.Dense(1024)(x))
            x = linen.gelu(linen.Dense(1024)(x))
            return linen.Dense(10)(x)

    inspection = inspect_model(Stack(), input_shape=(784,), batch_size=256, input_law="normal")
    for layer in inspection.layers[:3]:
        assert layer.second_moment == pytest.approx(layer.predicted_second_moment, rel=0.06), layer.name

    class Normalized(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(4)(linen.LayerNorm()(linen.relu(linen.Dense(16)(x))) * 2.0)

    assert all(layer.predicted_second_moment is None
               for layer in inspect_model(Normalized(), input_shape=(8,), batch_size=16).layers)  # fmt: skip


def test_normalization_sees_the_batch_and_its_running_statistics_are_put_back():
    # At initialization a fresh BatchNorm in eval mode is the identity; the first step sees batch statistics.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 4))
    nn.init.normal_(model[0].weight, 0.0, 10.0)  # a large scale that only the batch statistics undo
    model.eval()
    inspection = inspect_model(model, input_shape=(16,), batch_size=64)
    by_name = {layer.name: layer for layer in inspection.layers}
    assert by_name["1"].std == pytest.approx(1.0, rel=0.02)  # normalized by the batch
    assert torch.equal(model[1].running_mean, torch.zeros(32)) and torch.equal(model[1].running_var, torch.ones(32))
    assert not model.training


def test_mean_field_theory_beside_the_measurement_for_a_plain_stack():
    # 784-1024-1024-1024-10 tanh with PyTorch's defaults: each Linear output's mean square against
    # q^{l+1} = sigma_w^2 E[tanh(sqrt(q^l) z)^2] + sigma_b^2 (measured sigma_w^2 and sigma_b^2).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 1024), nn.Tanh(), nn.Linear(1024, 1024), nn.Tanh(), nn.Linear(1024, 1024),
                          nn.Tanh(), nn.Linear(1024, 10))  # fmt: skip
    inspection = inspect_model(model, input_shape=(784,), batch_size=256, input_law="uniform")
    linear = [layer for layer in inspection.layers if layer.kind == "Linear"]
    assert len(linear) == 4 and all(layer.predicted_second_moment is not None for layer in linear)
    for layer in linear[:3]:  # width 1024: one draw's fluctuation is a few percent
        assert layer.second_moment == pytest.approx(layer.predicted_second_moment, rel=0.1), layer.name
    assert all(layer.predicted_second_moment is None for layer in inspection.layers if layer.kind == "Tanh")
    with_norm = inspect_model(nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)),
                              input_shape=(8,), batch_size=16)  # fmt: skip
    assert all(layer.predicted_second_moment is None for layer in with_norm.layers)  # not a stack the theory covers
