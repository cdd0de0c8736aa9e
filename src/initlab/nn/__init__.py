"""The pieces a network is made of: activations, losses, optimizers, models and LSUV.

- :mod:`~initlab.nn.activations`, :mod:`~initlab.nn.losses`, :mod:`~initlab.nn.optimizers`:
  registries with Keras's names, semantics and defaults;
- :mod:`~initlab.nn.models`: the inspectable MLP;
- :mod:`~initlab.nn.lsuv`: LSUV's data-dependent rescaling of a model's kernels.
"""
