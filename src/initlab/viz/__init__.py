"""Figures, in scikit-learn's Display pattern (matplotlib is imported only when drawing).

- :mod:`~initlab.viz.style`: the house style, panels and legends;
- :mod:`~initlab.viz.plots`: saturation and learning curves, and :func:`~initlab.viz.plots.save`;
- :mod:`~initlab.viz.signal`: propagation, isometry and mean-field figures;
- :mod:`~initlab.viz.figures`: a store's runs (curves, saturation, dead units, histograms, gradients).
"""
