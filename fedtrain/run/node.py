"""One hospital's party on its own machine: the same process code the local launcher starts.

Each hospital runs ``crypten-fl node`` with its rank, the world size, the torch.distributed
rendezvous (``tcp://HOST:PORT`` of rank 0's machine, or ``env://`` with MASTER_ADDR/MASTER_PORT),
its own data directory and the shared run configuration. Its outputs (checkpoints, model files,
result.json, events.jsonl) go to its own ``--out`` directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fedtrain import party
from fedtrain.run.config import TrainConfig
from fedtrain.run.coordinator import ENCRYPTED_MODEL_STRATEGIES, JOB
from mimic_etl.errors import UserError
from mimic_etl.hospital_data import read_hospital_manifest


def _environment(rank: int, world_size: int, rendezvous: str) -> None:
    if world_size < 1 or not 0 <= rank <= world_size:
        raise UserError(f"--rank {rank}: must be in 0..{world_size - 1} (world size {world_size})")
    if not rendezvous.startswith(("tcp://", "env://", "file://")):
        raise UserError(f"--rendezvous {rendezvous!r}: expected tcp://HOST:PORT or env://")
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), RENDEZVOUS=rendezvous,
                      DISTRIBUTED_BACKEND="gloo")


def run_node(*, rank: int, world_size: int, rendezvous: str, data: Path | None,
             run_config: Path | None, out: Path, resume_round: int = 0, timeout: float = 60.0,
             ttp_server: bool = False, threads: int = 1) -> dict[str, Any]:
    """Run this machine's party to the end; return its result (see fedtrain/run/hospital.py)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if ttp_server:  # the dealer of Beaver triples for split/vertical (rank = world size)
        _environment(world_size, world_size, rendezvous)
        code = party.main(["--workdir", str(out), "--ttp-server", "--timeout", str(timeout)])
        return {"ttp": True, "exit_code": code}
    if data is None or run_config is None:
        raise UserError("--data and --run-config are required (except with --ttp-server)")
    if rank >= world_size:
        raise UserError(f"--rank {rank}: must be below --world-size {world_size}")
    read_hospital_manifest(Path(data))  # fails early with a clear message
    config = TrainConfig.load(Path(run_config))
    _environment(rank, world_size, rendezvous)
    spec = {"config": config.to_json(), "run_dir": str(out), "resume_round": resume_round,
            "n_hospitals": world_size, "hospital_dirs": [str(data)], "hospital": rank}
    (out / "spec.json").write_text(json.dumps(spec))
    argv = ["--job", JOB, "--spec", str(out / "spec.json"), "--workdir", str(out),
            "--timeout", str(timeout), "--threads", str(threads)]
    if config.strategy in ENCRYPTED_MODEL_STRATEGIES:
        argv.append("--ttp")
    if party.main(argv) != 0:
        error = json.loads((out / "error.json").read_text())["message"]
        raise UserError(f"hospital {rank} failed: {error} (log above; outputs in {out})")
    return json.loads((out / "result.json").read_text())
