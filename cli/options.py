"""Options shared by the commands that train (train, sweep): defined once, as Annotated aliases.

Their defaults are TrainConfig's (:data:`DEFAULT`), and :func:`training_config` turns a
command's options into a TrainConfig through one table of the names that differ, so an option
is declared in one place and every command that takes it behaves the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from crypten_fl.fedtrain.config import DEFAULT_SERVER_OPT, TrainConfig
from crypten_fl.fedtrain.local_training.dp_recipe import DP_BATCH, DP_LR, DP_LR_STEPS, MAX_DP_LR

#: every training option's default (a config without a federation)
DEFAULT = TrainConfig(fed="")
#: command-line option name -> TrainConfig field, where the two differ
FIELD = {"heads": "n_heads", "layers": "n_layers", "clip": "central_clip",
         "noise_multiplier": "central_noise_multiplier"}


def training_config(options: Mapping[str, Any]) -> TrainConfig:
    """The TrainConfig of a command's options (those that are not training options, such as
    --out or --overwrite, are ignored); options a command does not take keep their default."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {FIELD.get(k, k): v for k, v in options.items() if FIELD.get(k, k) in fields}
    values = {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}
    return TrainConfig(**values)

Rounds = Annotated[int, typer.Option(help="Federated rounds.")]
LocalEpochs = Annotated[int, typer.Option(help="Local epochs per round at each hospital.")]
BatchSize = Annotated[int, typer.Option(
    help="Mini-batch size (without DP-SGD; see --dp-batch-size).")]
LearningRate = Annotated[float, typer.Option(
    help="Adam learning rate (without DP-SGD; see --dp-lr).")]
DpDelta = Annotated[float | None, typer.Option(
    help="DP δ (default: n_train^-1.1 per hospital, below 1/n_train).")]
MaxGradNorm = Annotated[float | None, typer.Option(
    help="DP-SGD per-example gradient bound C (the sensitivity). Default: 1 (with Adam and "
         "automatic clipping its scale does not matter). Not used by vertical, whose bound "
         "follows from its features and clamp.")]
DpBatchSize = Annotated[int | None, typer.Option(
    help="DP-SGD expected (Poisson) batch size. Default: the DP recipe's, "
         f"min({DP_BATCH}, N/4) for a hospital of N training stays (docs/privacy.md). With "
         f"--dp-noise distributed: the federation's, default min({DP_BATCH} x hospitals, N/4) for "
         "N training stays in all. Split: the expected rows per hospital and step, default 64.")]
DpLr = Annotated[float | None, typer.Option(
    help=f"DP-SGD Adam learning rate. Default: the DP recipe's, {DP_LR:g} × √({DP_LR_STEPS} / "
    f"T) for a run of T DP-SGD steps, at most {MAX_DP_LR:g}; split: --lr; vertical: its "
    "encrypted gradient-descent rate, default 0.017 x n / (total noise multiplier), within "
    "[0.5, 8] (docs/privacy.md).")]
DpTrainable = Annotated[str | None, typer.Option(
    help="What DP-SGD trains: 'all' parameters, or the 'head' only (the encoder keeps its "
         "initial weights). Default: 'head' from a public pretrained model (--init-from), "
         "'all' otherwise (docs/privacy.md).")]
DpNoise = Annotated[str | None, typer.Option(
    help="Where the DP noise comes from (horizontal, fedper, split, vertical). 'local' "
         "(default): every hospital runs its own DP-SGD with the full noise, private even if "
         "all other hospitals collude. "
         "'distributed': every step is one DP-SGD step of the whole federation, each hospital "
         "adding a 1/(K-1) share of the noise variance to its clipped gradient sum before the "
         "secure sum: ε holds against any one other hospital, weaker against colluding ones "
         "(privacy.json lists them), with far less noise per record (docs/privacy.md); "
         "FedPer's personal layers are never summed and keep the full noise. "
         "Split and vertical: every party adds a 1/(P-1) share of the noise on the encrypted "
         "gradient sum (split: the server layer's) instead of the full noise, with the same "
         "guarantee. 'dealer' (split, vertical): the TTP dealer their encrypted models already "
         "trust draws that noise once and secret-shares it: the calibrated noise exactly, "
         "private against any coalition of parties as long as the dealer colludes with none.")]
DpClipping = Annotated[str | None, typer.Option(
    help="DP-SGD per-example clipping: 'automatic' (g·C/(‖g‖+0.01), Bu et al. 2023; default) or "
         "'flat' (g·min(1, C/‖g‖), Opacus).")]
Secure = Annotated[bool, typer.Option(
    "--secure/--plain",
    help="Aggregate with CrypTen secret sharing (default) or a plaintext all-reduce (baseline).")]
DModel = Annotated[int, typer.Option(help="Transformer width.")]
Heads = Annotated[int, typer.Option(help="Attention heads.")]
Layers = Annotated[int, typer.Option(help="Transformer encoder layers.")]
Dropout = Annotated[float | None, typer.Option(
    help="Dropout rate. Default: 0.1, or with --dp-epsilon the DP recipe's 0 (noise, not "
         "overfitting, limits DP training; docs/privacy.md).", show_default=False)]
Pooling = Annotated[str, typer.Option(help="'cls' token or 'mean' pooling.")]
StaySummary = Annotated[bool, typer.Option(
    "--stay-summary/--no-stay-summary",
    help="The head also reads each stay's per-feature summaries (mean, max, min, last value, "
         "fraction of bins observed) and its static vector, beside the Transformer's "
         "representation (docs/privacy.md, 'Stay summaries and a linear head'). Vertical's "
         "bottom models never add them.")]
HeadHidden = Annotated[int | None, typer.Option(
    help="Width of a hidden ReLU layer in the head; 0: the head is one linear layer. Default: "
         "64 for fedper and fedmtl (a shared hidden layer before their personal output layer), "
         "0 otherwise.", show_default=False)]
PersonalLayers = Annotated[int, typer.Option(
    help="fedper/fedmtl: head layers kept at each hospital (counted from the output).")]
MtlLambda = Annotated[float, typer.Option(
    help="fedmtl: strength λ of the pull of each head toward the mean of all heads.")]
Cut = Annotated[int, typer.Option(
    help="split: head layers in the encrypted server model (1 = output layer, 2 = + hidden).")]
EncryptedLr = Annotated[float, typer.Option(
    help="split/vertical: SGD learning rate of the encrypted server/top model.")]
ServerOpt = Annotated[str | None, typer.Option(
    help="Server optimizer applied to the securely revealed mean update each round (strategies "
         "that share updates): fedavg, fedavgm, fedadam, fedyogi or fedadagrad (Reddi et al. "
         "2021). Post-processing only: it weakens nothing (docs/strategies.md). "
         f"Default: {DEFAULT_SERVER_OPT}.")]
ServerLr = Annotated[float | None, typer.Option(
    help="Server learning rate η (default: 1 for fedavg/fedavgm, 0.01 for the adaptive ones).")]
ServerMomentum = Annotated[float | None, typer.Option(
    help="Server β₁: momentum of fedavgm (default 0.9), first-moment decay of fedadam/fedyogi "
         "(default 0.9; fedadagrad 0).")]
ServerBeta2 = Annotated[float | None, typer.Option(
    help="Server β₂: second-moment decay of fedadam/fedyogi (default 0.99).")]
ServerTau = Annotated[float | None, typer.Option(
    help="Server τ: adaptivity of fedadam/fedyogi/fedadagrad, x += η·m/(√v + τ) "
         "(default 0.001).")]
ProxMu = Annotated[float, typer.Option(
    help="FedProx: weight μ of the proximal term (μ/2)·‖w − w_global‖² on the shared "
         "parameters during local training (Li et al. 2020); 0 turns it off.")]
Timeout = Annotated[float, typer.Option(
    help="Seconds a hospital waits for a silent peer before the run stops.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite",
    help="Replace an existing --out that an earlier run of this same command wrote (it carries "
         "the .crypten-fl-output marker), once the new output is complete. Never replaces a "
         "folder crypten-fl did not write, nor anything the command reads.")]
InsecureTransport = Annotated[bool, typer.Option(
    "--insecure-transport",
    help="Send the traffic between hospitals over plain TCP (gloo) instead of the federation's "
         "mutually authenticated TLS channels. Exposes CrypTen's seeds, hence every share, to "
         "anyone who sees the network, and lets anyone who reaches the rendezvous port join. "
         "Off by default; for benchmarks on a trusted network only (docs/transport.md).")]
CentralDp = Annotated[bool, typer.Option(
    "--central-dp",
    help="Hospital-level DP on the aggregate (strategies that share model updates; others "
         "refuse it, docs/strategies.md): each hospital clips its model update to --clip and "
         "adds its share of Gaussian noise before secure aggregation; needs --noise-multiplier "
         "or --central-epsilon. Off by default (docs/privacy.md).")]
Clip = Annotated[float, typer.Option(
    "--clip", help="--central-dp: L2 bound C on each hospital's model update per round.")]
NoiseMultiplier = Annotated[float | None, typer.Option(
    "--noise-multiplier",
    help="--central-dp: noise std of the revealed sum of updates, in units of --clip. "
         "No default: give this or --central-epsilon.")]
CentralEpsilon = Annotated[float | None, typer.Option(
    help="--central-dp: hospital-level ε over the whole run; calibrates --noise-multiplier "
         "(RDP accountant). No default: give this or --noise-multiplier.")]
CentralDelta = Annotated[float | None, typer.Option(
    help="--central-dp: hospital-level δ (default 1e-5; must be below 1 / number of hospitals).")]
MaxUpdateNorm = Annotated[float | None, typer.Option(
    help="Reject (and log) a hospital's update of a round whose L2 norm exceeds this (horizontal, "
         "fedper, fedmtl); updates with non-finite values are always rejected. Default: no bound.")]
InitFrom = Annotated[Path | None, typer.Option(
    help="Start every hospital from this model of `crypten-fl pretrain` (pretrained on public "
         "data) instead of the --seed's random initialisation. Its architecture, features, labels "
         "and time bins must match the run; it costs no ε (docs/privacy.md, \"Public "
         "pretraining\"). With --strategy vertical (and --dp-epsilon) each party maps its "
         "features by the model's public feature map instead (docs/privacy.md, \"Vertical "
         "from a public feature map\"). Default: random initialisation.")]
