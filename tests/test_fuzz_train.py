"""Hostile inputs for `crypten-fl train`, see helpers/fuzz.py.

Only inputs that must be refused before any hospital process starts (options, a broken FED/
layout, an unusable --out) run by default: each costs milliseconds. Inputs that are found inside
the hospital processes (a damaged split file) are covered at the level of the reader every
hospital process calls, ``mimic_etl.hospital_data.load_split``, in ``test_hospital_file``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.mimic_etl.hospital_data import load_split
from helpers.federation import TINY_MODEL
from helpers.fuzz import (
    Case,
    Mutation,
    Workspace,
    copy_into,
    edit_json,
    edit_parquet,
    flip_byte,
    params,
    place,
    remove,
    rename,
    run_case,
    tmpfs,
    truncate,
    with_values,
    without_key,
    write_file,
)
from helpers.fuzz_fixtures import TINY_OPTIONS, tiny_federation

BASE = ("train", "--fed", "{fed}", "--out", "{out}", *TINY_OPTIONS)
H0, H1 = "{fed}/hospital_0", "{fed}/hospital_1"
SLOW = (pytest.mark.slow,)


def reported(what: str, slow: bool = False) -> tuple[Any, ...]:
    """A case that showed a defect (since fixed): kept as a regression case."""
    return SLOW[:slow]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_federation(tmp_path_factory)


def workspace(pristine: Path, root: Path) -> Workspace:
    fed = copy_into(root, pristine, "fed")
    return Workspace(root, {"fed": fed, "out": root / "run"}, inputs=["fed"], outputs=["out"])


def fails(case_id: str, *mutate: Mutation, error: tuple[str, ...], args: tuple[str, ...] = (),
          marks: tuple[Any, ...] = (), subprocess: bool = False) -> Case:
    return Case(case_id, (*BASE, *args), mutate, error=error, marks=marks, subprocess=subprocess)


def option_cases() -> list[Case]:
    """Out-of-range, conflicting and ill-typed options: refused before any process starts."""
    bad = [
        ("rounds-0", ("--rounds", "0"), "--rounds"),
        ("rounds-negative", ("--rounds", "-3"), "--rounds"),
        ("rounds-not-a-number", ("--rounds", "many"), "--rounds"),
        ("local-epochs-0", ("--local-epochs", "0"), "--local-epochs"),
        ("batch-size-0", ("--batch-size", "0"), "--batch-size"),
        ("lr-0", ("--lr", "0"), "--lr"), ("lr-negative", ("--lr", "-0.1"), "--lr"),
        ("lr-nan", ("--lr", "nan"), "--lr"), ("lr-inf", ("--lr", "inf"), "--lr"),
        ("dp-epsilon-0", ("--dp-epsilon", "0"), "--dp-epsilon"),
        ("dp-epsilon-negative", ("--dp-epsilon", "-1"), "--dp-epsilon"),
        ("dp-epsilon-nan", ("--dp-epsilon", "nan"), "--dp-epsilon"),
        ("dp-epsilon-inf", ("--dp-epsilon", "inf"), "--dp-epsilon"),
        ("dp-epsilon-tiny", ("--dp-epsilon", "1e-9"), "--dp-epsilon"),
        ("dp-delta-0", ("--dp-epsilon", "1", "--dp-delta", "0"), "--dp-delta"),
        ("dp-delta-1", ("--dp-epsilon", "1", "--dp-delta", "1"), "--dp-delta"),
        ("dp-delta-without-epsilon", ("--dp-delta", "1e-5"), "--dp-delta"),
        ("max-grad-norm-0", ("--max-grad-norm", "0"), "--max-grad-norm"),
        ("max-grad-norm-nan", ("--max-grad-norm", "nan"), "--max-grad-norm"),
        ("d-model-not-divisible", ("--d-model", "15"), "--d-model"),
        ("pooling-unknown", ("--pooling", "max"), "--pooling"),
        ("dropout-1", ("--dropout", "1"), "--dropout"),
        ("dropout-negative", ("--dropout", "-0.1"), "--dropout"),
        ("dropout-nan", ("--dropout", "nan"), "--dropout"),
        ("personal-layers-negative", ("--personal-layers", "-1"), "--personal-layers"),
        ("mtl-lambda-negative", ("--mtl-lambda", "-1"), "--mtl-lambda"),
        ("mtl-lambda-nan", ("--mtl-lambda", "nan"), "--mtl-lambda"),
        ("timeout-0", ("--timeout", "0"), "--timeout"),
        ("timeout-negative", ("--timeout", "-5"), "--timeout"),
        ("timeout-nan", ("--timeout", "nan"), "--timeout"),
        ("mask-degree-1", ("--mask-degree", "1"), "--mask-degree"),
        ("mask-degree-odd", ("--mask-degree", "3"), "--mask-degree"),
        ("cut-0", ("--cut", "0"), "--cut"), ("cut-3", ("--cut", "3"), "--cut"),
        ("encrypted-lr-0", ("--encrypted-lr", "0"), "--encrypted-lr"),
        ("server-lr-0", ("--server-lr", "0"), "--server-lr"),
        ("server-lr-inf", ("--server-lr", "inf"), "--server-lr"),
        ("server-opt-unknown", ("--server-opt", "sgd"), "--server-opt"),
        ("server-momentum-1", ("--server-opt", "fedavgm", "--server-momentum", "1"),
         "--server-momentum"),
        ("server-tau-0-adam", ("--server-opt", "fedadam", "--server-tau", "0"), "--server-tau"),
        ("server-opt-with-vertical", ("--strategy", "vertical", "--server-opt", "fedadam"),
         "--server-opt"),
        ("prox-mu-negative", ("--prox-mu", "-1"), "--prox-mu"),
        ("prox-mu-nan", ("--prox-mu", "nan"), "--prox-mu"),
        ("prox-with-local", ("--strategy", "local", "--prox-mu", "0.1"), "--prox-mu"),
        ("strategy-unknown", ("--strategy", "gossip"), "--strategy"),
        ("strategy-empty", ("--strategy", ""), "--strategy"),
        ("vertical-on-horizontal-fed", ("--strategy", "vertical"), "--strategy vertical"),
        ("dp-with-split-cut-2", ("--strategy", "split", "--cut", "2", "--head-hidden", "16",
                                 "--dp-epsilon", "1"), "--dp-epsilon"),
        ("cut-2-with-a-linear-head", ("--strategy", "split", "--cut", "2"), "--cut 2"),
        ("unknown-option", ("--epochs", "3"), "--epochs"),
        ("resume-without-partial-run", ("--resume",), "--resume"),
    ]
    cases = [fails(f"option-{name}", args=args, error=(option,)) for name, args, option in bad]
    cases += [
        fails("option-heads-0", args=("--heads", "0"), error=("--heads",),
              marks=reported("fedtrain/config.py: ZeroDivisionError in validate()")),
        fails("option-timeout-inf", args=("--timeout", "inf"), error=("--timeout",),
              marks=reported("fedtrain/launch.py: OverflowError for an infinite timeout")),
        fails("option-encrypted-lr-nan", args=("--encrypted-lr", "nan"),
              error=("--encrypted-lr",),
              marks=reported("fedtrain/config.py accepts a NaN --server-lr (now --encrypted-lr)",
                             slow=True)),
        fails("option-d-model-0", args=("--d-model", "0", "--heads", "1"), error=("--d-model",),
              marks=reported("--d-model 0 fails inside the hospital processes", slow=True)),
        fails("option-layers-0", args=("--layers", "0"), error=("--layers",),
              marks=reported("--layers 0 fails inside the hospital processes", slow=True)),
        fails("option-personal-layers-too-many", args=("--strategy", "fedper",
                                                       "--personal-layers", "100"),
              error=("--personal-layers",),
              marks=reported("--personal-layers > head layers fails inside the hospital "
                             "processes", slow=True)),
        fails("subprocess-rounds-0", args=("--rounds", "0"), error=("--rounds",),
              subprocess=True),
    ]
    return cases


def federation_cases() -> list[Case]:
    """A FED/ directory whose layout or manifests are broken."""
    manifest = f"{H1}/manifest.json"
    cases = [
        fails("fed-missing", remove("{fed}"), error=("--fed {fed}", "not found")),
        fails("fed-is-a-file", remove("{fed}"), write_file("{fed}", "x"),
              error=("--fed {fed}", "not found")),
        fails("partition-json-missing-and-strategy-vertical", remove("{fed}/partition.json"),
              args=("--strategy", "vertical"), error=("--strategy vertical", "is horizontal")),
        fails("partition-json-missing-and-manifests-disagree", remove("{fed}/partition.json"),
              edit_json(manifest, with_values(vertical=True)),
              error=("--fed {fed}", "hospital_1 vertical, the other hospitals not")),
        fails("partition-json-not-json", write_file("{fed}/partition.json", "{,}"),
              error=("{fed}/partition.json", "not valid JSON")),
        fails("partition-json-binary", write_file("{fed}/partition.json", b"\xff\xfe"),
              error=("{fed}/partition.json",),
              marks=reported("common/manifest.py: UnicodeDecodeError escapes read_json")),
        fails("no-hospital-dirs", remove(H0), remove(H1), error=("--fed {fed}", "hospital_")),
        fails("hospital-dirs-misnumbered", rename(H1, "hospital_2"),
              error=("--fed {fed}", "numbered")),
        fails("hospital-manifest-missing", remove(manifest), error=(manifest, "not found")),
        fails("hospital-manifest-not-json", write_file(manifest, "[1,"),
              error=(manifest, "not valid JSON")),
        fails("hospital-manifest-a-list", write_file(manifest, "[1]"), error=(manifest,)),
        fails("hospital-train-split-empty", edit_json(manifest, lambda m: {
            **m, "counts": {**m["counts"], "train": 0}}), error=(H1, "training split is empty")),
        fails("hospital-n_bins-text", edit_json(manifest, with_values(n_bins="x")),
              error=(manifest, "n_bins")),
        fails("hospital-features-differ", edit_json(manifest, lambda m: {
            **m, "features": m["features"][::-1]}),
            error=("--fed {fed}", "hospital_1: feature list in another order")),
        fails("hospital-feature-missing", edit_json(manifest, lambda m: {
            **m, "features": m["features"][1:]}),
            error=("--fed {fed}", "hospital_1: feature list differs: heart_rate missing")),
        fails("hospital-label-missing", edit_json(manifest, lambda m: {
            **m, "labels": m["labels"][:-1]}),
            error=("--fed {fed}", "hospital_1: label list differs: neurological missing")),
        fails("hospital-unit-differs", edit_json(manifest, lambda m: {
            **m, "features": [{**m["features"][0], "unit": "per hour"}, *m["features"][1:]]}),
            error=("--fed {fed}", "hospital_1: feature heart_rate: unit per hour")),
        fails("hospital-bins-differ", edit_json(manifest, with_values(n_bins=7)),
              error=("--fed {fed}", "hospital_1: time grid 7 bins")),
    ]
    cases += [fails(f"hospital-manifest-without-{key}", edit_json(manifest, without_key(key)),
                    error=(manifest, key)) for key in ("features", "n_bins", "counts")]
    cases += [fails(f"hospital-{split}-parquet-missing", remove(f"{H0}/{split}.parquet"),
                    error=(f"{H0}/{split}.parquet", "not found"))
              for split in ("train", "val", "test")]
    return cases


def location_cases() -> list[Case]:
    """Unusable --out locations and interrupted-run bookkeeping."""
    return [
        fails("out-not-empty", write_file("{out}/mine.txt", "keep"),
              error=("--out {out}", "--overwrite")),
        fails("out-is-a-file", write_file("{out}", "x"), error=("--out {out}", "not a directory")),
        fails("out-parent-missing", place("out", "nowhere/run"),
              error=("--out {out}", "does not exist")),
        fails("out-parent-read-only", tmpfs("ro", readonly=True), place("out", "ro/run"),
              error=("--out {out}", "not writable")),
        Case("interrupted-run-exists", BASE, (_partial_run(), ),
             error=("--out {out}", "--resume")),
        Case("resume-with-other-options", (*BASE, "--resume", "--lr", "0.5"), (_partial_run(),),
             error=("--resume", "lr")),
        Case("resume-with-garbage-config", (*BASE, "--resume"),
             (_partial_run(), write_file("{partial}/config.json", "")),
             error=("{partial}/config.json",)),
    ]


def _partial_run() -> Mutation:
    """A `.run.partial` sibling as an interrupted `train` with BASE's options leaves it."""
    def mutate(ws: Workspace) -> None:
        partial = ws.root / ".run.partial"
        partial.mkdir()
        config = TrainConfig(fed=str(ws.paths["fed"]), rounds=1,
                             **{k: v for k, v in TINY_MODEL.items()
                                if k not in ("dim_feedforward", "head_hidden")})
        (partial / "config.json").write_text(json.dumps(config.to_json()))
        ws.paths["partial"] = partial
        ws.inputs.append("partial")  # an interrupted run must survive a refused command
    return mutate


CASES = [*option_cases(), *federation_cases(), *location_cases()]


@pytest.mark.parametrize("case", params(CASES))
def test_train(case: Case, pristine: Path, tmp_path: Path) -> None:
    run_case(case, workspace(pristine, tmp_path))


# --- the reader every hospital process calls -----------------------------------------------

SPLIT = "{fed}/hospital_0/train.parquet"
LABEL = "sepsis"


def _array_column(name: str, fn: Any) -> Mutation:
    return edit_parquet(SPLIT, lambda f: f.with_columns(fn(f[name]).alias(name)))


HOSPITAL_FILE_CASES: list[tuple[str, tuple[Mutation, ...], str]] = [
    ("zero-bytes", (write_file(SPLIT, b""),), "not a readable parquet file"),
    ("truncated", (truncate(SPLIT, 0.5),), "not a readable parquet file"),
    ("corrupt-footer", (flip_byte(SPLIT, -6),), "not a readable parquet file"),
    ("not-parquet", (write_file(SPLIT, "key,values\n1,2\n"),), "not a readable parquet file"),
    *[(f"{col}-missing", (edit_parquet(SPLIT, lambda f, c=col: f.drop(c)),), col)
      for col in ("key", "subject_id", "values", "mask", "age", "insurance", LABEL)],
    ("values-float64", (_array_column("values", lambda s: s.cast(
        pl.Array(pl.Float64, s.dtype.shape))),), "column values"),
    ("values-wrong-shape", (edit_json("{fed}/hospital_0/manifest.json", lambda m: {
        **m, "n_bins": m["n_bins"] + 1}),), "column values"),
    ("mask-null-row", (_array_column("mask", lambda s: pl.Series(
        [None, *s.to_list()[1:]], dtype=s.dtype)),), "NULL"),
    ("label-2", (edit_parquet(SPLIT, lambda f: f.with_columns(
        pl.lit(2, pl.Int8).alias(LABEL))),), "0/1"),
    ("label-null", (edit_parquet(SPLIT, lambda f: f.with_columns(
        pl.lit(None, pl.Int8).alias(LABEL))),), "NULL"),
    ("key-null", (edit_parquet(SPLIT, lambda f: f.with_columns(
        pl.lit(None, pl.String).alias("key"))),), "key has NULL"),
    ("rows-not-as-manifest", (edit_parquet(SPLIT, lambda f: f.slice(1)),), "manifest.json says"),
    ("age-as-text", (edit_parquet(SPLIT, lambda f: f.with_columns(
        pl.col("age").cast(pl.String))),), "column age"),
    ("sex-as-number", (edit_parquet(SPLIT, lambda f: f.with_columns(
        pl.lit(1).alias("sex"))),), "column sex"),
]


@pytest.mark.parametrize(("name", "mutate", "message"), HOSPITAL_FILE_CASES,
                         ids=[c[0] for c in HOSPITAL_FILE_CASES])
def test_hospital_file(name: str, mutate: tuple[Mutation, ...], message: str,
                       pristine: Path, tmp_path: Path) -> None:
    """A damaged split file is one UserError naming it, never another exception."""
    ws = workspace(pristine, tmp_path)
    for mutation in mutate:
        mutation(ws)
    with pytest.raises(UserError) as err:
        load_split(ws.paths["fed"] / "hospital_0", "train")
    text = str(err.value)
    assert text.startswith(str(ws.path(SPLIT))) and message in text, text
    assert "\n" not in text
