"""MIMIC-IV data engineering for crypten-fl: synthetic data, DuckDB extraction, partitioning."""

__version__ = "0.1.0"
