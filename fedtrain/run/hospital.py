"""The job each hospital process runs: the round loop, checkpoints, final evaluation.

Everything a strategy exchanges goes through ``session.aggregator`` (CrypTen secret sharing).
What the process writes: its own checkpoint state (``checkpoints/round_<r>/hospital_<k>.pt``, which
in a multi-machine deployment stays on hospital k's disk), the final model(s) the strategy
names, and progress events with its own loss and validation AUROC.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from fedtrain import strategies
from fedtrain.compat import crypten
from fedtrain.eval.metrics import multilabel_metrics
from fedtrain.eval.secure_metrics import pooled_metrics
from fedtrain.party import PartyContext
from fedtrain.run.config import TrainConfig
from fedtrain.run.session import Session


def _checkpoint_path(run_dir: Path, round_index: int, hospital: int) -> Path:
    return run_dir / "checkpoints" / f"round_{round_index}" / f"hospital_{hospital}.pt"


def _save_checkpoint(strategy: strategies.Strategy, session: Session, run_dir: Path,
                     round_index: int) -> None:
    path = _checkpoint_path(run_dir, round_index, session.hospitals[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {"trainer": session.trainer.checkpoint(), "strategy": strategy.extra_state(),
             "torch_rng": torch.get_rng_state()}
    torch.save(state, tmp)
    tmp.replace(path)


def _restore(strategy: strategies.Strategy, session: Session, run_dir: Path,
             round_index: int) -> None:
    path = _checkpoint_path(run_dir, round_index, session.hospitals[0])
    state = torch.load(path, weights_only=True)
    session.trainer.restore(state["trainer"])
    strategy.load_extra_state(state["strategy"])
    torch.set_rng_state(state["torch_rng"])


def _val_macro_auroc(strategy: strategies.Strategy, session: Session) -> float | None:
    """This hospital's validation macro-AUROC (None where it holds no labels)."""
    probs = strategy.predict(session.val)  # collective for encrypted strategies
    if session.val.labels is None or not len(session.val):
        return None
    return multilabel_metrics(session.val.labels.numpy(), probs)["macro"]["auroc"]


def _injected_fault(hospital: int | str, round_index: int) -> None:
    """Fault injection for tests of crash handling: CRYPTEN_FL_FAIL_AT="<hospital>:<round>"."""
    if os.environ.get("CRYPTEN_FL_FAIL_AT") == f"{hospital}:{round_index}":
        raise RuntimeError(f"injected fault after round {round_index}")


def _label_names(session: Session) -> list[str]:
    """Label names; a vertical party without labels only needs their number."""
    if session.label_names:
        return list(session.label_names)
    return [f"label_{i}" for i in range(session.n_labels)]


def run(ctx: PartyContext) -> dict[str, Any]:
    """Train for the configured rounds (continuing after ``resume_round``) and evaluate."""
    config = TrainConfig.from_json(ctx.spec["config"])
    run_dir = Path(ctx.spec["run_dir"])
    ctx.emit("status", message="loading its data, preparing the secure session")
    strategy_cls = strategies.get(config.strategy)
    session = strategy_cls.open_session(ctx.rank, ctx.spec, config)
    strategy = strategy_cls(config, session)
    start = int(ctx.spec.get("resume_round", 0))
    if start:
        _restore(strategy, session, run_dir, start)
    hospital = session.hospitals[0] if len(session.hospitals) == 1 else "pooled"
    for round_index in range(start + 1, config.rounds + 1):
        began = time.perf_counter()
        result = strategy.train_round(round_index)
        _save_checkpoint(strategy, session, run_dir, round_index)
        ctx.emit("round", round=round_index, hospital=hospital, train_loss=result.train_loss,
                 val_macro_auroc=_val_macro_auroc(strategy, session),
                 seconds=time.perf_counter() - began, exchanged=result.exchanged_elements)
        _injected_fault(hospital, round_index)
    strategy.finish()
    ctx.emit("status", message="evaluating on test data")
    return _evaluate(ctx, strategy, session, run_dir)


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
    crypten_stats = crypten.communicator.get().get_communication_stats()
    return {
        "hospital": session.hospitals[0] if len(session.hospitals) == 1 else "pooled",
        "test": per_hospital,
        "overall": overall,
        "comm": {"bytes_communicated": stats.bytes_communicated, "setup_bytes": stats.setup_bytes,
                 "aggregation_seconds": stats.seconds, "aggregation_calls": stats.calls,
                 "elements": stats.elements, "secure": session.aggregator.secure,
                 "crypten_bytes": int(crypten_stats["bytes"]),
                 "crypten_rounds": int(crypten_stats["rounds"])},
        "privacy": session.trainer.privacy_report(),
        "n_train": session.n_train,
    }
