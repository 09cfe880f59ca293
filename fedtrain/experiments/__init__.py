"""Experiments across finished runs: `compare` (runs side by side) and `sweep` (over ε)."""
