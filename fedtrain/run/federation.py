"""Checks on a FED/ directory made before any party process starts.

FED/ is either written by ``partition`` (with partition.json) or assembled from hospital
directories that sites wrote with ``prepare`` (no partition.json: whether the federation is
vertical comes from the hospital manifests). Either way the hospitals' schemas must agree
(mimic_etl/schema.py); the parties compare them again among themselves before the first round
(fedtrain/sessions/schema_check.py), as nodes on separate machines must.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json
from crypten_fl.fedtrain import strategies
from crypten_fl.mimic_etl.schema import check_agreement, manifest_schema

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class HospitalInfo:
    """A hospital directory and the facts of its manifest the coordinator needs."""

    index: int
    path: Path
    features: tuple[str, ...]
    n_bins: int
    n_train: int
    label_party: bool
    vertical: bool
    schema: dict[str, Any]


def read_federation(fed: Path, strategy: str) -> list[HospitalInfo]:
    """Validate FED/ for ``strategy``; raise UserError naming the file and the problem."""
    fed = Path(fed)
    if not fed.is_dir():
        raise UserError(f"--fed {fed}: directory not found (run `crypten-fl partition` first)")
    dirs = sorted((p for p in fed.iterdir() if re.fullmatch(r"hospital_\d+", p.name)),
                  key=lambda p: int(p.name.split("_")[1]))
    if not dirs:
        raise UserError(f"--fed {fed}: no hospital_<k>/ directories")
    hospitals = [_read_hospital(i, d) for i, d in enumerate(dirs)]
    if [int(d.name.split("_")[1]) for d in dirs] != list(range(len(dirs))):
        raise UserError(f"--fed {fed}: hospital directories must be numbered 0..{len(dirs) - 1}")
    vertical = _vertical(fed, hospitals)
    wanted = strategies.get(strategy).partition
    if wanted == "vertical" and not vertical:
        raise UserError(f"--strategy {strategy} needs a vertical partition; {fed} is horizontal "
                        "(partition with --vertical)")
    if wanted == "horizontal" and vertical:
        raise UserError(f"--strategy {strategy} needs a horizontal partition; {fed} is vertical")
    try:
        check_agreement({f"hospital_{h.index}": h.schema for h in hospitals}, vertical)
    except UserError as err:
        raise UserError(f"--fed {fed}: {err}") from None
    return hospitals


def federation_reads(fed: Path, hospitals: list[HospitalInfo]) -> dict[str, list[Path]]:
    """What training on FED/ reads: the federation and each hospital directory (which may be a
    symlink to another disk)."""
    return {"--fed": [Path(fed), *(h.path for h in hospitals)]}


def _read_hospital(index: int, path: Path) -> HospitalInfo:
    manifest: dict[str, Any] = read_json(path / "manifest.json")
    for split in SPLITS:
        if not (path / f"{split}.parquet").is_file():
            raise UserError(f"{path}/{split}.parquet: file not found")
    try:
        features = tuple(f["name"] for f in manifest["features"])
        n_bins = int(manifest["n_bins"])
        n_train = int(manifest["counts"]["train"])
        vertical = manifest.get("vertical", False)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}/manifest.json: missing or malformed field {err}") from err
    if n_train < 1:
        raise UserError(f"{path}: the training split is empty")
    return HospitalInfo(index, path, features, n_bins, n_train,
                        bool(manifest.get("label_party", True)), vertical is True,
                        manifest_schema(manifest))


def _vertical(fed: Path, hospitals: list[HospitalInfo]) -> bool:
    """Whether FED/ is vertical: partition.json says so, else every hospital manifest must."""
    if (fed / "partition.json").exists():
        partition = read_json(fed / "partition.json")
        return bool(partition.get("vertical", False)) if isinstance(partition, dict) else False
    kinds = {h.vertical for h in hospitals}
    if len(kinds) > 1:
        mixed = ", ".join(f"hospital_{h.index}" for h in hospitals if h.vertical)
        raise UserError(f"--fed {fed}: {mixed} vertical, the other hospitals not (no "
                        "partition.json to say which)")
    return kinds.pop()
