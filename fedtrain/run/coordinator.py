"""Coordinator of a local training run: validate, launch hospital processes, write RUN/.

The coordinator holds no patient data: it passes each hospital process the path of its own
directory only, and receives per-round progress (losses, validation AUROC of each hospital on its
own data) and aggregate results. Outputs are written into a hidden ``.RUN.partial`` sibling and
renamed to RUN at the end; after a failure that sibling keeps the completed rounds' checkpoints
and ``--resume`` continues from the last one.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import write_json
from crypten_fl.common.outdir import check_output_dir, finish_output
from crypten_fl.common.pathguard import Reads, check_disjoint
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.launch import PartyFailure, launch
from crypten_fl.fedtrain.models.pretrained import provenance
from crypten_fl.fedtrain.run.federation import HospitalInfo, federation_reads, read_federation
from crypten_fl.fedtrain.run.init_from import resolve_init_from
from crypten_fl.fedtrain.run.outputs import write_run_outputs

JOB = "crypten_fl.fedtrain.run.hospital:run"
EventFn = Callable[[int, dict[str, Any]], None]


@dataclass
class TrainSummary:
    """Where the run went and what it measured."""

    run_dir: Path
    test_metrics: dict[str, Any]
    comm: dict[str, Any]
    privacy: dict[str, Any]
    rounds_completed: int
    resumed_from: int


def partial_dir(out: Path) -> Path:
    """The hidden sibling a run is written to before it is renamed into place."""
    out = Path(out)
    return out.resolve().parent / f".{out.name}.partial"


def interrupted_message(out: Path) -> str:
    """What a user interrupting ``train --out out`` is left with, in one line."""
    work = partial_dir(out)
    if not work.is_dir():
        return "no output was written"
    done = last_complete_round(work)
    return (f"the {done} completed round(s) are kept in {work}; continue with the same command "
            "and --resume")


def last_complete_round(run: Path) -> int:
    """Highest round whose checkpoint every hospital finished (0 = none)."""
    markers = (run / "checkpoints").glob("round_*/COMPLETE")
    return max((int(p.parent.name.split("_")[1]) for p in markers), default=0)


def _prepare(config: TrainConfig, out: Path, resume: bool, overwrite: bool,
             reads: Reads) -> tuple[Path, int]:
    work = partial_dir(out)
    # a resumed run replaces ``out`` at the end as the interrupted one would have (--overwrite
    # was given then), but only if ``out`` is an earlier run
    check_output_dir(out, overwrite or resume, reads=reads, command="train")
    check_disjoint(work, "--out", reads)  # the hidden sibling the run is written to first
    if resume:
        if not (work / "config.json").exists():
            raise UserError(f"--resume: no interrupted run of {out} found ({work} is missing)")
        saved = TrainConfig.load(work / "config.json").to_json()
        mine = config.to_json()
        changed = sorted(k for k in mine if k not in ("timeout", "insecure_transport")
                         and saved.get(k, mine[k]) != mine[k])
        if changed:
            raise UserError("--resume: options differ from the interrupted run: "
                            + ", ".join(changed))
        return work, last_complete_round(work)
    if work.exists():
        if not overwrite:
            raise UserError(f"--out {out}: an interrupted run exists ({work}); "
                            "use --resume to continue it or --overwrite to start again")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_json(work / "config.json", config.to_json())
    return work, 0


def _specs(config: TrainConfig, hospitals: list[HospitalInfo], work: Path, start: int
           ) -> list[dict[str, Any]]:
    base = {"config": config.to_json(), "run_dir": str(work), "resume_round": start,
            "n_hospitals": len(hospitals), "min_members": config.min_hospitals}
    if strategies.get(config.strategy).single_process:  # the pooled baseline: every hospital
        return [{**base, "hospital_dirs": [str(h.path) for h in hospitals], "hospital": 0}]
    return [{**base, "hospital_dirs": [str(h.path)], "hospital": h.index} for h in hospitals]


class _RoundLog:
    """Collects per-round events of all parties into metrics.jsonl and COMPLETE markers.

    A round is complete when every hospital of the secure group that finished it (the
    ``members`` of its events; all parties unless some dropped out) has checkpointed it.
    """

    def __init__(self, work: Path, n_parties: int, on_event: EventFn | None) -> None:
        self.work, self.n, self.on_event = work, n_parties, on_event
        self.pending: dict[int, dict[int, dict[str, Any]]] = {}
        self.completed = 0
        self.dropped: list[dict[str, Any]] = []

    def __call__(self, rank: int, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(rank, event)
        if event.get("event") == "dropped":
            self.dropped.append({"party": rank, "last_completed_round": self.completed,
                                 "reason": event.get("reason", "")})
        if event.get("event") == "restarted":
            for entry in self.dropped:
                if entry["party"] == rank:
                    entry["restarted"] = True
        if event.get("event") != "round":
            return
        r = int(event["round"])
        self.pending.setdefault(r, {})[rank] = event
        members = event.get("members", range(self.n))
        if all(m in self.pending[r] for m in members):
            per = self.pending.pop(r)
            line = {"round": r, "hospitals": {
                str(e.get("hospital", k)): {key: e[key] for key in
                                            ("train_loss", "val_macro_auroc", "seconds")}
                for k, e in sorted(per.items())}}
            with open(self.work / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(line) + "\n")
            (self.work / "checkpoints" / f"round_{r}" / "COMPLETE").touch()
            self.completed = r


def train(config: TrainConfig, out: Path, *, resume: bool = False, overwrite: bool = False,
          on_event: EventFn | None = None, restart_dropped: bool = False) -> TrainSummary:
    """Run ``config`` across the hospitals of ``config.fed`` and write RUN/ at ``out``.

    ``restart_dropped`` (with ``config.min_hospitals``) restarts a hospital that dropped out
    once, as its operator would; it rejoins at the next round boundary.
    """
    cls = strategies.get(strategies.validate(config).strategy)
    hospitals = read_federation(Path(config.fed), config.strategy)
    if config.min_hospitals is not None and config.min_hospitals > len(hospitals):
        raise UserError(f"--min-hospitals {config.min_hospitals}: the federation has only "
                        f"{len(hospitals)} hospitals")
    config, pretrained = resolve_init_from(config, [h.schema for h in hospitals])
    reads = federation_reads(Path(config.fed), hospitals)
    if config.init_from is not None:
        reads = {**reads, "--init-from": [Path(config.init_from)]}
    work, start = _prepare(config, Path(out), resume, overwrite, reads)
    if start >= config.rounds:
        start = config.rounds
    specs = _specs(config, hospitals, work, start)
    log = _RoundLog(work, len(specs), on_event)
    begin = time.perf_counter()
    try:
        results = launch(JOB, specs, work / "parties", timeout_s=config.timeout,
                         threads_per_party=config.threads_per_party, on_event=log,
                         ttp=cls.needs_ttp,
                         party_name=lambda r: "the pooled trainer" if cls.single_process
                         else f"hospital {specs[r]['hospital']}",
                         tolerate_dropouts=config.min_hospitals is not None
                         and config.min_hospitals < len(specs),
                         restart_dropped=restart_dropped,
                         secure_transport=not config.insecure_transport)
    except PartyFailure as err:
        done = last_complete_round(work)
        if done == 0 and start == 0:  # nothing worth keeping: leave no half-written output
            shutil.rmtree(work, ignore_errors=True)
            raise UserError(f"{err}. No round was completed; nothing was written") from None
        raise UserError(f"{err}. Last completed round: {done}. Continue with --resume "
                        f"(partial run kept in {work})") from None
    except KeyboardInterrupt:
        if last_complete_round(work) == 0 and start == 0:  # nothing worth resuming
            shutil.rmtree(work, ignore_errors=True)
        raise
    survivors = [r for r in results if r is not None]
    write_run_outputs(work, config, survivors, time.perf_counter() - begin, start,
                      dropouts=log.dropped,
                      pretraining=provenance(pretrained) if pretrained else None)
    shutil.rmtree(work / "parties", ignore_errors=True)
    final = Path(out)
    finish_output(work, final, "train")  # atomic: the previous RUN stays until this one is whole
    return TrainSummary(final, json.loads((final / "test_metrics.json").read_text()),
                        json.loads((final / "comm.json").read_text()),
                        json.loads((final / "privacy.json").read_text()),
                        last_complete_round(final), start)
