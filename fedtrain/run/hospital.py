"""The job each hospital process runs: the round loop, checkpoints, final evaluation.

Everything a strategy exchanges goes through ``session.aggregator`` (CrypTen secret sharing).
What the process writes: its own checkpoint state (``checkpoints/round_<r>/hospital_<k>.pt``, which
in a multi-machine deployment stays on hospital k's disk), the final model(s) the strategy
names, and progress events with its own loss and validation AUROC.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.metrics.classification import multilabel_metrics
from crypten_fl.fedtrain.metrics.histograms import pooled_metrics
from crypten_fl.fedtrain.models.pretrained import state_digest
from crypten_fl.fedtrain.party import PartyContext
from crypten_fl.fedtrain.run import checkpoints, rejoin
from crypten_fl.fedtrain.secure import group
from crypten_fl.fedtrain.sessions import schema_check
from crypten_fl.fedtrain.sessions.hospital import Session
from safetensors.torch import save_file


def _val_macro_auroc(strategy: strategies.Strategy, session: Session) -> float | None:
    """This hospital's validation macro-AUROC (None where it holds no labels)."""
    probs = strategy.predict(session.val)  # collective for encrypted strategies
    if session.val.labels is None or not len(session.val):
        return None
    return multilabel_metrics(session.val.labels.numpy(), probs)["macro"]["auroc"]


def _members(ctx: PartyContext) -> list[int]:
    """Hospitals (by their first rank) in this party's secure group now."""
    secure_group = group.current()
    return list(secure_group.members) if secure_group else list(range(ctx.world_size))


def _label_names(session: Session) -> list[str]:
    """Label names; a vertical party without labels only needs their number."""
    if session.label_names:
        return list(session.label_names)
    return [f"label_{i}" for i in range(session.n_labels)]


def run(ctx: PartyContext) -> dict[str, Any]:
    """Train for the configured rounds (continuing after ``resume_round``) and evaluate.

    Before anything else, the parties compare their hospitals' data schemas
    (fedtrain/sessions/schema_check.py). With ``rejoin`` in the spec, the hospital dropped out
    earlier: it restores its own latest checkpoint, asks the running group to take it back and
    continues from the group's round.
    """
    config = TrainConfig.from_json(ctx.spec["config"])
    run_dir = Path(ctx.spec["run_dir"])
    me = int(ctx.spec.get("hospital", ctx.rank))
    rejoining = bool(ctx.spec.get("rejoin"))
    ctx.emit("status", message="loading its data, preparing the secure session")
    have = checkpoints.latest(run_dir, me, int(ctx.spec.get("resume_round", 0))
                              if not rejoining else config.rounds)
    saved = checkpoints.load(run_dir, have, me) if have else None
    if rejoining:  # the running group will not pool statistics again: use the kept ones
        if saved is None or "pooled_moments" not in saved:
            raise RuntimeError(f"hospital {me} has no checkpoint in {run_dir} to rejoin from")
        ctx.spec["pooled_moments"] = saved["pooled_moments"]
    strategy_cls = strategies.get(config.strategy)
    if not rejoining:  # the running group checked the schemas when it started
        ctx.emit("status", message="comparing data schemas with the other hospitals")
        schema_check.agree(ctx.spec, strategy_cls.partition == "vertical")
    session = strategy_cls.open_session(ctx.rank, ctx.spec, config)
    initial = state_digest(strategy_cls.initial_state(session)) if config.init_from else None
    strategy = strategy_cls(config, session)
    strategy.emit = ctx.emit  # e.g. a rejected update (fedtrain/updates/validation.py)
    if saved is not None:
        checkpoints.restore(strategy, session, saved)
    start = rejoin.sync_global_state(strategy, have)
    hospital = session.hospitals[0] if len(session.hospitals) == 1 else "pooled"
    for round_index in range(start + 1, config.rounds + 1):
        began = time.perf_counter()
        joiners = rejoin.admit_rejoining(strategy, round_index - 1)
        if joiners:
            ctx.emit("status", message=f"hospitals {joiners} rejoined before round {round_index}")
        result = strategy.train_round(round_index)
        checkpoints.save(strategy, session, run_dir, round_index)
        ctx.emit("round", round=round_index, hospital=hospital, train_loss=result.train_loss,
                 val_macro_auroc=_val_macro_auroc(strategy, session),
                 seconds=time.perf_counter() - began, exchanged=result.exchanged_elements,
                 members=_members(ctx))
    secure_group = group.current()
    if secure_group is not None:
        secure_group.finish()
    strategy.finish()
    ctx.emit("status", message="evaluating on test data")
    return {**_evaluate(ctx, strategy, session, run_dir), "initial_model_sha256": initial}


def _evaluate(ctx: PartyContext, strategy: strategies.Strategy, session: Session,
              run_dir: Path) -> dict[str, Any]:
    per_hospital: dict[str, Any] = {}
    n_labels = session.n_labels
    all_probs = [np.zeros((0, n_labels))]
    all_labels = [np.zeros((0, n_labels))]
    for h, inputs in session.tests.items():
        probs = strategy.predict(inputs)  # collective for encrypted strategies
        if inputs.labels is None:  # a vertical party without labels contributes nothing
            continue
        labels = inputs.labels.numpy()
        own = multilabel_metrics(labels, probs, label_names=session.label_names)
        per_hospital[f"hospital_{h}"] = {"n": len(inputs), "labels": own["per_label"],
                                         "macro": own["macro"]}
        all_probs.append(probs)
        all_labels.append(labels)
    names = _label_names(session)
    overall = pooled_metrics(session.aggregator.sum, np.concatenate(all_probs),
                             np.concatenate(all_labels), names)
    for stem, state in strategy.models_to_save().items():
        tensors = {k: v.contiguous() for k, v in state.items()}
        save_file(tensors, str(run_dir / f"{stem}.safetensors"))
    stats = session.aggregator.stats
    secure_group = group.current()
    crypten_stats = (secure_group.comm_totals().__dict__ if secure_group else
                     crypten.communicator.get().get_communication_stats())
    return {
        "hospital": session.hospitals[0] if len(session.hospitals) == 1 else "pooled",
        "test": per_hospital,
        "overall": overall,
        "comm": {"bytes_communicated": stats.bytes_communicated, "setup_bytes": stats.setup_bytes,
                 "aggregation_seconds": stats.seconds, "aggregation_calls": stats.calls,
                 "elements": stats.elements, "secure": session.aggregator.secure,
                 "crypten_bytes": int(crypten_stats["bytes"]),
                 "crypten_rounds": int(crypten_stats["rounds"])},
        "privacy": strategy.privacy_report(),
        "validation": strategy.validation_report(),
        "group": {"members": secure_group.members, "reformed": secure_group.history}
        if secure_group else None,
        "n_train": session.n_train,
    }
