"""Before the first round: do all hospitals' directories describe the same data?

Every party reads the schema description of its own hospital directory (mimic_etl/schema.py:
feature and label names, units, definition hashes, time grid, static columns; never data),
adds this process's training preprocessing (fedtrain/data/preprocess.py), and sends it to every
other party over the run's communicator (the same authenticated channels as everything else).
Each party then compares all descriptions itself and, if they differ, stops with the same
message naming the differing hospital and what differs
(``hospital_2: feature list differs: albumin missing``). Horizontal strategies compare the whole
description; vertical ones the shared fields and the agreed feature groups of each party.

What crosses hospital boundaries here is public by design: each hospital's column names,
units, group names and definition hashes, which every member must agree on beforehand anyway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.data.preprocess import preprocessing_spec
from crypten_fl.mimic_etl.hospital_data import read_hospital_manifest
from crypten_fl.mimic_etl.schema import (
    canonical_json,
    check_agreement,
    fingerprint,
    manifest_schema,
)


def own_descriptions(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``hospital_<k>`` -> description of each directory this party holds (one, except for the
    pooled baseline), with this process's training preprocessing."""
    dirs = [Path(d) for d in spec["hospital_dirs"]]
    hospitals = [int(spec["hospital"])] if len(dirs) == 1 else list(range(len(dirs)))
    training = fingerprint(preprocessing_spec())[:16]
    return {f"hospital_{h}": {**manifest_schema(read_hospital_manifest(d)), "training": training}
            for h, d in zip(hospitals, dirs, strict=True)}


def exchange(payload: bytes) -> list[bytes]:
    """Every party's ``payload``, in rank order (two all-gathers: lengths, then the padded bytes,
    one int64 element each: the authenticated transport's collectives move int64 tensors)."""
    from crypten_fl.fedtrain.compat import crypten

    comm = crypten.communicator.get()
    if comm.get_world_size() == 1:
        return [payload]
    lengths = [int(t.item()) for t in comm.all_gather(torch.tensor([len(payload)]))]
    buffer = torch.zeros(max(lengths), dtype=torch.int64)
    buffer[:len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8).long()
    gathered = comm.all_gather(buffer)
    return [bytes(t[:n].tolist()) for t, n in zip(gathered, lengths, strict=True)]


def agree(spec: dict[str, Any], vertical: bool) -> str:
    """Exchange descriptions with every party and compare them; returns this hospital's
    fingerprint. Raises UserError (at every party alike) if any hospital differs."""
    mine = own_descriptions(spec)
    everyone: dict[str, dict[str, Any]] = {}
    for payload in exchange(canonical_json(mine).encode()):
        try:
            theirs = json.loads(payload)
        except ValueError:
            raise UserError("schema check: a party sent an unreadable description") from None
        everyone.update(theirs)
    ordered = dict(sorted(everyone.items(), key=lambda kv: _index(kv[0])))
    check_agreement(ordered, vertical)
    return fingerprint(next(iter(mine.values())))


def _index(name: str) -> tuple[int, str]:
    """Sort key of ``hospital_<k>`` names: by k (names of another form last)."""
    tail = name.rsplit("_", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 62, name)
