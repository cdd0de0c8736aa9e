"""Measurements of networks: per-layer probes, saturation, signal propagation and isometry.

- :mod:`~initlab.measure.probes`: per-layer statistics and histograms inside training;
- :mod:`~initlab.measure.saturation`: the tutorial's Part A, measured and predicted;
- :mod:`~initlab.measure.propagation`: deep networks at initialization, and Jacobian spectra.
"""
