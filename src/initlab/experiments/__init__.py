"""Experiments that outlive a process: TOML sweeps, the SQLite store, local and Ray execution.

- :mod:`~initlab.experiments.sweeps`: a sweep file as a product of configurations;
- :mod:`~initlab.experiments.store`: the resumable store (tidy rows, exports);
- :mod:`~initlab.experiments.executors`: run configurations into a store, locally or on Ray;
- :mod:`~initlab.experiments.exports`: a store's runs as TensorBoard event files and MLflow runs.
"""
