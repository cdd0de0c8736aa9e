"""Accelerated code paths, each selected by name and recorded with every run.

- :mod:`~initlab.accel.sparse_dense`: native CPU kernels (XLA FFI, AVX-512) for a first layer fed
  mostly-zero inputs, built from ``native/`` on first use.
"""
