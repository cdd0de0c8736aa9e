"""The first layer's matmul on mostly-zero inputs: native CPU kernels that skip the zeros.

81% of MNIST's pixels are 0, so most of the first layer's multiply-adds (the forward product
``x @ W`` and the weight gradient ``x.T @ g``, which are nearly all of a small MLP's work) add
nothing. XLA's dense matmul does them all; the kernels in ``native/sparse_dense.cc`` list each
batch's nonzeros once and do only the rest, on XLA's thread pool, as XLA FFI custom calls.
The numbers are the same products summed in another order (float32 rounding differs, as
between two BLAS libraries).

They are built from source with the system's C++ compiler the first time they are needed
(about 3 s, kept in initlab's cache folder). :func:`initlab.train` uses them when all of these
hold: the CPU has AVX-512, JAX runs on the CPU, the inputs are at most :data:`MAX_DENSITY`
nonzero, and ``INITLAB_SPARSE_KERNELS`` is not ``0``. Otherwise, or when the build fails (one
warning says why), the layer uses XLA's dense matmul. Ensembles use them too (the models that
share a seed share their batches, whose nonzeros are listed once for all of them), on one
device: the kernels spread each call over every core themselves.

Example:
    >>> product = input_matmul(dataset.x_train)   # None: use x @ w
    >>> y = product(x, w) if product else x @ w
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np

from initlab._lazy import jax, jnp
from initlab.errors import InitlabError, unknown
from initlab.files import replacing
from initlab.runtime import cache_dir

MAX_DENSITY = 0.5
"""Inputs with a larger fraction of nonzeros go to XLA's dense matmul."""

_SOURCE = "sparse_dense.cc"
_TARGETS = ("initlab_sparse_forward", "initlab_sparse_weight_grad")


def density(x: np.ndarray, sample_rows: int = 2000) -> float:
    """Fraction of nonzero entries among the first ``sample_rows`` rows of ``x``."""
    sample = np.asarray(x[:sample_rows])
    return float(np.count_nonzero(sample)) / max(sample.size, 1)


MATMULS = ("auto", "xla", "sparse")
"""The first layer's product: ``auto`` (the kernels where they help), ``xla`` (XLA's dense matmul), ``sparse``."""

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
"""How far the two paths may differ: float32 rounding only (the same products summed in another
order). Histories and parameters after training agree within this (``tests/accel/test_sparse_dense.py``)."""


def input_matmul(x_train: np.ndarray) -> Callable[[Any, Any], Any] | None:
    """The product to use for a first layer fed ``x_train``'s rows: :func:`matmul`, or ``None`` for ``x @ w``."""
    return select("auto", x_train)[0]


def select(choice: str, x_train: np.ndarray) -> tuple[Callable[[Any, Any], Any] | None, str]:
    """The first layer's product for ``choice`` (one of :data:`MATMULS`) and the path's name, ``sparse`` or ``xla``.

    ``auto`` takes the kernels when they are available and ``x_train`` is at most
    :data:`MAX_DENSITY` nonzero; ``sparse`` insists on them (an error where they cannot run).
    """
    if choice not in MATMULS:
        raise unknown("matmul", choice, MATMULS)
    if choice == "xla":
        return None, "xla"
    if choice == "sparse":
        if not available():
            raise InitlabError(
                "matmul 'sparse' needs initlab's native kernels, which cannot run here (they need an x86-64 CPU "
                "with AVX-512, JAX on the CPU, a C++ compiler, and INITLAB_SPARSE_KERNELS unset or 1); "
                "use 'auto' or 'xla'"
            )
        return matmul, "sparse"
    if density(x_train) > MAX_DENSITY or not available():
        return None, "xla"
    return matmul, "sparse"


@functools.cache
def _cpu_description() -> str:
    """The first processor's model name and flags (what -march=native depends on), "" where unknown."""
    try:
        with open("/proc/cpuinfo") as handle:
            lines = {}
            for line in handle:
                key = line.split(":", 1)[0].strip()
                if key in ("model name", "flags"):
                    lines.setdefault(key, line.strip())
            return "\n".join(lines.values())
    except OSError:
        return ""


def _cpu_has_avx512() -> bool:
    return platform.machine() in ("x86_64", "AMD64") and " avx512f" in _cpu_description()


@functools.cache
def available() -> bool:
    """Whether the native kernels can be used here (built and registered on first call)."""
    if os.environ.get("INITLAB_SPARSE_KERNELS", "1") == "0":
        return False
    if not _cpu_has_avx512() or jax.default_backend() != "cpu":
        return False
    try:
        library = ctypes.cdll.LoadLibrary(_build())
    except (OSError, subprocess.SubprocessError, RuntimeError, InitlabError) as error:
        warnings.warn(
            f"initlab: could not build the sparse-input kernels ({error}); the first layer uses XLA's dense "
            "matmul (slower on MNIST). Install a C++ compiler (g++) or set INITLAB_SPARSE_KERNELS=0 to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    for name in _TARGETS:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(library, name)), platform="cpu")
    return True


def _build() -> str:
    """The shared library's path, compiled into the cache folder unless it is there already."""
    source = resources.files("initlab.accel").joinpath("native", _SOURCE).read_bytes()
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found")
    include = jax.ffi.include_dir()
    flags = ["-O3", "-march=native", "-std=c++20", "-shared", "-fPIC", "-w", f"-I{include}"]
    import jaxlib

    key = hashlib.sha256(
        b"\0".join([source, jaxlib.__version__.encode(), compiler.encode(), " ".join(flags).encode(), _cpu_description().encode()])
    ).hexdigest()[:16]
    folder = os.path.join(cache_dir(), "native")
    target = os.path.join(folder, f"sparse_dense-{key}.so")
    if _trusted(target):
        return target
    os.makedirs(folder, exist_ok=True)
    # Built in the system's temporary folder: a build killed half-way leaves nothing in the cache.
    with tempfile.TemporaryDirectory(prefix="initlab-build-") as work:
        source_path = os.path.join(work, _SOURCE)
        with open(source_path, "wb") as handle:
            handle.write(source)
        built = os.path.join(work, "built.so")
        result = subprocess.run(
            [compiler, *flags, source_path, "-o", built], capture_output=True, text=True, timeout=300
        )
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if "error" in line] or result.stderr.splitlines()
            raise RuntimeError(f"{os.path.basename(compiler)} failed: {lines[0] if lines else result.returncode}")
        with open(built, "rb") as handle:
            library = handle.read()
    digest = hashlib.sha256(library).hexdigest()
    # Library first, then its digest, each renamed into place whole: processes building side
    # by side never see half a file, and a library without its digest is never loaded.
    for path, data in ((target, library), (target + ".sha256", digest.encode())):
        with replacing(path) as temporary:
            temporary.write_bytes(data)
    return target


def _trusted(path: str) -> bool:
    """Whether the cached library at ``path`` is the one initlab built: its SHA-256 is the one recorded then.

    A library that another program wrote or changed (or one whose build was cut before its
    digest was written) is not loaded; it is rebuilt.
    """
    try:
        with open(path + ".sha256") as handle:
            recorded = handle.read().strip()
        with open(path, "rb") as handle:
            actual = hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return False
    return recorded == actual


# The kernels work on rows of an ensemble: x (R, B, N), kernels (R, M, N, U), g (R, M, B, U);
# the forward kernel also returns bitmaps of x's nonzeros by column (one row per r), with
# which the weight gradient finds them. One custom_vmap rule per kernel folds each vmapped
# axis into R (inputs batched) or M (inputs shared by the models of a row), so that vmap over
# models, then over seeds, reaches the kernel as one call with each row's nonzeros listed once.


def _fold(axis_size: int, row_batched: bool, per_row: list[Any], other: Any, other_batched: bool):
    """Fold a vmapped leading axis of ``per_row`` arrays (R, ...) and ``other`` (R, M, ...) into R or M.

    Returns the folded arrays and a function that unfolds a per-model output (R, M, ...).
    """
    if not other_batched:
        other = jnp.broadcast_to(other, (axis_size, *other.shape))
    if row_batched:
        rows = other.shape[1]
        per_row = [a.reshape(axis_size * rows, *a.shape[2:]) for a in per_row]
        other = other.reshape(axis_size * rows, *other.shape[2:])
        return per_row, other, lambda out: out.reshape(axis_size, rows, *out.shape[1:])
    rows, models = other.shape[1], other.shape[2]
    other = jnp.moveaxis(other, 0, 1).reshape(rows, axis_size * models, *other.shape[3:])
    return per_row, other, lambda out: jnp.moveaxis(out.reshape(rows, axis_size, models, *out.shape[2:]), 1, 0)


def _unfold_rows(axis_size: int, row_batched: bool, arrays: tuple) -> tuple:
    if not row_batched:
        return arrays
    return tuple(a.reshape(axis_size, a.shape[0] // axis_size, *a.shape[1:]) for a in arrays)


@functools.cache
def _product() -> Callable[[Any, Any], Any]:
    """``x @ w`` through the kernels, with its gradient and vmap rules."""
    @jax.custom_batching.custom_vmap
    def forward(x, w):
        rows, batch, n = x.shape
        shapes = (
            jax.ShapeDtypeStruct((rows, w.shape[1], batch, w.shape[3]), jnp.float32),
            jax.ShapeDtypeStruct((rows, -(-batch // 32) * n), jnp.uint32),
        )
        return tuple(jax.ffi.ffi_call("initlab_sparse_forward", shapes)(x, w))

    @forward.def_vmap
    def _(axis_size, in_batched, x, w):
        x_batched, w_batched = in_batched
        if not x_batched and not w_batched:
            return forward(x, w), (False, False)
        (x,), w, unfold = _fold(axis_size, x_batched, [x], w, w_batched)
        y, bits = forward(x, w)
        (bits,) = _unfold_rows(axis_size, x_batched, (bits,))
        return (unfold(y), bits), (True, x_batched)

    @jax.custom_batching.custom_vmap
    def weight_grad(x, bits, g):
        shape = jax.ShapeDtypeStruct((x.shape[0], g.shape[1], x.shape[2], g.shape[3]), jnp.float32)
        return jax.ffi.ffi_call("initlab_sparse_weight_grad", shape)(x, bits, g)

    @weight_grad.def_vmap
    def _(axis_size, in_batched, x, bits, g):
        x_batched, bits_batched, g_batched = in_batched
        per_row = [x, bits]
        if x_batched or bits_batched:
            per_row = [
                a if batched else jnp.broadcast_to(a, (axis_size, *a.shape))
                for a, batched in zip(per_row, (x_batched, bits_batched))
            ]
        elif not g_batched:
            return weight_grad(x, bits, g), False
        per_row, g, unfold = _fold(axis_size, x_batched or bits_batched, per_row, g, g_batched)
        return unfold(weight_grad(*per_row, g)), True

    @jax.custom_vjp
    def product(x, w):
        return forward(x[None], w[None, None])[0][0, 0]

    def product_fwd(x, w):
        y, bits = forward(x[None], w[None, None])
        return y[0, 0], (x, bits, w)

    def product_bwd(residuals, g):
        x, bits, w = residuals
        return g @ w.T, weight_grad(x[None], bits, g[None, None])[0, 0]

    product.defvjp(product_fwd, product_bwd)
    return product


def matmul(x: Any, w: Any) -> Any:
    """``x @ w`` for float32 ``x`` (batch, N) and ``w`` (N, U), skipping the zeros of ``x``.

    Differentiable (the gradient with respect to ``w`` skips them too) and vmappable over either
    argument. Needs :func:`available`.
    """
    return _product()(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))
