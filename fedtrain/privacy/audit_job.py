"""The audit job of one hospital process (run by fedtrain.launch, one process per hospital).

Each process opens only its own FED/hospital_<k>/ through the strategy's ``open_session`` — which
recomputes the normalisation statistics with the same secure sum of moments as training, so the
model sees exactly the inputs it was trained on — loads the run's final model for its hospital,
and runs its own analysis (fedtrain/privacy/hospital_audit.py). It then:

1. computes its own figures from its exact scores (they stay with the hospital; the local
   simulation returns them to the coordinator, as evaluate does with per-hospital metrics);
2. bins its member and non-member scores on the public grid and adds the two histograms to one
   secure sum: every hospital obtains the summed histograms, from which the overall figures are
   computed. No score of a stay leaves the hospital.

A hospital left out with ``--hospitals`` still opens its session (the moment sum needs every
hospital) and contributes zeros to the histogram sum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.party import PartyContext
from crypten_fl.fedtrain.privacy.attack_metrics import counts_from_scores
from crypten_fl.fedtrain.privacy.audit_summary import summarise
from crypten_fl.fedtrain.privacy.hospital_audit import AttackSettings, score_hospital
from crypten_fl.fedtrain.privacy.membership_inference import score_histogram
from crypten_fl.fedtrain.privacy.sampling import rng_for
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.aggregator import SecureAggregator


def model_index(strategy: str, hospital: int) -> int:
    """Whose final model hospital ``hospital`` audits: its own, or the shared one (index 0)."""
    return hospital if strategies.get(strategy).personalised else 0


def _own_analysis(ctx: PartyContext, session: Any, hospital: int,
                  initial: dict[str, torch.Tensor] | None) -> tuple[dict[str, Any], np.ndarray]:
    spec = ctx.spec
    settings = AttackSettings(**spec["attack"])
    rng = rng_for(int(spec["seed"]), hospital)

    def on_reference(done: int) -> None:
        ctx.emit("reference", hospital=hospital, done=done, total=settings.references)

    ctx.emit("status", hospital=hospital, message=f"{settings.attack} attack on its own stays")
    scores = score_hospital(session, hospital, settings, rng, on_reference, initial)
    own = summarise(*counts_from_scores(scores.members, scores.non_members),
                    delta=float(spec["delta"]), replicates=int(spec["bootstrap"]), rng=rng,
                    confidence=float(spec["confidence"]))
    bins = int(spec["bins"])
    histograms = np.concatenate([score_histogram(scores.members, bins),
                                 score_histogram(scores.non_members, bins)])
    return {**own, **scores.describe()}, histograms.astype(np.float64)


def run(ctx: PartyContext) -> dict[str, Any]:
    """Audit this hospital's final model on its own stays; see the module docstring."""
    spec = ctx.spec
    config = TrainConfig.from_json(spec["config"]).for_final_model()
    hospital = int(spec["hospital"])
    ctx.emit("status", hospital=hospital, message="loading its data and the final model")
    strategy_cls = strategies.get(config.strategy)
    session = strategy_cls.open_session(ctx.rank, spec, config)
    strategy = strategy_cls(config, session)
    aggregator = (session.aggregator if session.aggregator.secure
                  else SecureAggregator(degree=config.mask_degree))
    result: dict[str, Any] = {"hospital": hospital, "audited": bool(spec["audited"])}
    mine = np.zeros(2 * int(spec["bins"]))
    if spec["audited"]:
        # a run from public weights: the session's model is still that start (the reference
        # models begin there too), until the final model replaces it
        initial = session.trainer.state_dict() if config.init_from is not None else None
        strategy.load_final(Path(spec["run_dir"]), model_index(config.strategy, hospital))
        own, mine = _own_analysis(ctx, session, hospital, initial)
        result["own"] = own
    ctx.emit("status", hospital=hospital, message="summing score histograms securely")
    total = aggregator.sum(torch.from_numpy(mine), what=tags.AUDIT_HISTOGRAMS).numpy()
    if ctx.rank == 0:
        counts = np.rint(total).astype(np.int64).reshape(2, -1)
        path = ctx.workdir / "pooled_histograms.npy"
        np.save(path, counts)
        result["pooled_file"] = str(path)
    return result
