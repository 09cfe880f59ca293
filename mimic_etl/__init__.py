"""MIMIC-IV data engineering for crypten-fl: synthetic data, DuckDB extraction, partitioning."""

from crypten_fl.common import __version__

__all__ = ["__version__"]
