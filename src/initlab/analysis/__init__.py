"""A store's results read back: grouped by configuration, summarized over seeds.

- :mod:`~initlab.analysis.results`: results grouped by configuration, with bands over seeds;
- :mod:`~initlab.analysis.summary`: final numbers per configuration, mean +- std over seeds.
"""
