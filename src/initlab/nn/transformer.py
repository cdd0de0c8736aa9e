"""A Transformer classifier of token sequences, and the initialization schemes made for deep ones.

:func:`transformer`: token and learned position embeddings (``nn.Embed``), ``layers`` blocks of
``nn.MultiHeadDotProductAttention`` (causal where asked) and an MLP (``Dense(mlp_ratio d)``, GELU,
``Dense(d)``) with LayerNorm before (``pre``) or after (``post``) each residual sublayer; the last
position's features, a Dense layer, the output activation. Its examples are token ids, one per
position (the sequence data sets of :mod:`initlab.data.sequences`).

The schemes, with their papers' constants (``N`` blocks; kernels read as the ``(d_in, d_out)``
maps they compute, :func:`initlab.initializers.deep.xavier_normal_projection`):

- ``default``: Flax's defaults (``--defaults keras|torch|flax`` gives every layer a framework's).
- ``gpt2`` (Radford et al. 2019, Sec. 2.3, and OpenAI's ``model.py``): every kernel and both
  embeddings N(0, 0.02^2), zero biases, pre-LN; the residual projections (attention output and
  the MLP's second layer) scaled by ``1/sqrt(2N)``: "the weights of residual layers at
  initialization by a factor of 1/sqrt(N) where N is the number of residual layers" (2 per block).
- ``tfixup`` (Huang et al. 2020, "Improving Transformer Optimization Through Better
  Initialization", Sec. 3.3): no LayerNorm (and no warm-up needed); Xavier for every kernel,
  embeddings N(0, d^-1); then the value and output projections of attention, the MLP's kernels
  and the embeddings scaled by ``(9N)^(-1/4)`` in a decoder (``causal=True``), by
  ``0.67 N^(-1/4)`` in an encoder.
- ``deepnorm`` (Wang et al. 2022, "DeepNet", Fig. 2): post-LN with ``x <- LN(alpha x + f(x))``,
  ``alpha = (2N)^(1/4)``; Xavier-normal kernels, those of the MLP and of the value and output
  projections with gain ``beta = (8N)^(-1/4)`` (query and key gain 1): the paper's values for an
  encoder-only or a decoder-only stack of N layers (its encoder-decoder constants differ).
- ``rezero`` (Bachlechner et al. 2021): no LayerNorm; ``x + alpha f(x)`` for both sublayers of a
  block, one scalar ``alpha`` per block, zero at initialization (as the authors' code).
"""

from __future__ import annotations

import functools
import math
from typing import Any

from initlab.errors import InitlabError, unknown
from initlab.nn import activations
from initlab.nn.architecture import Architecture, rms, rules
from initlab.nn.convnets import LAYER_NORM_EPSILON

TRANSFORMER_NORMS = ("pre", "post", "none")
TRANSFORMER_SCHEMES = ("default", "gpt2", "tfixup", "deepnorm", "rezero")
SCHEME_NORMS = {"default": "pre", "gpt2": "pre", "tfixup": "none", "deepnorm": "post", "rezero": "none"}
"""The LayerNorm placement each scheme is defined with (and the default when ``norm`` is not given)."""


@functools.cache
def _module() -> type:
    import flax.linen as linen
    import jax.numpy as jnp

    class Transformer(linen.Module):
        vocabulary: int
        length: int
        layers: int
        d_model: int
        heads: int
        mlp_ratio: int
        norm: str
        causal: bool
        scheme: str
        alpha: float
        epsilon: float
        output_activation: str
        classes: int

        @linen.compact
        def __call__(self, tokens: Any) -> Any:
            tokens = tokens.astype(jnp.int32)
            x = linen.Embed(self.vocabulary, self.d_model, name="token_embedding")(tokens)
            x = x + linen.Embed(self.length, self.d_model, name="position_embedding")(jnp.arange(tokens.shape[1]))[None]
            mask = linen.make_causal_mask(tokens) if self.causal else None

            def layer_norm(name: str) -> Any:
                return linen.LayerNorm(epsilon=self.epsilon, name=name)

            for index in range(self.layers):
                block = f"block_{index}"
                gain = self.param(f"{block}_residual_gain", linen.initializers.zeros, ()) if self.scheme == "rezero" else None

                def attention(h: Any) -> Any:
                    return linen.MultiHeadDotProductAttention(
                        num_heads=self.heads, qkv_features=self.d_model, out_features=self.d_model,
                        name=f"{block}_attention", deterministic=True,
                    )(h, mask=mask, sow_weights=True)

                def mlp(h: Any) -> Any:
                    h = linen.Dense(self.mlp_ratio * self.d_model, name=f"{block}_mlp_in")(h)
                    return linen.Dense(self.d_model, name=f"{block}_mlp_out")(linen.gelu(h, approximate=False))

                for part, sublayer in (("attention", attention), ("mlp", mlp)):
                    if self.norm == "pre":
                        branch = sublayer(layer_norm(f"{block}_{part}_norm")(x))
                    else:
                        branch = sublayer(x)
                    if gain is not None:
                        branch = gain * branch
                    self.sow("residual", "branch_norm", rms(branch))
                    self.sow("residual", "skip_norm", rms(x))
                    x = self.alpha * x + branch
                    if self.norm == "post":
                        x = layer_norm(f"{block}_{part}_norm")(x)
                self.sow("residual", "stream_norm", rms(x))
            if self.norm == "pre":
                x = layer_norm("final_norm")(x)
            logits = linen.Dense(self.classes, name="head")(x[:, -1])
            return activations.build(self.output_activation)(logits)

    return Transformer



def transformer(
    input_shape: tuple[int, ...],
    classes: int,
    *,
    spec: str,
    vocabulary: int | None,
    framework: str | None,
    layers: int = 2,
    d_model: int = 64,
    heads: int = 4,
    mlp_ratio: int = 4,
    norm: str | None = None,
    causal: bool = True,
    scheme: str = "default",
    output_activation: str = "softmax",
) -> Architecture:
    """A Transformer on sequences of ``input_shape = (length,)`` token ids (see the module docstring)."""
    norm = check_options(d_model, heads, norm, scheme)
    if len(input_shape) != 1 or vocabulary is None:
        shown = "x".join(map(str, input_shape))
        raise InitlabError(
            f"transformer takes sequences of token ids (a data set such as modular_addition or characters); "
            f"this data set's examples are {shown} {'numbers' if vocabulary is None else 'tokens'}"
        )
    n = layers
    alpha, own_rules, multipliers = 1.0, (), ()
    residual_kernels = ("block_*_attention/out/kernel", "block_*_mlp_out/kernel")
    xavier = (("attention/kernel", "xavier_normal_projection"), ("attention_out/kernel", "xavier_normal_projection(in_axes=2)"),
              ("dense/kernel", "xavier_normal_projection"), ("*/bias", "zeros"))
    if scheme == "gpt2":
        own_rules = rules(("kernel", "random_normal(stddev=0.02)"), ("embedding", "random_normal(stddev=0.02)"), ("*/bias", "zeros"))
        multipliers = tuple((pattern, 1.0 / math.sqrt(2 * n)) for pattern in residual_kernels)
    elif scheme == "tfixup":
        own_rules = rules(*xavier, ("embedding", f"random_normal(stddev={d_model ** -0.5!r})"))
        factor = (9 * n) ** -0.25 if causal else 0.67 * n**-0.25
        scaled = ("block_*_attention/value/kernel", "block_*_attention/out/kernel", "block_*_mlp_*/kernel", "*_embedding/embedding")
        multipliers = tuple((pattern, factor) for pattern in scaled)
    elif scheme == "deepnorm":
        alpha = (2 * n) ** 0.25
        own_rules = rules(*xavier)
        scaled = ("block_*_attention/value/kernel", "block_*_attention/out/kernel", "block_*_mlp_*/kernel")
        multipliers = tuple((pattern, (8 * n) ** -0.25) for pattern in scaled)
    module = _module()(
        vocabulary=vocabulary, length=input_shape[0], layers=layers, d_model=d_model, heads=heads, mlp_ratio=mlp_ratio,
        norm=norm, causal=causal, scheme=scheme, alpha=alpha, epsilon=LAYER_NORM_EPSILON[framework or "flax"],
        output_activation=activations.activations.canonical(output_activation), classes=classes,
    )
    return Architecture(module, tuple(input_shape), spec=spec, rules=own_rules, multipliers=multipliers, scheme=scheme)


def check_options(d_model: int, heads: int, norm: str | None, scheme: str) -> str:
    """The normalization a Transformer's options give (``norm`` or the scheme's), or a one-line error."""
    if scheme not in TRANSFORMER_SCHEMES:
        raise unknown("transformer scheme", scheme, TRANSFORMER_SCHEMES)
    if norm is not None and norm not in TRANSFORMER_NORMS:
        raise unknown("transformer norm", norm, TRANSFORMER_NORMS)
    if scheme != "default" and norm is not None and norm != SCHEME_NORMS[scheme]:
        raise InitlabError(f"transformer: scheme {scheme} is defined with norm={SCHEME_NORMS[scheme]!r}, got norm={norm!r}")
    if d_model % heads:
        raise InitlabError(f"transformer: d_model ({d_model}) must be divisible by heads ({heads}); e.g. heads={_divisor(d_model, heads)}")
    return SCHEME_NORMS[scheme] if norm is None else norm


def _divisor(d_model: int, heads: int) -> int:
    """The divisor of ``d_model`` nearest ``heads`` (the suggestion in the error)."""
    return min((h for h in range(1, d_model + 1) if d_model % h == 0), key=lambda h: (abs(h - heads), h))


__all__ = ["SCHEME_NORMS", "TRANSFORMER_NORMS", "TRANSFORMER_SCHEMES", "check_options", "transformer"]
