"""MIMIC-IV data engineering for crypten-fl: synthetic generator, DuckDB extraction, partitioning."""

__version__ = "0.1.0"
