"""The initializers made for deep networks against their papers' constructions and JAX's own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from initlab.errors import InitlabError
from initlab.initializers import build


@pytest.mark.parametrize("shape", [(3, 3, 16, 32), (5, 5, 8, 8), (3, 16, 16)])
def test_delta_orthogonal_is_zero_but_an_orthogonal_centre_as_jax(shape, getkey):
    import jax

    key = getkey()
    ours = np.asarray(build("delta_orthogonal(gain=1.5)")(key, shape), np.float64)
    theirs = np.asarray(jax.nn.initializers.delta_orthogonal(scale=1.5)(key, shape), np.float64)
    centre = tuple((k - 1) // 2 for k in shape[:-2])
    for kernel in (ours, theirs):  # the same structure: one orthogonal matrix at the same place
        mask = np.zeros(shape[:-2], bool)
        mask[centre] = True
        assert np.all(kernel[~mask] == 0)
        np.testing.assert_allclose(kernel[centre].T @ kernel[centre] if shape[-2] >= shape[-1]
                                   else kernel[centre] @ kernel[centre].T, 1.5**2 * np.eye(min(shape[-2:])), atol=1e-5)
    law = build("delta_orthogonal(gain=1.5)").law(shape)
    assert law.std**2 == pytest.approx(np.mean(ours**2), rel=1e-5)


def test_delta_orthogonal_keeps_a_deep_linear_cnn_an_isometry_where_gaussian_kernels_do_not(getkey):
    """Xiao et al. 2018: a stack of delta-orthogonal convolutions maps inputs isometrically."""
    import jax

    x = np.asarray(jax.random.normal(getkey(), (1, 12, 12, 8)), np.float32)
    norms = {}
    for spec in ("delta_orthogonal", "variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')"):
        h = x
        for _ in range(30):
            kernel = build(spec)(getkey(), (3, 3, 8, 8))
            h = jax.lax.conv_general_dilated(h, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        norms[spec] = float(np.linalg.norm(h) / np.linalg.norm(x))
    assert norms["delta_orthogonal"] == pytest.approx(1.0, rel=1e-4)
    assert abs(math.log(norms["variance_scaling(scale=1.0, mode='fan_in', distribution='untruncated_normal')"])) > 0.05


def _authors_zero(fan_in: int, fan_out: int) -> np.ndarray:
    """The ZerO matrix as the authors' code builds it, PyTorch's (out, in) orientation, transposed."""
    from scipy.linalg import hadamard

    m, n = fan_out, fan_in
    if m <= n:
        return np.eye(m, n).T
    clog = math.ceil(math.log2(m))
    p = 2**clog
    return (np.eye(m, p) @ (hadamard(p) / 2 ** (clog / 2)) @ np.eye(p, n)).T


@pytest.mark.parametrize("fans", [(64, 64), (784, 64), (64, 784), (10, 300), (300, 500), (10, 256)])
def test_zero_hadamard_is_the_authors_matrix(fans, getkey):
    ours = np.asarray(build("zero_hadamard")(getkey(), fans), np.float64)
    np.testing.assert_allclose(ours, _authors_zero(*fans), atol=1e-7)
    if fans[1] > fans[0] and fans[1] & (fans[1] - 1) == 0:  # widening to p = 2^k: H_p / sqrt(p) is orthogonal, an isometry
        np.testing.assert_allclose(ours @ ours.T, np.eye(fans[0]), atol=1e-6)


def test_zero_hadamard_on_a_convolution_kernel_is_the_matrix_at_the_centre_tap(getkey):
    kernel = np.asarray(build("zero_hadamard")(getkey(), (3, 3, 4, 8)), np.float64)
    np.testing.assert_allclose(kernel[1, 1], _authors_zero(4, 8), atol=1e-7)
    kernel[1, 1] = 0
    assert not kernel.any()


def test_deep_initializers_refuse_a_vector():
    for spec in ("delta_orthogonal", "zero_hadamard", "xavier_normal_projection"):
        with pytest.raises(InitlabError, match="shape"):
            build(spec).law((50,))


@pytest.mark.parametrize(("shape", "in_axes", "fans"), [((64, 4, 16), 1, (64, 64)), ((4, 16, 64), 2, (64, 64)), ((784, 64), 1, (784, 64))])
def test_xavier_normal_projection_is_torchs_xavier_normal_of_the_map(shape, in_axes, fans):
    import torch

    weight = torch.empty(fans[1], fans[0])  # PyTorch's (out, in)
    torch.nn.init.xavier_normal_(weight, gain=0.7)
    law = build(f"xavier_normal_projection(gain=0.7, in_axes={in_axes})").law(shape)
    assert law.std == pytest.approx(0.7 * math.sqrt(2.0 / sum(fans)), rel=1e-12)
    assert float(weight.std()) == pytest.approx(law.std, rel=0.05)


def test_the_comparison_table_takes_convolution_and_embedding_shapes():
    from initlab.initializers.table import compare_table

    rows = {row["name"]: row for row in compare_table(1, 1, (3, 3, 16, 32))}
    assert rows["glorot_uniform"]["high"] == pytest.approx(math.sqrt(6 / (9 * 16 + 9 * 32)))
    assert rows["torch.conv_default"]["high"] == pytest.approx(1 / math.sqrt(9 * 16))
    table = {row["name"]: row for row in compare_table(1, 1, (1000, 64))}
    assert table["flax.embed_default"]["std"] == pytest.approx(1 / 8)
    assert table["torch.normal"]["std"] == 1.0 and table["random_uniform"]["high"] == 0.05
