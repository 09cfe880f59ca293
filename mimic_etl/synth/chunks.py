"""One chunk of patients: its cohort, physiology and charting habits, and its table rows.

Every random draw comes from a stream keyed by (seed, chunk, purpose), so a chunk is the same
whichever process builds it and in whatever order: the chartevents worker process rebuilds
the cohort of each chunk rather than receiving it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from crypten_fl.mimic_etl.synth import tables
from crypten_fl.mimic_etl.synth.chart import chartevents
from crypten_fl.mimic_etl.synth.cohort import Cohort, build_cohort
from crypten_fl.mimic_etl.synth.labs import labevents
from crypten_fl.mimic_etl.synth.meds import prescriptions
from crypten_fl.mimic_etl.synth.outputs import outputevents
from crypten_fl.mimic_etl.synth.physiology import Physiology, simulate
from crypten_fl.mimic_etl.synth.schema import ANCHOR_YEAR_GROUPS
from crypten_fl.mimic_etl.synth.stays import StayContext, stay_context

CHUNK_ICU_PATIENTS = 200  # ICU patients per chunk: bounds memory (~1.2 M chart rows)
OTHER_PER_ICU = 0.25  # patients without any ICU stay, per ICU patient
SLOTS = CHUNK_ICU_PATIENTS + round(CHUNK_ICU_PATIENTS * OTHER_PER_ICU)


@dataclass
class Chunk:
    """Everything about chunk ``index`` that more than one table needs."""

    seed: int
    index: int
    version: str
    cohort: Cohort
    physiology: Physiology
    stays: StayContext

    def rng(self, stream: str) -> np.random.Generator:
        """This chunk's random stream for ``stream``."""
        return chunk_rng(self.seed, self.index, stream)


def chunk_rng(seed: int, chunk: int, stream: str) -> np.random.Generator:
    """Independent random stream per (seed, chunk, purpose)."""
    return np.random.default_rng([seed, chunk, int.from_bytes(stream.encode()[:8], "little")])


def chunk_sizes(patients: int) -> list[int]:
    """ICU patients per chunk."""
    full, rest = divmod(patients, CHUNK_ICU_PATIENTS)
    return [CHUNK_ICU_PATIENTS] * full + ([rest] if rest else [])


def build_chunk(seed: int, index: int, n_icu: int, version: str) -> Chunk:
    """Cohort, physiology and charting habits of chunk ``index``."""
    cohort = build_cohort(chunk_rng(seed, index, "cohort"), index * SLOTS, n_icu,
                          round(n_icu * OTHER_PER_ICU), len(ANCHOR_YEAR_GROUPS[version]))
    physiology = simulate(chunk_rng(seed, index, "physiology"), cohort)
    stays = stay_context(chunk_rng(seed, index, "stays"), cohort)
    return Chunk(seed, index, version, cohort, physiology, stays)


def chart_rows(chunk: Chunk) -> pl.DataFrame:
    """icu/chartevents rows of the chunk."""
    return chartevents(chunk.rng("chartevents"), chunk.cohort, chunk.physiology, chunk.stays)


def other_rows(chunk: Chunk, ids: dict[str, int]) -> list[tuple[str, pl.DataFrame]]:
    """Rows of every table but chartevents; ``ids`` carries the running id counters."""
    c, ph = chunk.cohort, chunk.physiology
    labs, n_specimens = labevents(chunk.rng("labs"), c, ph, ids["labevent"], ids["specimen"])
    rx = prescriptions(chunk.rng("prescriptions"), c, ids["pharmacy"])
    ids["labevent"] += labs.height
    ids["specimen"] += n_specimens
    ids["pharmacy"] += rx.height
    return [
        ("patients", tables.patients(c, chunk.version)),
        ("admissions", tables.admissions(chunk.rng("admissions"), c, chunk.version)),
        ("icustays", tables.icustays(c)),
        ("diagnoses_icd", tables.diagnoses_icd(chunk.rng("diagnoses"), c)),
        ("labevents", labs),
        ("outputevents", outputevents(chunk.rng("outputevents"), c, ph, chunk.stays)),
        ("prescriptions", rx),
    ]
