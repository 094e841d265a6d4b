"""Rebuild what a run depended on: its environment now; rerun, verify and explain next."""
