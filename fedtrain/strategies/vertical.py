"""Vertical federated learning: parties hold different features of the same patients.

Rows are aligned by private set intersection (fedtrain/secure/psi.py). Each party runs a bottom
model (a Transformer encoder over its own feature group) in the clear; the bottom outputs are
secret-shared, column block by column block, into an encrypted top model (an MLP whose weights
are secret-shared among all parties, fedtrain/secure/encrypted_head.py). The logits are revealed
only to the label party, which computes ∂L/∂z with its labels in the clear and secret-shares it
back (labels never leave it); after the encrypted backward pass each party receives only the
gradient of its own bottom output. Nobody sees another party's features or embeddings.

With ``--dp-epsilon`` every party clips each record's bottom embedding to C and adds Gaussian
noise before sharing it, trains its bottom model with clipped, noised per-example gradients, and
the label party adds Gaussian noise to every output gradient before it enters the encrypted
backward pass (the top model is trained on the noisy values only). One accountant per party,
without amplification: the batch order is common knowledge (fedtrain/local_training/
dp_exchange.py, docs/privacy.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.config import TrainConfig
from crypten_fl.fedtrain.data.preprocess import ModelInputs
from crypten_fl.fedtrain.local_training import dp_recipe
from crypten_fl.fedtrain.local_training.dp_exchange import (
    ExchangeAccountant,
    clip_rows,
    private_optimizer,
)
from crypten_fl.fedtrain.models.dp_compat import make_private_compatible
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.encrypted_head import EncryptedHead, plain_head, share_blocks
from crypten_fl.fedtrain.secure.reveal_audit import revealing
from crypten_fl.fedtrain.secure_noise import SecureRandom
from crypten_fl.fedtrain.sessions.vertical import open_vertical_session
from crypten_fl.fedtrain.strategies.base import RoundResult, Strategy
from safetensors.torch import load_file
from torch.nn.functional import binary_cross_entropy_with_logits

PREDICT_CHUNK = 1024
#: the final top-share file's entry holding the embedding clip the top model was trained with
EMBEDDING_CLIP = "embedding_clip"
DP_MECHANISM = ("Per party, no amplification (every record used once per epoch in a public "
                "order; steps = uses of each record): each record's bottom embedding clipped to C "
                "with Gaussian noise of std nu*C added before it is secret-shared; bottom model "
                "trained on per-example gradients clipped to C with Gaussian noise of std nu*C{}. "
                "Replace-one sensitivity 2C per mechanism: one accountant step of multiplier "
                "nu/(2*sqrt(mechanisms)) per epoch")
LABEL_MECHANISM = ("; label party: Gaussian noise of std nu*sqrt(L)/2 on every output gradient "
                   "sigmoid(z_i) - y_i before the encrypted backward pass (replace-one "
                   "sensitivity sqrt(L), L labels)")


class Vertical(Strategy):
    """Plaintext bottom models per party, encrypted top model, labels at one party."""

    name = "vertical"
    summary = "vertical FL: parties hold other features of the same stays; encrypted top model"
    partition = "vertical"
    supports_init_from = False  # its bottom models see feature subsets
    dp_note = ("vertical with DP gave a model at chance at every ε measured (each record's "
               "features and labels are both noised, with no sampling to hide in); why: "
               "docs/privacy.md, \"Why tuning would not rescue vertical\"")
    needs_ttp = True
    uses_dp_recipe = False  # its own DP mechanisms (fedtrain/local_training/dp_exchange.py)
    plaintext_model = False
    receives = frozenset({tags.OWN_BOTTOM_GRADIENT, tags.JOINT_LOGITS_TO_LABEL_PARTY,
                          tags.METRIC_HISTOGRAMS})
    reveals = ("to the label party: the logits of the joint model; to each party: the gradient "
               "of its own bottom output; to all: the number of aligned records; nothing else")
    open_session = staticmethod(open_vertical_session)

    def __init__(self, config, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, session)
        self.world = crypten.communicator.get().get_world_size()
        self.label_party = 0
        torch.manual_seed(config.seed)  # the top model's public initialisation, same everywhere
        hidden = config.head_hidden if config.cut == 2 else None
        self.top = EncryptedHead(plain_head(self.world * config.d_model, hidden, session.n_labels))
        self.generator = torch.Generator().manual_seed(config.seed * 7919)  # shared batch order
        self.accountant: ExchangeAccountant | None = None
        #: each embedding is clipped to this L2 norm before it is shared (None: no clipping)
        self.embedding_clip: float | None = None
        if config.dp_epsilon is not None:
            self._make_private(config)

    def _make_private(self, config: TrainConfig) -> None:
        """One accountant for the run; bottom model with per-example clipping and noise."""
        assert config.dp_epsilon is not None
        trainer, n, label = self.session.trainer, self.session.n_train, self._is_label_party()
        epochs = config.rounds * config.local_epochs
        # the recipe's bound C; the learning rate stays --lr unless --dp-lr is given (the
        # recipe's rate was chosen for DP-SGD and not measured on these mechanisms)
        clip, lr = dp_recipe.clip_bound(config.max_grad_norm), config.dp_lr or config.lr
        self.rng = SecureRandom()
        self.embedding_clip = clip
        self.accountant = ExchangeAccountant(
            target_epsilon=config.dp_epsilon,
            delta=config.dp_delta if config.dp_delta is not None else dp_recipe.default_delta(n),
            sample_rate=1.0, planned_steps=epochs, mechanisms=3 if label else 2,
            clip=clip,
            description=DP_MECHANISM.format(LABEL_MECHANISM if label else ""))
        model = make_private_compatible(trainer.model)
        adam = torch.optim.Adam(model.parameters(), lr=lr)
        trainer.model, trainer.optimizer = private_optimizer(
            model, adam, noise_multiplier=self.accountant.noise_multiplier,
            clip=clip, expected_batch_size=min(config.batch_size, n),
            rng=self.rng)

    def _is_label_party(self) -> bool:
        return self.session.rank == self.label_party

    def privacy_report(self) -> dict[str, Any] | None:
        return self.accountant.report() if self.accountant is not None else None

    def _noise(self, like: torch.Tensor, bound: float) -> torch.Tensor:
        """N(0, (ν·bound)²) from this party's CSPRNG, shaped like ``like``."""
        assert self.accountant is not None
        return self.rng.normal_like(like, self.accountant.noise_multiplier * bound)

    def _embed_blocks(self, x: torch.Tensor, s: torch.Tensor, noisy: bool = False
                      ):  # type: ignore[no-untyped-def]
        """This party's embeddings (clipped with DP) and every party's shared block; with
        ``noisy`` the party's noise is added to what it shares (training steps under DP)."""
        e = self.session.trainer.model(x, s)
        if self.embedding_clip is not None:
            e = clip_rows(e, self.embedding_clip)
        shared = e.detach()
        if noisy and self.embedding_clip is not None:
            shared = shared + self._noise(shared, self.embedding_clip)
        shapes = [(e.shape[0], e.shape[1])] * self.world
        blocks, enc = share_blocks(shared, shapes, self.session.rank, 1)
        return e, blocks, enc

    def train_round(self, round_index: int) -> RoundResult:
        session, trainer = self.session, self.session.trainer
        rank, n = session.rank, session.n_train
        trainer.model.train()
        total_loss, seen = 0.0, 0
        for _ in range(self.config.local_epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, self.config.batch_size):
                idx = order[start : start + self.config.batch_size]
                trainer.optimizer.zero_grad(set_to_none=True)
                e, blocks, enc = self._embed_blocks(session.train.x[idx], session.train.static[idx],
                                                    noisy=True)
                self.top.zero_grad()
                z = self.top(enc)
                with revealing(tags.JOINT_LOGITS_TO_LABEL_PARTY):
                    logits = z.get_plain_text(dst=self.label_party)
                y = session.train.labels[idx] if rank == self.label_party else None
                shape = (len(idx), self.session.n_labels)  # non-label parties get None above
                g = torch.sigmoid(logits) - y if y is not None else torch.zeros(shape)
                if self.accountant is not None and y is not None:  # replace-one bound √L/2
                    g = g + self._noise(g, math.sqrt(y.shape[1]) / 2)
                z.backward(crypten.cryptensor(g, src=self.label_party))
                self.top.sgd_step(self.config.encrypted_lr / len(idx))
                for owner, block in enumerate(blocks):
                    with revealing(tags.OWN_BOTTOM_GRADIENT):
                        grad = block.grad.get_plain_text(dst=owner)
                    if owner == rank:  # DP: per-row gradients (the DP optimizer averages)
                        e.backward(grad if self.accountant is not None else grad / len(idx))
                trainer.optimizer.step()
                if y is not None:
                    loss = binary_cross_entropy_with_logits(logits, y, reduction="sum").item()
                    total_loss, seen = total_loss + loss / y.shape[1], seen + len(idx)
            if self.accountant is not None:  # every record was used once more
                self.accountant.step()
        # only the label party can compute the loss
        return RoundResult(train_loss=total_loss / seen if seen else None, exchanged_elements=0)

    @torch.no_grad()
    def predict(self, inputs: ModelInputs) -> np.ndarray:
        """Collective: every party feeds its columns; probabilities reach the label party only."""
        model = self.session.trainer.model
        model.eval()
        out = []
        with crypten.no_grad():
            for start in range(0, len(inputs), PREDICT_CHUNK):
                x = inputs.x[start : start + PREDICT_CHUNK]
                s = inputs.static[start : start + PREDICT_CHUNK]
                _, _, enc = self._embed_blocks(x, s)
                with revealing(tags.JOINT_LOGITS_TO_LABEL_PARTY):
                    logits = self.top(enc).get_plain_text(dst=self.label_party)
                if self.session.rank == self.label_party:  # None elsewhere
                    out.append(torch.sigmoid(logits))
        model.train()
        if self.session.rank != self.label_party:
            return np.zeros((0, self.session.n_labels), dtype=np.float32)
        return torch.cat(out).numpy() if out else np.zeros((0, self.session.n_labels))

    @classmethod
    def final_model_files(cls, index: int) -> list[str]:
        return [f"model_party_{index}.safetensors", f"top_share_party_{index}.safetensors"]

    def load_final(self, run_dir: Path, index: int | None = None) -> None:
        """Load this party's bottom model and its share of the encrypted top model."""
        model, share = self.final_model_files(self.session.rank if index is None else index)
        self.session.trainer.model.load_state_dict(load_file(str(Path(run_dir) / model)))
        shares = load_file(str(Path(run_dir) / share))
        self.top.load_shares(shares)
        if EMBEDDING_CLIP in shares:  # trained with DP: predict on clipped embeddings too
            self.embedding_clip = float(shares[EMBEDDING_CLIP])

    def extra_state(self) -> dict[str, torch.Tensor]:
        state = {f"top.{k}": v for k, v in self.top.shares().items()}
        state["generator"] = self.generator.get_state()
        if self.accountant is not None:
            state["dp_history"] = self.accountant.state()
        return state

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.top.load_shares({k[len("top."):]: v for k, v in state.items()
                              if k.startswith("top.")})
        self.generator.set_state(state["generator"])
        if self.accountant is not None:
            self.accountant.load_state(state["dp_history"])

    def models_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        rank = self.session.rank
        saved = {f"model_party_{rank}": self.session.trainer.state_dict()}
        # the top model stays secret-shared: each party keeps its own share (int64 ring elements)
        saved[f"top_share_party_{rank}"] = self.top.shares()
        if self.embedding_clip is not None:
            saved[f"top_share_party_{rank}"][EMBEDDING_CLIP] = torch.tensor(self.embedding_clip,
                                                                           dtype=torch.float64)
        return saved
