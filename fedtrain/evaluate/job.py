"""The evaluation job of one hospital process (run by fedtrain.launch, one process per hospital).

Each process opens its own FED/hospital_<k>/ only (through the strategy's ``open_session``, which
recomputes the normalisation statistics with the same secure sum as training) and the run's final
model for its rank, predicts its own validation and test stays, and then:

* ``secure``: sums, with SecureAggregator, (1) the validation score histograms → every hospital
  derives the same per-label thresholds from the pooled totals; (2) the test summary (histograms,
  squared errors, confusion counts at those thresholds), overall and per subgroup. Only the sums
  are revealed. The hospital returns its own exact metrics (on its own stays, at the pooled
  thresholds) to the coordinator.
* plain (the insecure reference): writes its predictions, labels and subgroup attributes to its
  work dir for the coordinator to pool.

Leave-one-hospital-out: the held-out ("unseen") hospital contributes zeros to the normalisation
statistics, to the validation histograms and to the pooled test summary (which therefore covers
the training hospitals only), and obtains its model as the shared model or, for personalised
strategies, as the secure unweighted mean of the training hospitals' final models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from crypten_fl.fedtrain import strategies
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.evaluate.subgroups import membership, read_attributes
from crypten_fl.fedtrain.evaluate.summary import exact_metrics, local_summary, summary_length
from crypten_fl.fedtrain.evaluate.thresholds import ThresholdRule, choose_thresholds
from crypten_fl.fedtrain.metrics.classification import histogram_counts
from crypten_fl.fedtrain.party import PartyContext
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.aggregator import PlainAggregator, SecureAggregator
from crypten_fl.fedtrain.secure.tensors import secure_mean


def _aggregator(session: Any, secure: bool, degree: int | None) -> SecureAggregator:
    if session.aggregator.secure == secure:
        return session.aggregator
    return SecureAggregator(degree=degree) if secure else PlainAggregator(degree=degree)


def _load_model(strategy: strategies.Strategy, spec: dict[str, Any], agg: SecureAggregator
                ) -> None:
    """The run's final model for this hospital (collective when an unseen hospital needs one)."""
    run_dir, index = Path(spec["run_dir"]), spec.get("model_index")
    personalised = strategy.personalised
    if index is not None:
        strategy.load_final(run_dir, index)
    elif not personalised:
        strategy.load_final(run_dir, 0)  # the shared model (its file name has no index)
    if personalised and spec.get("average_for_unseen"):
        own = strategy.session.trainer.state_dict()
        if index is None:
            own = {k: torch.zeros_like(v) for k, v in own.items()}
        mean = secure_mean(agg, own, 0.0 if index is None else 1.0, tags.UNSEEN_HOSPITAL_MODEL)
        if index is None:
            strategy.session.trainer.load_state_dict(mean)


def _predict(strategy: strategies.Strategy, inputs: Any, n_labels: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels ``(N, L)`` (empty for a vertical party without labels)."""
    probs = strategy.predict(inputs)  # collective for encrypted strategies
    if inputs.labels is None:
        return np.zeros((0, n_labels)), np.zeros((0, n_labels))
    return np.asarray(probs, dtype=np.float64), inputs.labels.numpy().astype(np.float64)


def _thresholds(agg: SecureAggregator, val: tuple[np.ndarray, np.ndarray], rule: ThresholdRule,
                bins: int, contributes: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds and fallback flags from the pooled validation histograms (and those totals)."""
    n_labels = val[0].shape[1]
    if rule.name == "fixed":
        thresholds, fallback = choose_thresholds(np.zeros((n_labels, 1)),
                                                 np.zeros((n_labels, 1)), rule)
        return thresholds, fallback, np.zeros(0)
    pos, neg = histogram_counts(val[0], val[1], bins)
    mine = np.concatenate([pos.ravel(), neg.ravel()]).astype(np.float64)
    if not contributes:
        mine = np.zeros_like(mine)
    total = agg.sum(torch.from_numpy(mine), what=tags.EVAL_VALIDATION_HISTOGRAMS).numpy()
    pooled = np.rint(total).reshape(2, n_labels, bins)
    thresholds, fallback = choose_thresholds(pooled[0], pooled[1], rule)
    return thresholds, fallback, pooled


def _secure(ctx: PartyContext, agg: SecureAggregator, val: tuple[np.ndarray, np.ndarray],
            test: tuple[np.ndarray, np.ndarray], groups: np.ndarray | None,
            names: list[str]) -> dict[str, Any]:
    spec = ctx.spec
    bins, unseen = int(spec["bins"]), spec.get("model_index") is None
    rule = ThresholdRule(**spec["threshold"])
    thresholds, fallback, val_total = _thresholds(agg, val, rule, bins, not unseen)
    own = local_summary(*test, thresholds, bins)
    parts = [np.zeros_like(own) if unseen else own]
    for mask in groups if groups is not None else []:
        parts.append(local_summary(test[0][mask], test[1][mask], thresholds, bins))
    ctx.emit("status", message="summing test summaries securely")
    total = agg.sum(torch.from_numpy(np.concatenate(parts)), what=tags.EVAL_TEST_SUMMARY).numpy()
    result: dict[str, Any] = {"thresholds": thresholds.tolist(), "fallback": fallback.tolist()}
    if len(test[1]):  # its own stays: exact metrics, at the pooled thresholds
        result["own"] = exact_metrics(*test, names, thresholds)
    if ctx.rank == 0:
        path = ctx.workdir / "pooled.npz"
        length = summary_length(len(names), bins)
        np.savez(path, validation=val_total, test=total[:length],
                 subgroups=total[length:].reshape(-1, length))
        result["pooled_file"] = str(path)
    return result


def _plain(ctx: PartyContext, val: tuple[np.ndarray, np.ndarray],
           test: tuple[np.ndarray, np.ndarray], attributes: dict[str, list]) -> dict[str, Any]:
    path = ctx.workdir / "predictions.npz"
    columns = {f"attr_{k}": np.array(["" if v is None else v for v in values], dtype=str)
               if k != "age" else np.array(values, dtype=np.float64)
               for k, values in attributes.items()}
    np.savez(path, val_probs=val[0], val_labels=val[1], test_probs=test[0], test_labels=test[1],
             **columns)
    return {"predictions_file": str(path)}


def run(ctx: PartyContext) -> dict[str, Any]:
    """Evaluate this hospital's final model on its own data; see the module docstring."""
    spec = ctx.spec
    config = TrainConfig.from_json(spec["config"]).for_final_model()
    hospital = int(spec["hospital"])
    ctx.emit("status", hospital=hospital, message="loading its data and the final model")
    strategy_cls = strategies.get(config.strategy)
    session = strategy_cls.open_session(ctx.rank, spec, config)
    strategy = strategy_cls(config, session)
    agg = _aggregator(session, bool(spec["secure"]), config.mask_degree)
    _load_model(strategy, spec, agg)
    n_labels = session.n_labels
    names = list(session.label_names) or [f"label_{i}" for i in range(n_labels)]
    ctx.emit("status", hospital=hospital, message="predicting")
    val = _predict(strategy, session.val, n_labels)
    test = _predict(strategy, session.tests[hospital], n_labels)
    attributes: dict[str, list] = {}
    if spec.get("subgroups"):
        attributes = read_attributes(Path(spec["hospital_dirs"][0]))
    base = {"hospital": hospital, "unseen": spec.get("model_index") is None,
            "n_val": len(val[1]), "n_test": len(test[1])}
    if not spec["secure"]:
        return {**base, **_plain(ctx, val, test, attributes)}
    groups = membership(attributes, len(test[1])) if spec.get("subgroups") else None
    return {**base, **_secure(ctx, agg, val, test, groups, names)}
