"""Studies: grids of attack runs behind the figures (``modelrecon study ...``, ``benchmarks/*.py``)."""
