"""Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017).

- :mod:`~initlab.mean_field.theory`: the variance and correlation maps, fixed points, depth
  scales and phase diagrams;
- :mod:`~initlab.mean_field.spectra`: the free-probability spectrum of the input-output Jacobian at the fixed point;
- :mod:`~initlab.mean_field._numerics`: their quadrature, float64 activations and root finding.
"""
