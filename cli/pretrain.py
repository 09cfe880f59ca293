"""`crypten-fl pretrain`: train the ICU Transformer centrally on public data (--init-from)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from crypten_fl.cli import options as opt
from crypten_fl.cli.common import console, make_table, point_to_json, progress_bars, run_or_exit
from rich.markup import escape

if TYPE_CHECKING:
    from crypten_fl.fedtrain.pretraining import PretrainSummary


def command(
    out: Annotated[Path, typer.Option(
        help="MODEL/ directory to write: model.safetensors and card.json (must be new or empty "
             "unless --overwrite).", show_default=False)],
    mimic_dir: Annotated[Path | None, typer.Option(
        help="A MIMIC-IV-format release, extracted as `crypten-fl extract` does with its "
             "defaults. Output of `crypten-fl synth` is public by construction; anything else "
             "needs --public-data. Give this or --cohort.", show_default=False)] = None,
    cohort: Annotated[Path | None, typer.Option(
        help="An already extracted COHORT/ instead of --mimic-dir (needs --public-data).",
        show_default=False)] = None,
    public_data: Annotated[bool, typer.Option(
        "--public-data",
        help="Declare that the data is public and holds none of the federation's patients "
             "(pretraining on it then costs no ε). Not needed for a `synth` release; without it "
             "any other data is refused.")] = False,
    epochs: Annotated[int, typer.Option(help="Passes over the training split.")] = 20,
    split: Annotated[str, typer.Option(
        help="Train,val,test fractions of the data's patients (val: the card's held-out "
             "metrics; test is not used).")] = "0.85,0.15,0",
    batch_size: opt.BatchSize = opt.DEFAULT.batch_size,
    lr: opt.LearningRate = opt.DEFAULT.lr,
    seed: Annotated[int, typer.Option(
        help="Random seed of the patient split, the initialisation, shuffling and dropout.")] = 0,
    d_model: opt.DModel = opt.DEFAULT.d_model,
    heads: opt.Heads = opt.DEFAULT.n_heads,
    layers: opt.Layers = opt.DEFAULT.n_layers,
    dropout: opt.Dropout = opt.DEFAULT.dropout,
    pooling: opt.Pooling = opt.DEFAULT.pooling,
    stay_summary: opt.StaySummary = opt.DEFAULT.stay_summary,
    head_hidden: opt.HeadHidden = None,
    overwrite: opt.Overwrite = False,
) -> None:
    """Pretrain the ICU Transformer on public data, for `train --init-from MODEL`.

    Trains in one process on a synthetic (or declared public) release, split by patient.

    Writes MODEL/model.safetensors and MODEL/card.json (architecture, features, labels, bins).

    The card also holds the data's provenance, SHA-256s, settings and validation metrics.

    Use the same architecture options as the federation's `train` (docs/privacy.md).
    """
    options = dict(locals())
    from crypten_fl.fedtrain.pretraining import pretrain
    from crypten_fl.mimic_etl.partition.splits import parse_split

    def run() -> PretrainSummary:
        fractions = parse_split(split)
        config = opt.training_config({**options, "fed": ""})
        with progress_bars() as progress:
            return pretrain(config, out, epochs=epochs, mimic_dir=mimic_dir, cohort=cohort,
                            public_data=public_data, split=fractions, overwrite=overwrite,
                            progress=progress)

    summary = run_or_exit(run)
    card = summary.card
    rows = [[h["epoch"], h["train_loss"], h["val_macro_auroc"]]
            for h in card["training"]["history"]]
    console.print(make_table(f"{escape(str(summary.out))}: pretraining", ["epoch", "train loss",
                                                                          "val macro-AUROC"],
                             rows))
    per_label = card["validation"]["per_label"]
    console.print(make_table(
        f"validation ({card['validation']['n']:,} held-out stays)",
        ["disease", "auroc", "f1"],
        [*([name, m["auroc"], m["f1"]] for name, m in per_label.items()),
         ["macro", card["validation"]["macro"]["auroc"], card["validation"]["macro"]["f1"]]]))
    console.print(f"public data: {card['data']['public_because']}", highlight=False,
                  markup=False)
    point_to_json(summary.out / "card.json")
