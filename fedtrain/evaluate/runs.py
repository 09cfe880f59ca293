"""Opening a finished run (RUN/) for evaluation: its config, federation and final model files.

Everything is checked before any party process starts, so that a wrong ``--run`` fails with one
line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crypten_fl.common.errors import UserError
from crypten_fl.common.outdir import MARKER
from crypten_fl.common.pathguard import Reads
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.run.federation import HospitalInfo, read_federation
from crypten_fl.mimic_etl.hospital_data import read_hospital_manifest

#: subdirectories of RUN/ that `evaluate` and `audit` write by default (outputs, not inputs)
RUN_OUTPUTS = ("eval", "audit")


@dataclass(frozen=True)
class RunInfo:
    """A finished run and the federation it was trained on."""

    path: Path
    config: TrainConfig
    hospitals: list[HospitalInfo]
    label_names: list[str]

    @property
    def strategy(self) -> str:
        return self.config.strategy

    @property
    def vertical(self) -> bool:
        return strategies.get(self.config.strategy).partition == "vertical"


def run_reads(info: RunInfo) -> Reads:
    """What a command reading RUN/ reads: the run's files (but not the outputs other commands
    add to it) and its federation's hospital directories."""
    entries = [p for p in info.path.iterdir() if p.name not in (*RUN_OUTPUTS, MARKER)]
    return {"--run": entries, "its federation": [Path(info.config.fed), *(h.path for h in
                                                                          info.hospitals)]}


def label_names(hospitals: list[HospitalInfo]) -> list[str]:
    """Label names from the first hospital manifest that has labels (the label party)."""
    for hospital in hospitals:
        names = read_hospital_manifest(hospital.path)["labels"]
        if names:
            return list(names)
    raise UserError(f"{hospitals[0].path.parent}: no hospital holds labels")


def check_models(run: Path, strategy: str, n_parties: int) -> None:
    """Raise UserError naming the first final-model file of the run that is missing."""
    cls = strategies.get(strategy)
    for index in range(n_parties):
        for name in cls.final_model_files(index):
            if not (run / name).is_file():
                raise UserError(f"{run / name}: file not found (the run has no final model; "
                                "did `crypten-fl train` finish?)")


def read_config(run: Path) -> TrainConfig:
    """The training options of RUN/ (its config.json)."""
    run = Path(run)
    if not run.is_dir():
        raise UserError(f"--run {run}: directory not found (run `crypten-fl train` first)")
    if not (run / "config.json").is_file():
        raise UserError(f"--run {run}: no config.json (not a run written by `crypten-fl train`)")
    return TrainConfig.load(run / "config.json")


def open_run(run: Path) -> RunInfo:
    """Check RUN/ (config, federation, model files) and describe it."""
    run = Path(run)
    config = read_config(run)
    fed = Path(config.fed)
    if not fed.is_dir():
        raise UserError(f"{run / 'config.json'}: its federation {fed} was not found "
                        "(moved or deleted?)")
    hospitals = read_federation(fed, config.strategy)
    check_models(run, config.strategy, len(hospitals))
    return RunInfo(run, config, hospitals, label_names(hospitals))
