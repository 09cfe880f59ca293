"""Split learning across hospitals, SplitFed v1 style (Thapa et al., AAAI 2022), server encrypted.

Each hospital holds the client part of the model (input projection, Transformer encoder, the head
layers before the cut) and trains it in the clear on its own data. The server part — the last
``--cut`` head layers — is an MLP whose weights are secret-shared among all hospitals
(fedtrain/secure/encrypted_head.py). In every step each hospital secret-shares its cut-layer
activations; the encrypted server computes the logits; the logits of hospital k's rows are
revealed only to hospital k, which computes the loss gradient with its own labels (labels never
leave the hospital) and secret-shares it back; after the encrypted backward pass the gradient at
the cut of hospital k's rows is revealed only to hospital k, which back-propagates through its
client part. After each round the client parts are securely averaged. At the end of training the
server weights are revealed to all hospitals, completing the final model.

With ``--dp-epsilon`` (``--cut 1`` only) each hospital Poisson-samples its rows from its CSPRNG,
bounds the per-example gradient of the server layer by scaling its own g_i, adds Gaussian noise
to its share of the encrypted server gradient, and trains its client part with clipped, noised
per-example gradients; one accountant per hospital (fedtrain/local_training/dp_exchange.py).
With ``--dp-noise distributed`` each hospital adds a 1/(K − 1) share of the server layer's noise
variance instead of the full noise (the guarantee then holds against any one other hospital).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.preprocess import ModelInputs
from crypten_fl.fedtrain.local_training import dp_recipe
from crypten_fl.fedtrain.local_training.dp_exchange import (
    ExchangeAccountant,
    add_noise_to_share,
    clip_linear_gradients,
    noise_report,
    noise_std,
    private_optimizer,
)
from crypten_fl.fedtrain.local_training.proximal import ProximalTerm
from crypten_fl.fedtrain.models.dp_compat import make_private_compatible
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.encrypted_head import EncryptedHead, reveal_to_owners, share_blocks
from crypten_fl.fedtrain.secure.reveal_audit import revealing
from crypten_fl.fedtrain.secure_noise import SecureRandom
from crypten_fl.fedtrain.sessions import lockstep
from crypten_fl.fedtrain.strategies.base import ParameterSharing, RoundResult
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits
from torch.utils.data import DataLoader, TensorDataset

PREDICT_CHUNK = 1024
#: with DP, the expected rows per hospital and step (S = ⌈largest hospital / DP_BATCH⌉ steps
#: per epoch, sample rate 1/S): more, smaller steps than at 128 (demo federation, ε = 3: 0.752
#: against 0.730–0.743 with local noise, 0.778 against 0.754 with distributed noise; at 32: 0.736)
DP_BATCH = 64
DP_MECHANISM = ("DP-SGD over the whole model, per hospital: Poisson sampling of its rows (rate "
                "1/steps per epoch, from its CSPRNG; the block sizes are public); client part: "
                "per-example gradients clipped to C, Gaussian noise of std nu*C; server layer: "
                "per-example gradient (g_i h_i^T, g_i) clipped to C by scaling g_i before it is "
                "shared, Gaussian noise of std nu*C on the encrypted gradient (--dp-noise local: "
                "every hospital adds its own, full noise to its share; distributed: each a "
                "1/(K-1) share of the variance; dealer: the TTP dealer's one draw, "
                "secret-shared). Two mechanisms per "
                "step on the same sample: one accountant step of multiplier nu/sqrt(2)")


def _server_layout(head: nn.Sequential, cut: int) -> nn.Sequential:
    """Plain copy of the last ``cut`` head layers, flattened to Linear/ReLU (dropout dropped)."""
    layers: list[nn.Module] = []
    for block in head[len(head) - cut :]:
        parts = block if isinstance(block, nn.Sequential) else [block]
        layers += [copy.deepcopy(m) for m in parts if isinstance(m, nn.Linear | nn.ReLU)]
    return nn.Sequential(*layers)


class Split(ParameterSharing):
    """Client parts averaged securely each round; encrypted server part trained per step."""

    name = "split"
    summary = "split learning: cut-layer activations into an encrypted server model"
    needs_ttp = True
    uses_dp_recipe = False  # its own DP mechanisms (fedtrain/local_training/dp_exchange.py)
    own_dp_options = frozenset({"--dp-batch-size"})  # its expected rows per hospital and step
    shares_updates = True  # its client parts, through the same checks (not --central-dp)
    receives = frozenset({tags.MOMENTS, tags.WEIGHTED_MODEL_SUM, tags.METRIC_HISTOGRAMS,
                          tags.OWN_ROW_LOGITS,
                          tags.OWN_CUT_GRADIENT, tags.FINAL_SERVER_WEIGHTS})
    reveals = ("to hospital k: the logits of its own rows and the gradient at the cut of its own "
               "rows; to all: each hospital's training-set size, the weighted sum of the client "
               "parts each round, and the server weights once at the end")
    final_model = "model"  # client part and revealed server part, written by hospital 0

    #: with --dp-noise distributed each hospital adds a 1/(K-1) share of the server layer's noise
    supports_distributed_dp = True
    supports_dealer_dp = True  # the server layer's noise; the client parts' stays local

    @classmethod
    def receives_with(cls, config: TrainConfig) -> frozenset[str]:
        """With --cut 2 also the masked openings of the encrypted ReLU's comparisons."""
        receives = super().receives_with(config)
        return receives | ({tags.MASKED_OPENINGS} if config.cut == 2 else set())

    def __init__(self, config, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, session)
        self.model = session.trainer.model
        self.cut = config.cut
        self.server = EncryptedHead(_server_layout(self.model.head, self.cut))
        self.sizes = lockstep.all_sizes(session.n_train)
        self.steps, self.batches = lockstep.plan(self.sizes, self._batch_size(config))
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + session.rank)
        train = session.train
        self.dataset = TensorDataset(train.x, train.static, train.labels)
        self.revealed = False
        self.accountant: ExchangeAccountant | None = None
        self._sampled: list[int] = []  # with DP: every hospital's rows in the current step
        if config.dp_epsilon is not None:
            self._make_private(config)

    @staticmethod
    def _batch_size(config: TrainConfig) -> int:
        """Rows per hospital and step: --batch-size, or with DP the expected sample,
        --dp-batch-size (default DP_BATCH: smaller than without DP, docs/privacy.md)."""
        if config.dp_epsilon is None:
            return config.batch_size
        return config.dp_batch_size or DP_BATCH

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        super().check_config(config)
        if config.dp_epsilon is not None and config.cut != 1:
            raise UserError("--dp-epsilon with --strategy split needs --cut 1 (the per-example "
                            "gradient of a two-layer encrypted server cannot be bounded outside "
                            "the encryption)")

    @staticmethod
    def open_session(rank: int, spec: dict[str, Any], config: TrainConfig) -> Any:
        """The hospital session, its trainer without DP-SGD: split's DP is its own."""
        from crypten_fl.fedtrain.sessions.hospital import open_session

        return open_session(rank, spec, config.with_dp_sgd(None))

    def _make_private(self, config: TrainConfig) -> None:
        """One accountant for the run; the client part trained with clipped, noised per-example
        gradients (Opacus hooks on a DP-compatible copy; the server layer stays frozen here)."""
        trainer, n = self.session.trainer, self.session.n_train
        assert config.dp_epsilon is not None
        # the recipe's bound C; the learning rate stays --lr unless --dp-lr is given (the
        # recipe's rate was chosen for DP-SGD and not measured on these mechanisms)
        self.clip, lr = dp_recipe.clip_bound(config.max_grad_norm), config.dp_lr or config.lr
        self.rng = SecureRandom()
        self.accountant = ExchangeAccountant(
            target_epsilon=config.dp_epsilon,
            delta=config.dp_delta if config.dp_delta is not None else dp_recipe.default_delta(n),
            sample_rate=1.0 / self.steps,
            planned_steps=self.steps * config.rounds * config.local_epochs, mechanisms=2,
            clip=self.clip, description=DP_MECHANISM)
        #: the std of the noise this hospital adds to its share of the server layer's gradient:
        #: ν·C, or with --dp-noise distributed its 1/(K − 1) share of the variance
        self.server_noise_std = noise_std(self.accountant.noise_multiplier, self.clip,
                                          len(self.sizes), config.dp_noise_mode)
        model = make_private_compatible(trainer.model)
        for name, param in model.named_parameters():
            param.requires_grad_(self.is_shared(name))
        adam = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        trainer.module, trainer.optimizer = private_optimizer(
            model, adam, noise_multiplier=self.accountant.noise_multiplier,
            clip=self.clip, expected_batch_size=n / self.steps, rng=self.rng)
        self.model = trainer.model

    def privacy_report(self) -> dict[str, Any] | None:
        if self.accountant is None:
            return None
        report = self.accountant.report()
        # the server layer's noise follows --dp-noise; the client part's stays local
        return {**report, **noise_report(report, self.config.dp_noise_mode, len(self.sizes),
                                         self.server_noise_std, local_mechanisms=1)}

    def _sample(self) -> torch.Tensor:
        """This step's rows: each independently with probability 1/steps, from the CSPRNG; every
        hospital learns every block size."""
        n = self.session.n_train
        chosen = torch.from_numpy(np.nonzero(self.rng.uniform(n) < 1.0 / self.steps)[0])
        self._sampled = lockstep.all_sizes(len(chosen))
        return chosen

    def _step_sizes(self, step: int) -> list[int]:
        if self.accountant is not None:
            return self._sampled
        return lockstep.block_sizes(self.sizes, self.batches, step)

    def is_shared(self, key: str) -> bool:
        return self.model.is_shared_key(key, self.cut)

    def _server_step(self, h: torch.Tensor, y: torch.Tensor, step: int) -> tuple[float, int]:
        rank, sizes = self.session.rank, self._step_sizes(step)
        total = sum(sizes)
        dp = self.accountant is not None
        blocks, enc = share_blocks(h.detach(), [(s, h.shape[1]) for s in sizes], rank, 0)
        self.server.zero_grad()
        z = self.server(enc)
        mine = reveal_to_owners(z, sizes, rank, 0, tags.OWN_ROW_LOGITS)
        g = torch.sigmoid(mine) - y if mine is not None else torch.zeros(0, z.size(1))
        if dp:  # the owner bounds each row's server gradient: it knows g_i and h_i
            g = clip_linear_gradients(g, h, self.clip)
        _, g_enc = share_blocks(g, [(s, z.size(1)) for s in sizes], rank, 0)
        z.backward(g_enc)
        if self.accountant is not None:
            add_noise_to_share([p.grad for p in self.server.model.parameters()],
                               self.server_noise_std, self.rng,
                               dealer=self.config.dealer_dp)
            self.accountant.step()
        self.server.sgd_step(self.config.encrypted_lr / total)
        grads = [b.grad for b in blocks]
        owners = [k for k, s in enumerate(sizes) if s]
        grad_h = None
        for k, grad in zip(owners, grads, strict=True):
            with revealing(tags.OWN_CUT_GRADIENT):
                plain = grad.get_plain_text(dst=k)
            if k == rank:
                grad_h = plain
        if mine is None:
            return 0.0, 0
        if grad_h is not None:  # DP: per-row gradients (the DP optimizer averages)
            h.backward(grad_h if dp else grad_h / total)
        loss = binary_cross_entropy_with_logits(mine, y, reduction="sum").item() / y.shape[1]
        return loss, len(y)

    def train_round(self, round_index: int) -> RoundResult:
        trainer, model = self.session.trainer, self.model
        start, proximal = trainer.state_dict(), self.proximal_term()
        model.train()
        total_loss, seen = 0.0, 0
        for _ in range(self.config.local_epochs):
            batch = max(self.batches[self.session.rank], 1)
            loader = iter(DataLoader(self.dataset, batch_size=batch, shuffle=True,
                                     generator=self.generator))
            for step in range(self.steps):
                if self.accountant is not None:
                    rows = self._sample()
                    x, s, y = (t[rows] for t in self.dataset.tensors) if len(rows) else (
                        None, None, None)
                else:
                    x, s, y = next(loader, (None, None, None))
                trainer.optimizer.zero_grad(set_to_none=True)
                if x is None:
                    width = self.server.layout[0].in_features
                    h = torch.zeros(0, width, requires_grad=True)
                    y = torch.zeros(0, 1)
                else:
                    h = model.lower(x, s, self.cut)
                loss, n = self._server_step(h, y, step)
                if n:
                    self._client_step(proximal)
                total_loss, seen = total_loss + loss, seen + n
        # the client parts are averaged through the pipeline every update-sharing strategy uses:
        # checked (non-finite, --max-update-norm), then securely summed
        return RoundResult(train_loss=total_loss / max(seen, 1),
                           exchanged_elements=self.share_update(round_index, start))

    def _client_step(self, proximal: ProximalTerm | None) -> None:
        """The client part's optimizer step; with DP the proximal term is added after clipping
        and noise (it touches no data)."""
        trainer = self.session.trainer
        if self.accountant is None:
            trainer.step(proximal)
        elif trainer.optimizer.pre_step():  # type: ignore[attr-defined]
            if proximal is not None:
                proximal.add_gradient()
            trainer.optimizer.original_optimizer.step()  # type: ignore[attr-defined]

    @torch.no_grad()
    def predict(self, inputs: ModelInputs) -> np.ndarray:
        model = self.model
        model.eval()
        try:
            if self.revealed:
                return torch.sigmoid(model(inputs.x, inputs.static)).numpy()
            return self._predict_encrypted(inputs)
        finally:
            model.train()

    def _predict_encrypted(self, inputs: ModelInputs) -> np.ndarray:
        """All hospitals take part; the probabilities of each hospital's rows only reach it."""
        sizes = lockstep.all_sizes(len(inputs))
        steps, chunks = lockstep.plan(sizes, PREDICT_CHUNK)
        rank, out = self.session.rank, []
        with crypten.no_grad():
            for step in range(steps):
                rows = lockstep.block_sizes(sizes, chunks, step)
                start = step * chunks[rank]
                x = inputs.x[start : start + rows[rank]]
                s = inputs.static[start : start + rows[rank]]
                h = self.model.lower(x, s, self.cut)
                _, enc = share_blocks(h, [(r, h.shape[1]) for r in rows], rank, 0)
                mine = reveal_to_owners(self.server(enc), rows, rank, 0, tags.OWN_ROW_LOGITS)
                if mine is not None:
                    out.append(torch.sigmoid(mine))
        return torch.cat(out).numpy() if out else np.zeros((0, 12), dtype=np.float32)

    def finish(self) -> None:
        """Reveal the trained server weights into this hospital's model (the final model)."""
        plain = self.server.reveal()
        linears = [m for m in plain if isinstance(m, nn.Linear)]
        targets = [m for block in self.model.head[len(self.model.head) - self.cut :]
                   for m in (block if isinstance(block, nn.Sequential) else [block])
                   if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for src, dst in zip(linears, targets, strict=True):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
        self.revealed = True

    def load_final(self, run_dir: Path, index: int | None = None) -> None:
        """Load the saved final model; it holds the revealed server part, so predict in clear."""
        super().load_final(run_dir, index)
        self.revealed = True

    def extra_state(self) -> dict[str, torch.Tensor]:
        state = {f"server.{k}": v for k, v in self.server.shares().items()}
        state["generator"] = self.generator.get_state()
        if self.accountant is not None:
            state["dp_history"] = self.accountant.state()
        return state

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.server.load_shares({k[len("server."):]: v for k, v in state.items()
                                 if k.startswith("server.")})
        self.generator.set_state(state["generator"])
        if self.accountant is not None:
            self.accountant.load_state(state["dp_history"])

    def models_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.session.rank != 0:
            return {}
        return {"model": self.session.trainer.state_dict()}
