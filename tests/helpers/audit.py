"""Fixtures and a spying party job for the membership-inference audit tests."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from crypten_fl.fedtrain.party import PartyContext

HELPERS = Path(__file__).resolve().parent
#: environment for party processes that import ``helpers`` (the spying job)
HELPERS_ENV = {"PYTHONPATH": os.pathsep.join([str(HELPERS.parent),
                                              os.environ.get("PYTHONPATH", "")])}
SPYING_JOB = "helpers.audit:spying_run"
#: where the spying job writes ``touched_<hospital>.json`` (set in its environment)
SPY_DIR_ENV = "CRYPTEN_FL_TEST_SPY_DIR"
#: a tiny model trained long enough on a few random-label stays to memorise them
MEMORISE: dict[str, Any] = {"rounds": 2, "local_epochs": 40, "lr": 0.01, "dropout": 0.0,
                            "batch_size": 32, "d_model": 16, "n_heads": 2, "n_layers": 1,
                            "dim_feedforward": 32, "head_hidden": 16, "timeout": 60}


def counts(levels: int, members: dict[int, int], non_members: dict[int, int]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Member / non-member counts per score level from ``{level: count}`` maps."""
    pos, neg = np.zeros(levels, dtype=np.int64), np.zeros(levels, dtype=np.int64)
    for level, n in members.items():
        pos[level] = n
    for level, n in non_members.items():
        neg[level] = n
    return pos, neg


def spying_run(ctx: PartyContext) -> dict[str, Any]:
    """The real audit job, recording every hospital directory this process reads from.

    Python-level opens (manifests) are caught with an audit hook; parquet files are opened by
    native code, so every ``load_split`` call of the session is recorded as well. The names of
    the directories go to ``$CRYPTEN_FL_TEST_SPY_DIR/touched_<hospital>.json``.
    """
    import crypten_fl.fedtrain.sessions.hospital as session_module
    from crypten_fl.fedtrain.privacy import audit_job

    fed = Path(ctx.spec["hospital_dirs"][0]).resolve().parent
    touched: set[str] = set()

    def note(path: Any) -> None:
        resolved = Path(os.fsdecode(path)).resolve()
        if fed in resolved.parents:
            touched.add(resolved.relative_to(fed).parts[0])

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            note(args[0])

    original = session_module.load_split

    def load_split(hospital_dir: Path, split: str) -> Any:
        note(hospital_dir)
        return original(hospital_dir, split)

    session_module.load_split = load_split
    sys.addaudithook(hook)
    result = audit_job.run(ctx)
    out = Path(os.environ[SPY_DIR_ENV]) / f"touched_{ctx.spec['hospital']}.json"
    out.write_text(json.dumps(sorted(touched)))
    return result
