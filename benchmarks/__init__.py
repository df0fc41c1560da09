"""Runnable benchmarks; `python -m benchmarks` runs them all, `python -m benchmarks.NAME` runs one."""
