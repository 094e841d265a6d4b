"""Benchmarks: `make bench` (or `python benchmarks/run.py`) prints lockstep beside its peers."""
