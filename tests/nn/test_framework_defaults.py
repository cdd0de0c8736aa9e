"""Each layer type's framework defaults (``--defaults keras|torch|flax``) against the real libraries.

initlab draws a Flax network's parameters with a preset's rules; the real Keras 3, PyTorch and Flax
layers of the same sizes draw theirs. Per parameter: the same law (uniform bounds, normal standard
deviations, constants), checked by comparing the two samples' standard deviations within a few
standard errors and the uniform bounds, and the shapes where the layouts agree (Keras and Flax).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from initlab.nn.flax_model import FlaxModel
from initlab.nn.init_rules import preset

D_MODEL, HEADS, VOCABULARY, CHANNELS = 128, 4, 1000, 64
N_SE = 5.0


def _module():
    import flax.linen as nn

    class AllLayers(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(VOCABULARY, D_MODEL, name="embedding")(tokens.astype("int32"))
            x = nn.LayerNorm(name="norm")(x)
            x = nn.MultiHeadDotProductAttention(num_heads=HEADS, name="attention")(x)
            image = x[:, :, :CHANNELS].reshape((x.shape[0], 2, -1, CHANNELS))
            image = nn.Conv(CHANNELS, (3, 3), name="conv")(image)
            return nn.Dense(256, name="dense")(image.reshape((x.shape[0], -1))[:, :512])

    return FlaxModel(AllLayers(), (16,))


@pytest.fixture(scope="module")
def drawn():
    import jax

    model = _module()
    params = {}
    for framework in ("keras", "torch", "flax"):
        flat, origins = model.initialize(jax.random.key(1), preset(framework))
        from flax.traverse_util import flatten_dict

        params[framework] = {k: np.asarray(v, np.float64) for k, v in flatten_dict(flat, sep="/").items()}
        assert "module" not in origins.values(), origins  # every parameter came from the preset
    return params


def _same_spread(ours: np.ndarray, theirs: np.ndarray, label: str) -> None:
    """Equal standard deviations within N_SE standard errors (each std's SE ~ std * sqrt(kurtosis term / n))."""
    a, b = np.asarray(ours, np.float64).ravel(), np.asarray(theirs, np.float64).ravel()
    if b.std() == 0:
        np.testing.assert_array_equal(a, np.full_like(a, b.mean()), err_msg=label)
        return
    se = math.sqrt(sum(x.var() * (np.mean((x - x.mean()) ** 4) / x.var() ** 2 - 1) / (4 * x.size) for x in (a, b)))
    assert abs(a.std() - b.std()) <= N_SE * se, f"{label}: std {a.std():.6g} (initlab) vs {b.std():.6g} (library), SE {se:.2g}"
    assert abs(a.mean() - b.mean()) <= N_SE * math.sqrt(a.var() / a.size + b.var() / b.size), f"{label}: means differ"


def _same_bounds(ours: np.ndarray, theirs: np.ndarray, label: str) -> None:
    """Uniform draws: both samples reach the same bound (to 2%) and neither passes it."""
    bound = np.abs(theirs).max()
    assert np.abs(ours).max() <= bound * 1.02 and np.abs(ours).max() >= bound * 0.98, f"{label}: bounds differ"


def test_torch_defaults_equal_pytorchs_layers(drawn):
    import torch

    ours = drawn["torch"]
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(CHANNELS, CHANNELS, 3)
    embedding = torch.nn.Embedding(VOCABULARY, D_MODEL)
    norm = torch.nn.LayerNorm(D_MODEL)
    attention = torch.nn.MultiheadAttention(D_MODEL, HEADS)
    dense = torch.nn.Linear(512, 256)
    w = {name: p.detach().numpy() for name, p in attention.named_parameters()}
    q, k, v = np.split(w["in_proj_weight"], 3)
    cases = {
        "conv/kernel": conv.weight, "conv/bias": conv.bias, "embedding/embedding": embedding.weight,
        "norm/scale": norm.weight, "norm/bias": norm.bias, "dense/kernel": dense.weight, "dense/bias": dense.bias,
        "attention/query/kernel": q, "attention/key/kernel": k, "attention/value/kernel": v,
        "attention/query/bias": w["in_proj_bias"][:D_MODEL], "attention/out/kernel": w["out_proj.weight"],
        "attention/out/bias": w["out_proj.bias"],
    }
    for path, theirs in cases.items():
        theirs = np.asarray(theirs.detach().numpy() if hasattr(theirs, "detach") else theirs, np.float64)
        assert ours[path].size == theirs.size, path
        _same_spread(ours[path], theirs, f"torch {path}")
        if path.endswith(("kernel", "bias")) and theirs.std() > 0:
            _same_bounds(ours[path], theirs, f"torch {path}")
    # The packed in_proj_weight (3d, d) has fans (d, 3d): its bound is sqrt(6 / 4d), not a (d, d) matrix's.
    assert np.abs(ours["attention/query/kernel"]).max() <= math.sqrt(6 / (4 * D_MODEL)) * (1 + 1e-6)


def test_keras_defaults_equal_keras_layers(drawn, keras):
    ours = drawn["keras"]
    keras.utils.set_random_seed(0)
    conv = keras.layers.Conv2D(CHANNELS, 3)
    conv.build((None, 8, 8, CHANNELS))
    embedding = keras.layers.Embedding(VOCABULARY, D_MODEL)
    embedding.build((None, 16))
    norm = keras.layers.LayerNormalization()
    norm.build((None, 16, D_MODEL))
    attention = keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=D_MODEL // HEADS)
    attention.build((None, 16, D_MODEL), (None, 16, D_MODEL))
    dense = keras.layers.Dense(256)
    dense.build((None, 512))
    weights = {w.path.split("/", 1)[1] if "/" in w.path else w.path: np.asarray(w.numpy()) for w in attention.weights}
    by_name = {name.rsplit("/", 2)[-2] + "/" + name.rsplit("/", 1)[-1]: value for name, value in weights.items()}
    cases = {
        "conv/kernel": conv.kernel, "conv/bias": conv.bias, "embedding/embedding": embedding.embeddings,
        "norm/scale": norm.gamma, "norm/bias": norm.beta, "dense/kernel": dense.kernel, "dense/bias": dense.bias,
        "attention/query/kernel": by_name["query/kernel"], "attention/key/kernel": by_name["key/kernel"],
        "attention/value/kernel": by_name["value/kernel"], "attention/query/bias": by_name["query/bias"],
        "attention/out/kernel": by_name["attention_output/kernel"], "attention/out/bias": by_name["attention_output/bias"],
    }
    for path, theirs in cases.items():
        theirs = np.asarray(theirs, np.float64)
        assert ours[path].shape == theirs.shape, (path, ours[path].shape, theirs.shape)  # the same layouts
        _same_spread(ours[path], theirs, f"keras {path}")
        if theirs.std() > 0:
            _same_bounds(ours[path], theirs, f"keras {path}")


def test_flax_defaults_equal_flax_modules_own(drawn):
    import jax
    from flax.traverse_util import flatten_dict

    model = _module()
    own = flatten_dict(model.init(jax.random.key(7)), sep="/")
    for path, theirs in own.items():
        ours = drawn["flax"][path]
        assert ours.shape == theirs.shape, path
        _same_spread(ours, np.asarray(theirs, np.float64), f"flax {path}")
