"""initlab's networks beyond the MLP: shapes, the schemes' constants, BatchNorm state, block statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.nn.model_specs import build_architecture, models

IMAGE = (12, 12, 1)

SPECS = [
    ("cnn(channels=[4, 8], dense=[16])", IMAGE, None),
    ("cnn(depth=6, channels=4, activation='tanh', padding='same')", IMAGE, None),
    ("cnn(channels=[4], kernel_size=5, padding='valid', pooling='average')", IMAGE, None),
    ("resnet(depth=2, width=4, norm='batch')", IMAGE, None),
    ("resnet(depth=2, width=4, norm='layer')", IMAGE, None),
    ("resnet(depth=2, width=4, norm='none', scheme='fixup')", IMAGE, None),
    ("resnet(depth=2, width=4, norm='none', scheme='rezero')", IMAGE, None),
    ("resmlp(depth=3, width=16, scheme='skipinit')", IMAGE, None),
    ("transformer(layers=2, d_model=16, heads=2)", (5,), 11),
    ("transformer(layers=2, d_model=16, heads=2, norm='post', causal=False)", (5,), 11),
    ("transformer(layers=2, d_model=16, heads=2, scheme='gpt2')", (5,), 11),
    ("transformer(layers=2, d_model=16, heads=2, scheme='tfixup')", (5,), 11),
    ("transformer(layers=2, d_model=16, heads=2, scheme='deepnorm')", (5,), 11),
    ("transformer(layers=2, d_model=16, heads=2, scheme='rezero')", (5,), 11),
]


def _inputs(shape, vocabulary, batch=6, seed=0):
    rng = np.random.default_rng(seed)
    if vocabulary is not None:
        return rng.integers(0, vocabulary, (batch, *shape)).astype(np.float32)
    return rng.random((batch, int(np.prod(shape)))).astype(np.float32)


@pytest.mark.parametrize(("spec", "shape", "vocabulary"), SPECS, ids=[spec for spec, _, _ in SPECS])
def test_every_network_draws_applies_and_names_every_parameters_origin(spec, shape, vocabulary, getkey):
    import jax

    model = build_architecture(models.build(spec).spec, shape, 3, vocabulary=vocabulary)
    params, origins = model.initialize(getkey())
    out = np.asarray(model.apply(params, _inputs(shape, vocabulary)))
    assert out.shape == (6, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)  # softmax output
    flat = {k for k in origins if not k.startswith("batch_stats/")}
    assert all(origins[k] != "module" or k.rpartition("/")[2] not in ("kernel", "embedding") for k in flat), origins
    trained = {k: v for k, v in params.items() if k != "batch_stats"}
    assert model.parameter_count() == sum(leaf.size for leaf in jax.tree.leaves(trained)) > 0
    if "batch_norm" in spec or "norm='batch'" in spec:
        assert "batch_stats" in params  # BatchNorm's statistics ride along, outside the count


def test_a_spec_has_one_canonical_text():
    assert models.build("cnn()").spec == models.build("cnn(dense=[128], channels=(32, 64))").spec
    assert models.build("cnn(depth=5, channels=8)").spec == models.build("cnn(depth=5, channels=[8], dense=[])").spec


@pytest.mark.parametrize(
    ("spec", "shape", "words"),
    [
        ("cnn(kernel_size=13, padding='valid')", IMAGE, "larger than its 12x12"),
        ("cnn(channels=[4, 4, 4, 4], pool_size=2)", IMAGE, "pooling is larger"),
        ("transformer(d_model=10, heads=4)", (5,), "divisible"),
        ("resnet(norm='batch', scheme='fixup')", IMAGE, "norm='none'"),
        ("transformer(scheme='deepnorm', norm='pre')", (5,), "norm='post'"),
    ],
)
def test_impossible_networks_fail_in_one_line(spec, shape, words):
    with pytest.raises(InitlabError, match=words):
        build_architecture(models.build(spec).spec, shape, 3, vocabulary=11)


def test_a_transformer_needs_tokens_and_a_cnn_images():
    with pytest.raises(InitlabError, match="token ids"):
        build_architecture("transformer()", (28, 28), 10)
    with pytest.raises(InitlabError, match="images"):
        build_architecture("cnn()", (3,), 10, vocabulary=98)


def _flat(params):
    from flax.traverse_util import flatten_dict

    return {k: np.asarray(v, np.float64) for k, v in flatten_dict(params, sep="/").items()}


def test_fixup_constants(getkey):
    """Zhang et al. 2019: zero last branch layer and classifier, He(fan-out) x L^(-1/2) first, scalars 0 and 1."""
    depth, width = 16, 32
    model = build_architecture(models.build(f"resmlp(depth={depth}, width={width}, scheme='fixup')").spec, (64,), 10)
    params, origins = model.initialize(getkey())
    flat = _flat(params)
    for block in range(depth):
        assert not flat[f"block_{block}/layer_1/kernel"].any()
        assert flat[f"block_{block}/multiplier"].tolist() == [1.0] and not flat[f"block_{block}/bias_0a"].any()
    assert not flat["head/kernel"].any() and not flat["head/bias"].any()
    first = np.concatenate([flat[f"block_{b}/layer_0/kernel"].ravel() for b in range(depth)])
    expected = math.sqrt(2.0 / width) * depth**-0.5  # fan-out = width
    se = expected / math.sqrt(2 * first.size)
    assert abs(first.std() - expected) < 5 * se
    assert "x 0.25 (fixup)" in origins["block_0/layer_0/kernel"]


def test_skipinit_rezero_and_fixup_start_as_the_identity_where_the_default_residual_stream_grows(getkey):
    """Per block: the default init's stream grows with depth; the zero-initialized branches keep it flat."""
    import jax.numpy as jnp

    x = _inputs((64,), None, batch=128)
    growth = {}
    for scheme in ("default", "skipinit", "rezero", "fixup"):
        model = build_architecture(models.build(f"resmlp(depth=8, width=64, scheme='{scheme}')").spec, (64,), 10)
        params, _ = model.initialize(getkey())
        sown = model.sown(params, jnp.asarray(x))
        stream = np.asarray(sown["stream_norm"])
        growth[scheme] = stream[-1] / stream[0]
        if scheme != "default":
            assert np.all(np.asarray(sown["branch_norm"]) == 0)
    assert growth["default"] > 2.0  # ReLU branches add their variance block after block
    for scheme in ("skipinit", "rezero", "fixup"):
        assert growth[scheme] == pytest.approx(1.0, rel=1e-5)


def test_gpt2_scales_the_residual_projections_by_one_over_sqrt_2n(getkey):
    layers, d = 3, 64
    model = build_architecture(models.build(f"transformer(layers={layers}, d_model={d}, heads=4, scheme='gpt2')").spec,
                               (8,), 10, vocabulary=50)
    flat = _flat(model.initialize(getkey())[0])
    residual = np.concatenate([flat[f"block_{i}_attention/out/kernel"].ravel() for i in range(layers)]
                              + [flat[f"block_{i}_mlp_out/kernel"].ravel() for i in range(layers)])
    other = np.concatenate([flat[f"block_{i}_mlp_in/kernel"].ravel() for i in range(layers)])
    for values, std in ((residual, 0.02 / math.sqrt(2 * layers)), (other, 0.02), (flat["token_embedding/embedding"].ravel(), 0.02)):
        assert abs(values.std() - std) < 5 * std / math.sqrt(2 * values.size)


@pytest.mark.parametrize(("causal", "factor"), [(True, lambda n: (9 * n) ** -0.25), (False, lambda n: 0.67 * n**-0.25)])
def test_tfixup_scales_value_output_mlp_and_embeddings_and_drops_layernorm(causal, factor, getkey):
    layers, d = 2, 64
    spec = models.build(f"transformer(layers={layers}, d_model={d}, heads=4, scheme='tfixup', causal={causal})").spec
    model = build_architecture(spec, (8,), 10, vocabulary=500)
    flat = _flat(model.initialize(getkey())[0])
    assert not any("norm" in path for path in flat)
    xavier = math.sqrt(2.0 / (d + d))
    value = np.concatenate([flat[f"block_{i}_attention/value/kernel"].ravel() for i in range(layers)])
    query = np.concatenate([flat[f"block_{i}_attention/query/kernel"].ravel() for i in range(layers)])
    embedding = flat["token_embedding/embedding"].ravel()
    for values, std in ((value, xavier * factor(layers)), (query, xavier), (embedding, d**-0.5 * factor(layers))):
        assert abs(values.std() - std) < 5 * std / math.sqrt(2 * values.size)


def test_deepnorm_alpha_and_beta(getkey):
    layers, d = 4, 32
    model = build_architecture(models.build(f"transformer(layers={layers}, d_model={d}, heads=2, scheme='deepnorm')").spec,
                               (8,), 10, vocabulary=50)
    assert model.module.alpha == pytest.approx((2 * layers) ** 0.25)
    flat = _flat(model.initialize(getkey())[0])
    beta = (8 * layers) ** -0.25
    mlp = np.concatenate([flat[f"block_{i}_mlp_in/kernel"].ravel() for i in range(layers)])
    key = np.concatenate([flat[f"block_{i}_attention/key/kernel"].ravel() for i in range(layers)])
    for values, std in ((mlp, beta * math.sqrt(2.0 / (d + 4 * d))), (key, math.sqrt(2.0 / (2 * d)))):
        assert abs(values.std() - std) < 5 * std / math.sqrt(2 * values.size)


@pytest.mark.parametrize(("framework", "momentum", "epsilon"), [("keras", 0.99, 1e-3), ("torch", 0.9, 1e-5)])
def test_batchnorm_follows_the_preset_and_training_moves_each_models_statistics(framework, momentum, epsilon, getkey):
    import jax
    import jax.numpy as jnp

    model = build_architecture(models.build("resnet(depth=1, width=4, norm='batch')").spec, IMAGE, 3, framework=framework)
    assert (model.module.framework, momentum, epsilon) == (framework, *__import__("initlab.nn.convnets", fromlist=["x"]).BATCH_NORM[framework])
    params = [model.initialize(getkey())[0] for _ in range(2)]
    x = jnp.asarray(_inputs(IMAGE, None, batch=16))
    stacked = jax.tree.map(lambda *p: jnp.stack(p), *params)
    # Two models in one vmapped program: each normalizes with its own batch statistics and moves its own.
    _, moved = jax.vmap(lambda p: model.apply_training(p, x))(stacked)
    stats = np.asarray(moved["batch_stats"]["stem_norm"]["mean"])
    assert not np.allclose(stats[0], stats[1])
    alone = np.asarray(model.apply_training(params[0], x)[1]["batch_stats"]["stem_norm"]["mean"])
    np.testing.assert_allclose(stats[0], alone, rtol=1e-5, atol=1e-7)
    # The running mean moved by (1 - momentum) of the batch mean from its initial zeros.
    variables = model._variables(params[0])
    _, inner = model.module.clone(train=True).apply(variables, x.reshape((16, *IMAGE)), mutable=["batch_stats", "intermediates"],
                                                    capture_intermediates=True)
    stem = np.asarray(inner["intermediates"]["stem"]["__call__"][0])
    np.testing.assert_allclose(alone, (1 - momentum) * stem.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-7)


def test_attention_statistics_of_a_causal_transformer(getkey):
    """Entropy per query is at most log(keys it sees); uniform attention (zero query kernels) reaches it."""
    import jax.numpy as jnp

    from initlab.measure.probes import block_statistics
    from initlab.nn.init_rules import InitRule

    length = 6
    model = build_architecture(models.build("transformer(layers=2, d_model=16, heads=2)").spec, (length,), 4, vocabulary=20)
    x = jnp.asarray(_inputs((length,), 20, batch=8))
    uniform, _ = model.initialize(getkey(), (InitRule("*/query/kernel", "zeros"),))
    stats = block_statistics(model.sown(uniform, x))
    expected = np.mean([math.log(k) for k in range(1, length + 1)])
    np.testing.assert_allclose(np.asarray(stats["attention_entropy"]), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(stats["attention_logit_std"]), 0.0, atol=1e-6)
    drawn, _ = model.initialize(getkey())
    stats = block_statistics(model.sown(drawn, x))
    assert np.all(np.asarray(stats["attention_entropy"]) < expected) and np.all(np.asarray(stats["attention_logit_std"]) > 0)


def test_depth_mup_keeps_the_residual_stream_bounded_in_depth_as_mean_field_says():
    # Branches times 1/sqrt(L) (Depth-muP): with He kernels and no normalization the stream's mean square
    # tends to a finite limit as L grows (the mean-field recursion x <- relu(x + sqrt(2q/L) z)), where the
    # default's grows exponentially (zhang2019: e^0.87 per block).
    import math

    import jax

    from initlab import data
    from initlab.nn.model_specs import build_architecture
    from initlab.reproduce.zhang2019 import mean_field_growth
    from initlab.training.config import TrainConfig

    images = data.load("mnist").features("test")[:64]

    def growth(spec: str, draws: int) -> float:
        model = build_architecture(spec, (784,), 10)
        rules = TrainConfig(architecture=spec, kernel_initializer="he_normal").rules()
        ratios = []
        for seed in range(draws):  # one compiled program for every draw
            sown = model.sown(model.initialize(jax.random.key(seed), rules)[0], images)
            ratios.append(float(np.mean(sown["stream_norm"][-1] ** 2) / np.mean(sown["skip_norm"][0] ** 2)))
        return float(np.mean(ratios))

    deep = growth("resmlp(depth=64, width=256, norm='none', scheme='depth_mup')", 3)
    predicted = mean_field_growth(64, samples=400_000, branch_scale=1 / math.sqrt(64))[-1]
    assert deep == pytest.approx(predicted, rel=0.2)  # 64 blocks of width 256: a few draws' spread
    assert predicted < 10
    assert growth("resmlp(depth=16, width=256, norm='none')", 1) > 1e4
