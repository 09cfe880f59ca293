"""Synthetic MIMIC-IV generator: the release layout with a calibrated clinical signal.

See docs/synth.md for the clinical model, the real-data quirks it reproduces and the
calibration figures.
"""

from crypten_fl.mimic_etl.synth.generator import SUMMARY_FILE, SynthSummary, generate

__all__ = ["SUMMARY_FILE", "SynthSummary", "generate"]
