"""Checks on a FED/ directory made before any party process starts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json
from crypten_fl.fedtrain import strategies

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


def read_federation(fed: Path, strategy: str) -> list[HospitalInfo]:
    """Validate FED/ for ``strategy``; raise UserError naming the file and the problem."""
    fed = Path(fed)
    if not fed.is_dir():
        raise UserError(f"--fed {fed}: directory not found (run `crypten-fl partition` first)")
    partition = read_json(fed / "partition.json")
    dirs = sorted((p for p in fed.iterdir() if re.fullmatch(r"hospital_\d+", p.name)),
                  key=lambda p: int(p.name.split("_")[1]))
    if not dirs:
        raise UserError(f"--fed {fed}: no hospital_<k>/ directories")
    hospitals = [_read_hospital(i, d) for i, d in enumerate(dirs)]
    if [int(d.name.split("_")[1]) for d in dirs] != list(range(len(dirs))):
        raise UserError(f"--fed {fed}: hospital directories must be numbered 0..{len(dirs) - 1}")
    vertical = bool(partition.get("vertical", False)) if isinstance(partition, dict) else False
    wanted = strategies.get(strategy).partition
    if wanted == "vertical" and not vertical:
        raise UserError(f"--strategy {strategy} needs a vertical partition; {fed} is horizontal "
                        "(partition with --vertical)")
    if wanted == "horizontal" and vertical:
        raise UserError(f"--strategy {strategy} needs a horizontal partition; {fed} is vertical")
    if wanted == "horizontal":
        _same_schema(hospitals)
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
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path}/manifest.json: missing or malformed field {err}") from err
    if n_train < 1:
        raise UserError(f"{path}: the training split is empty")
    return HospitalInfo(index, path, features, n_bins, n_train, bool(manifest.get("label_party",
                                                                                    True)))


def _same_schema(hospitals: list[HospitalInfo]) -> None:
    first = hospitals[0]
    for h in hospitals[1:]:
        if h.features != first.features or h.n_bins != first.n_bins:
            diff = sorted(set(h.features) ^ set(first.features))[:5]
            raise UserError(
                f"{h.path}/manifest.json: feature schema differs from {first.path.name} "
                f"(features {diff or 'in another order'}, bins {h.n_bins} vs {first.n_bins})"
            )
