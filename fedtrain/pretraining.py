"""`crypten-fl pretrain`: the ICU Transformer trained centrally on PUBLIC data (--init-from).

The data is a synthetic release (``--mimic-dir``, extracted exactly as ``extract`` does) or an
already extracted cohort (``--cohort``). It is split by patient as ``prepare`` splits a site
(train and a held-out validation split), normalised with its own training statistics, and the
model of the given architecture is trained for ``--epochs`` with Adam in one process. MODEL/ gets
the weights (``model.safetensors``) and ``card.json`` (fedtrain/models/pretrained.py): the
architecture, the data schema, where the data came from with SHA-256s of the files trained on,
why it is public, the training settings, the loss and validation macro-AUROC of every epoch and
the final model's validation metrics; and ``public_features.safetensors``, the public training
stays' summaries and labels from which vertical parties fit their public feature maps
(fedtrain/models/public_features.py).

Pretraining is free in privacy terms only because the data is public: output of ``crypten-fl
synth`` is public by construction (detected from the release's own marker and summary); any other
data must be declared public with ``public_data`` (``--public-data``), else pretrain refuses.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from crypten_fl.common import __version__
from crypten_fl.common.errors import UserError
from crypten_fl.common.manifest import read_json, write_json
from crypten_fl.common.outdir import atomic_output_dir, read_marker
from crypten_fl.common.progress import ProgressFn, no_progress
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.preprocess import (
    Normalizer,
    local_moments,
    preprocessing_spec,
    static_width,
)
from crypten_fl.fedtrain.local_training.trainer import LocalTrainer
from crypten_fl.fedtrain.local_training.trainer import TrainConfig as LocalConfig
from crypten_fl.fedtrain.metrics.classification import multilabel_metrics
from crypten_fl.fedtrain.models import public_features
from crypten_fl.fedtrain.models.pretrained import (
    CARD_FILE,
    CARD_FORMAT,
    CARD_VERSION,
    WEIGHTS_FILE,
    architecture,
    sha256_file,
)
from crypten_fl.fedtrain.sessions.hospital import build_model, split_inputs
from crypten_fl.mimic_etl.hospital_data import HospitalSplit, load_split
from crypten_fl.mimic_etl.schema import fingerprint, manifest_schema
from safetensors.torch import save_file

COMMAND = "pretrain"
#: train and validation fractions of the public data's patients (no test split: the federation's
#: own test splits measure what the pretrained model is worth)
DEFAULT_SPLIT: tuple[float, float, float] = (0.85, 0.15, 0.0)
#: the files of a cohort whose SHA-256 the card records
COHORT_FILES = ("static.parquet", "timeseries.parquet", "labels.parquet", "manifest.json")
#: what `crypten-fl synth` writes beside the tables: its summary (seed, patients, version)
SYNTH_SUMMARY = "synth_summary.json"
#: the checksum list PhysioNet ships with a release
RELEASE_CHECKSUMS = "SHA256SUMS.txt"


@dataclass(frozen=True)
class PretrainSummary:
    """What `pretrain` wrote: MODEL/ and its card."""

    out: Path
    card: dict[str, Any]
    elapsed_seconds: float


def synth_release(mimic_dir: Path) -> dict[str, Any] | None:
    """The summary of a release written by `crypten-fl synth` (None: not one)."""
    marker = read_marker(mimic_dir)
    summary = Path(mimic_dir) / SYNTH_SUMMARY
    if marker is None or marker.get("command") != "synth" or not summary.is_file():
        return None
    data = read_json(summary)
    return data if isinstance(data, dict) else None


def _source(mimic_dir: Path | None, cohort: Path | None, public_data: bool) -> dict[str, Any]:
    """Where the data comes from and why it is public (UserError if it is not known to be)."""
    if (mimic_dir is None) == (cohort is None):
        raise UserError("give --mimic-dir (a synthetic or public MIMIC-IV release) or --cohort "
                        "(an extracted cohort), exactly one of them")
    option, path = ("--mimic-dir", mimic_dir) if mimic_dir is not None else ("--cohort", cohort)
    assert path is not None
    if not Path(path).is_dir():
        raise UserError(f"{option} {path}: directory not found")
    synth = synth_release(path) if mimic_dir is not None else None
    if synth is not None:
        why = (f"synthetic release of `crypten-fl synth` (seed {synth.get('seed')}, "
               f"{synth.get('icu_patients', synth.get('patients'))} ICU patients): no real "
               "patient is in it")
        release = {"file": SYNTH_SUMMARY, "sha256": sha256_file(Path(path) / SYNTH_SUMMARY)}
    elif public_data:
        why = "declared public by the user (--public-data)"
        sums = Path(path) / RELEASE_CHECKSUMS
        release = ({"file": RELEASE_CHECKSUMS, "sha256": sha256_file(sums)}
                   if mimic_dir is not None and sums.is_file() else None)
    else:
        what = ("is not a release written by `crypten-fl synth`" if mimic_dir is not None else
                "is an extracted cohort, whose source pretrain cannot check")
        raise UserError(f"{option} {path}: {what}; pretraining is free of privacy cost only on "
                        "public data, so declare it with --public-data if it is public (it must "
                        "hold none of the federation's patients)")
    return {"option": option, "path": str(Path(path).resolve()), "public": True,
            "public_because": why, "synthetic": synth is not None, "release": release}


def _check(epochs: int, config: TrainConfig, split: Sequence[float]) -> None:
    if epochs < 1:
        raise UserError(f"--epochs {epochs}: must be at least 1")
    if config.seed < 0:
        raise UserError(f"--seed {config.seed}: must be 0 or more")
    if len(split) != 3 or split[0] <= 0 or split[1] <= 0:
        raise UserError(f"--split {','.join(f'{f:g}' for f in split)}: needs a training and a "
                        "validation fraction above 0")
    config.validate()


def pretrain(config: TrainConfig, out: Path, *, epochs: int = 20, mimic_dir: Path | None = None,
             cohort: Path | None = None, public_data: bool = False,
             split: Sequence[float] = DEFAULT_SPLIT, overwrite: bool = False,
             progress: ProgressFn = no_progress) -> PretrainSummary:
    """Train ``config``'s model on public data and write MODEL/ at ``out`` (atomically).

    Args:
        config: architecture (d_model, n_heads, n_layers, dropout, pooling ...), lr, batch_size
            and seed; its federation fields are not used.
        out: MODEL/ directory to write (new or empty, or an earlier pretrain output with
            ``overwrite``).
        epochs: passes over the training split.
        mimic_dir: a MIMIC-IV-format release, extracted as ``extract`` does with its defaults.
        cohort: an extracted COHORT/ instead of ``mimic_dir``.
        public_data: the user declares data not written by ``synth`` public.
        split: train, validation (and unused test) fractions of the patients.
        overwrite: replace an earlier ``pretrain`` output at ``out``.
        progress: progress callback.
    """
    start = time.perf_counter()
    out = Path(out)
    _check(epochs, config, split)
    source = _source(mimic_dir, cohort, public_data)
    reads = {source["option"]: [Path(source["path"])]}
    with atomic_output_dir(out, overwrite, reads=reads, command=COMMAND) as tmp:
        scratch = tmp / "scratch"
        scratch.mkdir()
        cohort_dir = Path(source["path"])
        if mimic_dir is not None:
            from crypten_fl.mimic_etl.extract import extract

            cohort_dir = scratch / "cohort"
            extract(Path(source["path"]), cohort_dir, progress=progress)
        hospital = _split(cohort_dir, scratch / "hospital_0", split, config.seed, progress)
        data = {**source, "cohort_sha256": {name: sha256_file(cohort_dir / name)
                                            for name in COHORT_FILES},
                "split": list(split), "split_seed": config.seed}
        card = _train(config, hospital, epochs, data, tmp, progress)
        shutil.rmtree(scratch)
    return PretrainSummary(out, card, round(time.perf_counter() - start, 3))


def _split(cohort: Path, out: Path, split: Sequence[float], seed: int,
           progress: ProgressFn) -> Path:
    """The cohort split by patient into train/val, as `prepare` splits a site."""
    from crypten_fl.mimic_etl.partition.prepare import prepare

    prepare(cohort, out, 0, split=tuple(split), seed=seed, progress=progress)
    return out


def _train(config: TrainConfig, hospital: Path, epochs: int, data: dict[str, Any], tmp: Path,
           progress: ProgressFn) -> dict[str, Any]:
    """Train, save the weights into ``tmp`` and write the card; returns the card."""
    train, val = load_split(hospital, "train"), load_split(hospital, "val")
    normalizer = Normalizer.from_moments(local_moments(train.values, train.mask, train.static))
    model = build_model(config, len(train.feature_names), static_width(True),
                        len(train.label_names), train.values.shape[1])
    train_inputs = split_inputs(normalizer, train)
    trainer = LocalTrainer(model, train_inputs,
                           LocalConfig(lr=config.lr, batch_size=config.batch_size,
                                       seed=config.seed, num_threads=config.threads_per_party))
    val_inputs = split_inputs(normalizer, val)
    history = []
    for epoch in range(epochs):
        def step(task: str, done: float, total: float | None = None, epoch: int = epoch) -> None:
            progress("pretraining", epoch * (total or 0) + done, epochs * (total or 0))

        loss = trainer.train_epochs(1, progress=step)
        scores = _metrics(trainer, val_inputs, val)
        history.append({"epoch": epoch + 1, "train_loss": loss,
                        "val_macro_auroc": scores["macro"]["auroc"]})
    state = {k: v.contiguous() for k, v in trainer.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS_FILE))
    schema = {**manifest_schema(train.manifest),
              "training": fingerprint(preprocessing_spec())[:16]}
    card = {
        "format": CARD_FORMAT,
        "format_version": CARD_VERSION,
        "created_by": {"tool": "crypten-fl", "version": __version__, "command": COMMAND},
        "weights": {"file": WEIGHTS_FILE, "sha256": sha256_file(tmp / WEIGHTS_FILE),
                    "parameters": int(sum(v.numel() for v in state.values()))},
        "architecture": {**architecture(config), "dropout": config.model_dropout,
                         "n_features": len(train.feature_names), "n_static": static_width(True),
                         "n_labels": len(train.label_names), "n_bins": int(train.values.shape[1])},
        "features": list(train.feature_names),
        "labels": list(train.label_names),
        "static": list(train.static_columns),
        "time_bins": {"n_bins": schema["n_bins"], "bin_hours": schema["bin_hours"],
                      "hours": schema["hours"]},
        "schema": schema,
        "schema_sha256": fingerprint(schema),
        "data": {**data, "stays": {"train": len(train), "val": len(val)}},
        "training": {"epochs": epochs, "lr": config.lr, "batch_size": config.batch_size,
                     "seed": config.seed, "optimizer": "Adam", "dp": None,
                     "normalisation": "z-score with this data's own training statistics (the "
                                      "federation normalises with its pooled statistics)",
                     "history": history},
        "validation": {"split": "val", "n": len(val), **_metrics(trainer, val_inputs, val)},
        public_features.CARD_FIELD: public_features.write(
            tmp, train_inputs.x, train_inputs.static, train_inputs.labels),
    }
    write_json(tmp / CARD_FILE, card)
    return card


def _metrics(trainer: LocalTrainer, inputs: Any, split: HospitalSplit) -> dict[str, Any]:
    """Validation metrics of the trainer's current model (``macro`` and ``per_label``)."""
    probs = trainer.predict(inputs)
    labels = np.asarray(split.labels)
    return multilabel_metrics(labels, probs, label_names=split.label_names)


__all__ = ["DEFAULT_SPLIT", "PretrainSummary", "pretrain"]
