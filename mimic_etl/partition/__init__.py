"""Split an extracted ICU cohort into simulated hospitals (``crypten-fl partition``).

Modules: `cohort` (read COHORT/), `patients` (patient table), `schemes` (horizontal assignment),
`splits` (patient-level train/val/test), `vertical` (feature-group parties, pseudonymous keys),
`tensors` (grid → Array columns), `measures` (non-IID measure), `writer` (hospital directories),
`plot` (label prevalence PNG), `pipeline` (the `partition` entry point), `prepare` (one real
site's own hospital directory).
"""

from crypten_fl.mimic_etl.partition.pipeline import partition
from crypten_fl.mimic_etl.partition.prepare import PreparedSite, prepare
from crypten_fl.mimic_etl.partition.schemes import SCHEMES
from crypten_fl.mimic_etl.partition.splits import DEFAULT_SPLIT, SPLIT_NAMES, parse_split
from crypten_fl.mimic_etl.partition.summary import HospitalSummary, PartitionSummary

__all__ = [
    "DEFAULT_SPLIT",
    "SCHEMES",
    "SPLIT_NAMES",
    "HospitalSummary",
    "PartitionSummary",
    "PreparedSite",
    "parse_split",
    "partition",
    "prepare",
]
