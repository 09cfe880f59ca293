"""TrainConfig: every option of `crypten-fl train`, validated before any process starts."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.local_training import dp_recipe
from crypten_fl.fedtrain.local_training.dp_recipe import CLIPPING_MODES, TRAINABLE_PARTS

#: server optimizer name -> (default η, default β₁, default β₂, default τ)
SERVER_OPT_DEFAULTS: dict[str, tuple[float, float, float, float]] = {
    "fedavg": (1.0, 0.0, 0.0, 0.0),
    "fedavgm": (1.0, 0.9, 0.0, 0.0),
    "fedadagrad": (0.01, 0.0, 0.0, 1e-3),
    "fedadam": (0.01, 0.9, 0.99, 1e-3),
    "fedyogi": (0.01, 0.9, 0.99, 1e-3),
}
SERVER_OPTIMIZERS = tuple(SERVER_OPT_DEFAULTS)
#: the server optimizer of strategies that share updates when --server-opt is not given
DEFAULT_SERVER_OPT = "fedavg"


#: --head-hidden of strategies whose personal layers are the head's last ones: with a linear head
#: each hospital would fit the whole head, the stay summaries' weights included, on its own data
#: (demo federation: FedPer 0.846 with a linear head, 0.860 with a shared hidden layer of 64;
#: docs/strategies.md). Every other strategy: 0, a linear head.
HIDDEN_HEAD_STRATEGIES = {"fedper": 64, "fedmtl": 64}
#: the model options of run configs and pretrained cards written before the stay summaries existed
#: (they have no ``stay_summary`` field): what evaluate, audit and --init-from rebuild for them
MODEL_BEFORE_STAY_SUMMARY: dict[str, Any] = {"stay_summary": False, "head_hidden": 64}


@dataclass(frozen=True)
class ServerOptSettings:
    """A server optimizer and its hyper-parameters (None: the optimizer's default)."""

    name: str = "fedavg"
    lr: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    tau: float | None = None

    def resolved(self) -> tuple[float, float, float, float]:
        """(η, β₁, β₂, τ) with defaults filled in."""
        lr, beta1, beta2, tau = SERVER_OPT_DEFAULTS[self.name]
        return (lr if self.lr is None else self.lr, beta1 if self.beta1 is None else self.beta1,
                beta2 if self.beta2 is None else self.beta2, tau if self.tau is None else self.tau)

    def problems(self) -> list[str]:
        """What is wrong with these settings, as option-naming messages (empty: valid)."""
        if self.name not in SERVER_OPT_DEFAULTS:
            return [f"--server-opt must be one of {', '.join(SERVER_OPTIMIZERS)}, "
                    f"not {self.name!r}"]
        lr, beta1, beta2, tau = self.resolved()
        out = []
        if not (math.isfinite(lr) and lr > 0):
            out.append("--server-lr must be a positive finite number")
        if not 0 <= beta1 < 1:
            out.append("--server-momentum must be in [0, 1)")
        if not 0 <= beta2 < 1:
            out.append("--server-beta2 must be in [0, 1)")
        if not (math.isfinite(tau) and tau >= 0):
            out.append("--server-tau must be a finite number >= 0")
        if self.name in ("fedadagrad", "fedadam", "fedyogi") and tau == 0:
            out.append(f"--server-tau must be > 0 for {self.name} (it divides by √v + τ)")
        return out

    def is_plain_fedavg(self) -> bool:
        """Whether this is FedAvg itself (the new model is exactly the mean)."""
        return self.name == "fedavg" and self.resolved()[0] == 1.0


#: the options of DP-SGD besides --dp-epsilon (each needs it; None: the DP recipe's choice)
DP_SGD_OPTIONS = ("dp_delta", "max_grad_norm", "dp_batch_size", "dp_lr", "dp_clipping",
                  "dp_trainable", "dp_noise")
#: where DP noise is added: each hospital's own steps ("local"), one share per hospital of every
#: step's noise on the secure sum of the federation's gradients ("distributed"), or one draw by
#: the TTP dealer, secret-shared, on split's and vertical's encrypted gradients ("dealer")
DP_NOISE_MODES = ("local", "distributed", "dealer")
#: the smallest --dp-epsilon: every mechanism's accountant certifies it at the δ of any real
#: cohort (split and vertical use RDP orders up to 496: ε down to ≈ (log(1/δ) − log 496)/495,
#: 0.02 at δ = 10⁻⁷; DP-SGD's PRV has no such floor)
MIN_DP_EPSILON = 0.05


@dataclass
class TrainConfig:
    """Options of one training run.

    Defaults: the reference study's model, batch and rounds; 2 local epochs at Adam 2e-3 and
    plain FedAvg on the server, chosen on the synthetic federations so that federated training
    beats each hospital alone and matches pooled training (docs/strategies.md, "Defaults").
    """

    fed: str
    strategy: str = "horizontal"
    rounds: int = 20
    local_epochs: int = 2
    batch_size: int = 128
    lr: float = 2e-3
    dp_epsilon: float | None = None
    dp_delta: float | None = None
    max_grad_norm: float | None = None
    dp_batch_size: int | None = None
    dp_lr: float | None = None
    dp_clipping: str | None = None
    dp_trainable: str | None = None
    dp_noise: str | None = None
    central_dp: bool = False
    central_clip: float = 1.0
    central_noise_multiplier: float | None = None
    central_epsilon: float | None = None
    central_delta: float | None = None
    max_update_norm: float | None = None
    secure: bool = True
    seed: int = 0
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    dim_feedforward: int = 128
    #: None: the DP recipe's (0) with --dp-epsilon, else 0.1 (:meth:`model_dropout`)
    dropout: float | None = None
    pooling: str = "cls"
    #: the head also reads each stay's per-feature summaries and static vector (models/stay_summary)
    stay_summary: bool = True
    #: width of the head's hidden layer; 0: the head is one Linear layer; None: the strategy's
    #: default (:data:`HIDDEN_HEAD_STRATEGIES`), resolved when the config is made
    head_hidden: int | None = None
    personal_layers: int = 1
    mtl_lambda: float = 0.1
    cut: int = 1
    encrypted_lr: float = 0.05
    server_opt: str | None = None
    server_lr: float | None = None
    server_momentum: float | None = None
    server_beta2: float | None = None
    server_tau: float | None = None
    prox_mu: float = 0.0
    mask_degree: int | None = None
    min_hospitals: int | None = None
    timeout: float = 300.0
    threads_per_party: int = 1
    insecure_transport: bool = False
    #: MODEL directory of `crypten-fl pretrain`: every hospital starts from its public weights
    init_from: str | None = None
    #: SHA-256 of those weights, filled in by `train` (every hospital checks its copy against it)
    init_from_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.head_hidden is None:  # frozen: set once, here
            object.__setattr__(self, "head_hidden",
                               HIDDEN_HEAD_STRATEGIES.get(self.strategy, 0))

    def validate(self) -> TrainConfig:
        """Raise UserError naming the option for any value out of range. (What the chosen
        strategy can do is checked by ``fedtrain.strategies.validate``, which calls this.)"""
        self._check_types()
        checks: list[tuple[bool, str]] = [
            (self.n_heads >= 1, "--heads must be >= 1"),
            (self.d_model >= 1, "--d-model must be >= 1"),
            (self.n_layers >= 1, "--layers must be >= 1"),
            (self.dim_feedforward >= 1, "dim_feedforward must be >= 1"),
            (self.head_hidden is not None and self.head_hidden >= 0,
             "--head-hidden must be >= 0 (0: a linear head)"),
            (self.personal_layers <= self.head_layers,
             f"--personal-layers must be at most {self.head_layers} (the head has "
             + ("a hidden and an output layer)" if self.head_hidden else
                "one layer; --head-hidden N gives it a hidden layer)")),
            (math.isfinite(self.encrypted_lr), "--encrypted-lr must be a finite number"),
            (math.isfinite(self.prox_mu) and self.prox_mu >= 0,
             "--prox-mu must be a finite number >= 0"),
            (math.isfinite(self.timeout) and self.timeout <= 86_400,
             "--timeout must be a finite number of seconds (at most a day)"),
            (self.rounds >= 1, "--rounds must be >= 1"),
            (self.local_epochs >= 1, "--local-epochs must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number"),
            (self.dp_epsilon is None or (self.dp_epsilon > 0 and math.isfinite(self.dp_epsilon)),
             "--dp-epsilon must be a positive finite number"),
            (self.dp_epsilon is None or not self.dp_epsilon < MIN_DP_EPSILON,
             f"--dp-epsilon must be at least {MIN_DP_EPSILON} (below it the noise leaves no "
             "model worth training, and not every mechanism's accountant can certify it)"),
            (self.dp_delta is None or 0 < self.dp_delta < 1, "--dp-delta must be in (0, 1)"),
            (self.max_grad_norm is None
             or (self.max_grad_norm > 0 and math.isfinite(self.max_grad_norm)),
             "--max-grad-norm must be a positive finite number"),
            (self.dp_batch_size is None or self.dp_batch_size >= 1, "--dp-batch-size must be >= 1"),
            (self.dp_lr is None or (self.dp_lr > 0 and math.isfinite(self.dp_lr)),
             "--dp-lr must be a positive finite number"),
            (self.dp_clipping is None or self.dp_clipping in CLIPPING_MODES,
             f"--dp-clipping must be one of {', '.join(CLIPPING_MODES)}"),
            (self.dp_trainable is None or self.dp_trainable in TRAINABLE_PARTS,
             f"--dp-trainable must be one of {', '.join(TRAINABLE_PARTS)}"),
            (self.dp_noise is None or self.dp_noise in DP_NOISE_MODES,
             f"--dp-noise must be one of {', '.join(DP_NOISE_MODES)}"),
            (self.max_update_norm is None or self.max_update_norm > 0,
             "--max-update-norm must be > 0"),
            (self.n_heads >= 1 and self.d_model % self.n_heads == 0,
             "--d-model must be divisible by --heads"),
            (self.pooling in ("cls", "mean"), "--pooling must be 'cls' or 'mean'"),
            (self.dropout is None or 0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.personal_layers >= 0, "--personal-layers must be >= 0"),
            (self.mtl_lambda >= 0, "--mtl-lambda must be >= 0"),
            (self.timeout > 0, "--timeout must be > 0"),
            (self.mask_degree is None or (self.mask_degree >= 2 and self.mask_degree % 2 == 0),
             "--mask-degree must be an even number >= 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        if self.min_hospitals is not None and self.min_hospitals < 3:
            raise UserError("--min-hospitals must be at least 3: with two hospitals left, each "
                            "would learn the other's update from their sum")
        if self.min_hospitals is not None and not self.secure:
            raise UserError("--min-hospitals needs --secure (the plain baseline does not re-form)")
        if not 1 <= self.cut <= 2:
            raise UserError("--cut must be 1 or 2 (head layers in the encrypted server model)")
        if self.cut > self.head_layers:
            raise UserError("--cut 2 needs a head with a hidden layer (--head-hidden N); the "
                            "head is one linear layer")
        if self.encrypted_lr <= 0:
            raise UserError("--encrypted-lr must be > 0")
        for problem in self.server_settings().problems():
            raise UserError(problem)
        if self.dp_epsilon is None:
            for name in DP_SGD_OPTIONS:
                if getattr(self, name) is not None:
                    raise UserError(f"--{name.replace('_', '-')} needs --dp-epsilon (DP-SGD is "
                                    "off without it)")
        if self.init_from_sha256 is not None and self.init_from is None:
            raise UserError("training config: init_from_sha256 is set without init_from")
        return self

    def _check_types(self) -> None:
        """A config read from JSON may hold anything: each field must have its declared kind."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            if value is None and "None" in kind:
                continue
            ok = (isinstance(value, str) if kind.startswith("str") else
                  isinstance(value, bool) if kind.startswith("bool") else
                  isinstance(value, int) and not isinstance(value, bool)
                  if kind.startswith("int") else
                  isinstance(value, int | float) and not isinstance(value, bool)
                  if kind.startswith("float") else True)
            if not ok:
                raise UserError(f"training config: {f.name} = {value!r} is not a valid "
                                f"{kind.split(' ')[0]}")

    @property
    def head_layers(self) -> int:
        """Layers of the model's head: the output layer, after a hidden one if ``head_hidden``."""
        return 2 if self.head_hidden else 1

    @property
    def model_dropout(self) -> float:
        """The model's dropout: ``--dropout``, else the DP recipe's with DP, else 0.1."""
        return dp_recipe.model_dropout(self.dropout, private=self.dp_epsilon is not None)

    @property
    def distributed_dp(self) -> bool:
        """DP-SGD with distributed noise: one DP-SGD step of the whole federation per secure sum
        (fedtrain/local_training/dp_distributed.py)."""
        return self.dp_epsilon is not None and self.dp_noise == "distributed"

    @property
    def dealer_dp(self) -> bool:
        """The TTP dealer draws the DP noise of split's and vertical's encrypted gradient sums
        (fedtrain/secure/dealer_noise.py)."""
        return self.dp_epsilon is not None and self.dp_noise == "dealer"

    @property
    def dp_noise_mode(self) -> str:
        """``--dp-noise``, ``local`` by default."""
        return self.dp_noise or "local"

    def with_dp_sgd(self, epsilon: float | None) -> TrainConfig:
        """This config at DP-SGD budget ``epsilon``; None turns DP-SGD and its options off."""
        if epsilon is not None:
            return dataclasses.replace(self, dp_epsilon=epsilon)
        return dataclasses.replace(self, dp_epsilon=None, **dict.fromkeys(DP_SGD_OPTIONS))

    def for_final_model(self) -> TrainConfig:
        """This config for a job that loads the run's final model (evaluate, audit): no DP-SGD
        trainer and no initial weights to read."""
        return dataclasses.replace(self.with_dp_sgd(None), init_from=None, init_from_sha256=None)

    def server_settings(self) -> ServerOptSettings:
        """The server optimizer applied to the revealed mean update each round."""
        return ServerOptSettings(self.server_opt or DEFAULT_SERVER_OPT, self.server_lr,
                                 self.server_momentum, self.server_beta2, self.server_tau)

    def server_options_given(self) -> list[str]:
        """The server optimizer options set explicitly (they need a strategy that shares
        updates; the default optimizer applies to those strategies only)."""
        given = {"--server-opt": self.server_opt, "--server-lr": self.server_lr,
                 "--server-momentum": self.server_momentum, "--server-beta2": self.server_beta2,
                 "--server-tau": self.server_tau}
        return [option for option, value in given.items() if value is not None]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        if "server_lr" in data and "server_opt" not in data and "encrypted_lr" not in data:
            # written before --server-opt: its server_lr was split/vertical's encrypted rate
            data = {**data, "encrypted_lr": data["server_lr"], "server_lr": None}  # split/vertical
        data = cls.with_model_of_its_time(data)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @staticmethod
    def with_model_of_its_time(options: dict[str, Any]) -> dict[str, Any]:
        """Model options of a run config or pretrained card, the options that it predates filled
        in with the model of its time (:data:`MODEL_BEFORE_STAY_SUMMARY`)."""
        if "stay_summary" in options:
            return options
        return {**MODEL_BEFORE_STAY_SUMMARY, **options}

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        try:
            data = json.loads(Path(path).read_text())
            if not isinstance(data, dict):
                raise TypeError("expected a JSON object")
            return cls.from_json(data).validate()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as err:
            raise UserError(f"{path}: not a readable training config ({err})") from err
        except UserError as err:
            raise UserError(f"{path}: {err}") from None
