"""Per-hospital preprocessing: imputation, pooled normalisation, static encoding."""
