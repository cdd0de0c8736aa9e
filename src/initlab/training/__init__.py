"""Keras-faithful training, compiled with JAX.

- :mod:`~initlab.training.config`: :class:`TrainConfig`, the frozen, validated run configuration;
- :mod:`~initlab.training.loop`: one model's training, epoch by epoch, as ``model.fit`` would;
- :mod:`~initlab.training.ensembles`: many models in one vmapped program, chunked to a memory budget.
"""
