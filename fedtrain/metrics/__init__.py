"""Evaluation metrics: exact per-label metrics and the histogram forms summed across hospitals."""
