"""Cairnloop's performance suite, run by ``python -m benchmarks.run``."""
