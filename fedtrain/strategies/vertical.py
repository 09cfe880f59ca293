"""Vertical federated learning: parties hold different features of the same patients.

Rows are aligned by private set intersection (fedtrain/secure/psi.py). Each party runs a bottom
model (a Transformer encoder over its own feature group) in the clear; the bottom outputs are
secret-shared, column block by column block, into an encrypted top model (an MLP whose weights
are secret-shared among all parties, fedtrain/secure/encrypted_head.py). The logits are revealed
only to the label party, which computes ∂L/∂z with its labels in the clear and secret-shares it
back (labels never leave it); after the encrypted backward pass each party receives only the
gradient of its own bottom output. Nobody sees another party's features or embeddings.

With ``--dp-epsilon`` the model is different: no bottom Transformers, but a linear top model
trained entirely under encryption on every party's per-stay summaries, loss included, with
Gaussian noise added by every party to its share of each step's gradient sum; nothing per record
is revealed during training (fedtrain/strategies/vertical_private.py, docs/privacy.md).
"""

from __future__ import annotations

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
    noise_report,
    noise_std,
    total_noise_std,
)
from crypten_fl.fedtrain.models import public_features
from crypten_fl.fedtrain.models.pretrained import Pretrained
from crypten_fl.fedtrain.models.public_features import PublicProjection
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.encrypted_head import EncryptedHead, plain_head, share_blocks
from crypten_fl.fedtrain.secure.reveal_audit import revealing
from crypten_fl.fedtrain.secure_noise import SecureRandom
from crypten_fl.fedtrain.sessions.lockstep import all_sizes
from crypten_fl.fedtrain.sessions.vertical import open_vertical_session, public_projection
from crypten_fl.fedtrain.strategies import vertical_private as private
from crypten_fl.fedtrain.strategies.base import RoundResult, Strategy
from safetensors.torch import load_file
from torch.nn.functional import binary_cross_entropy_with_logits

PREDICT_CHUNK = 1024
#: in the top-share file of a run trained with the earlier DP mechanism (noised embeddings of
#: bottom Transformers, until 2026-12-06): such runs are refused with a message
EARLIER_DP_MARK = "embedding_clip"
#: in a DP run's party model file: the widths of every party's block of features (public)
FEATURE_WIDTHS = "feature_widths"


class Vertical(Strategy):
    """Plaintext bottom models per party, encrypted top model, labels at one party (with DP:
    a linear top model on every party's stay summaries, trained entirely under encryption)."""

    name = "vertical"
    summary = "vertical FL: parties hold other features of the same stays; encrypted top model"
    partition = "vertical"
    dp_note = ("vertical with DP trains a linear top model on every party's stay summaries "
               "(with --init-from: their public feature map) entirely under encryption (no "
               "bottom Transformers; nothing per record is revealed during training): "
               "docs/privacy.md, \"DP for split and vertical learning\"")
    needs_ttp = True
    uses_dp_recipe = False  # its own DP mechanism (fedtrain/strategies/vertical_private.py)
    supports_distributed_dp = True  # each party adds a 1/(P-1) share of the noise variance
    supports_dealer_dp = True  # or the TTP dealer draws it once and secret-shares it
    plaintext_model = False
    receives = frozenset({tags.OWN_BOTTOM_GRADIENT, tags.JOINT_LOGITS_TO_LABEL_PARTY,
                          tags.METRIC_HISTOGRAMS})
    reveals = ("to the label party: the logits of the joint model; to each party: the gradient "
               "of its own bottom output (not with --dp-epsilon: then the logits of validation "
               "and test stays only); to all: the number of aligned records; nothing else")
    open_session = staticmethod(open_vertical_session)

    def __init__(self, config, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, session)
        self.world = crypten.communicator.get().get_world_size()
        self.label_party = 0
        #: with --dp-epsilon: the linear top model on stay summaries (vertical_private.py)
        self.private = config.dp_epsilon is not None
        torch.manual_seed(config.seed)  # the top model's public initialisation, same everywhere
        if self.private:
            self._use_private_model(all_sizes(self._own_feature_width()))
        else:
            self.widths = [config.d_model] * self.world
            hidden = config.head_hidden if config.cut == 2 else None
            self.top = EncryptedHead(plain_head(sum(self.widths), hidden, session.n_labels))
        self.generator = torch.Generator().manual_seed(config.seed * 7919)  # shared batch order
        self.accountant: ExchangeAccountant | None = None
        self._training_set: tuple[list[Any], list[Any]] | None = None
        if self.private:
            self._make_private(config)

    def _own_feature_width(self) -> int:
        projection = public_projection(self.session)
        if projection is not None:  # --init-from: L public logits
            return projection.width
        train = self.session.train
        return private.feature_width(train.x.shape[2] // 2, train.static.shape[1])

    def _use_private_model(self, widths: list[int]) -> None:
        """The DP model: a linear top model over every party's block of features (public
        widths); collective (the initial weights are secret-shared)."""
        self.private, self.widths = True, widths
        self.top = EncryptedHead(plain_head(sum(widths), None, self.session.n_labels))

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        super().check_config(config)
        if config.dp_epsilon is not None and config.cut != 1:
            raise UserError("--dp-epsilon with --strategy vertical trains a linear top model "
                            "(docs/privacy.md): --cut 2 does not apply")
        if config.init_from is not None and config.dp_epsilon is None:
            raise UserError("--init-from with --strategy vertical works with --dp-epsilon (each "
                            "party's features mapped by a model fitted on the public data, "
                            "docs/privacy.md); without DP its bottom Transformers see feature "
                            "subsets that no pretrained model fits")
        if config.dp_epsilon is not None and config.max_grad_norm is not None:
            raise UserError("--max-grad-norm is not used by --strategy vertical: its bound "
                            "follows from its features and output clamp (docs/privacy.md)")

    @classmethod
    def check_pretrained(cls, pretrained: Pretrained, config: TrainConfig,
                         schema: dict[str, Any], option: str = "--init-from") -> None:
        """A party starts from the public feature map of its own columns (not the model's
        weights): its features must be among the public data's."""
        public_features.check_fits(pretrained, schema, option)

    @classmethod
    def receives_with(cls, config: TrainConfig) -> frozenset[str]:
        """With DP no bottom gradients (nothing per record in training) and the masked openings
        of the encrypted sigmoid and clamp; with --cut 2 those of the encrypted ReLU."""
        if config.dp_epsilon is not None:
            return cls.receives - {tags.OWN_BOTTOM_GRADIENT} | {tags.MASKED_OPENINGS}
        return cls.receives | ({tags.MASKED_OPENINGS} if config.cut == 2 else set())

    def _make_private(self, config: TrainConfig) -> None:
        """One accountant for the run: one Gaussian mechanism per full-batch step."""
        assert config.dp_epsilon is not None
        n = self.session.n_train
        self.rng = SecureRandom()
        self.accountant = ExchangeAccountant(
            target_epsilon=config.dp_epsilon,
            delta=config.dp_delta if config.dp_delta is not None else dp_recipe.default_delta(n),
            sample_rate=1.0, planned_steps=config.rounds * config.local_epochs, mechanisms=1,
            clip=private.gradient_bound(self.world, self.session.n_labels),
            description=private.MECHANISM.format(clamp=private.GRADIENT_CLAMP))
        #: the std of the noise this party adds: ν·B, or with --dp-noise distributed its share,
        #: or with --dp-noise dealer the std of the dealer's draw (ν·B) it adds a share of
        mode, nu = config.dp_noise_mode, self.accountant.noise_multiplier
        bound = self.accountant.clip
        self.noise_std = noise_std(nu, bound, self.world, mode)
        total = total_noise_std(nu, bound, self.world, mode) / bound
        self.lr = config.dp_lr or private.learning_rate(n, total)

    def _is_label_party(self) -> bool:
        return self.session.rank == self.label_party

    def privacy_report(self) -> dict[str, Any] | None:
        if self.accountant is None:
            return None
        report = self.accountant.report()
        projection = public_projection(self.session)
        features = ("its stay summaries and static values" if projection is None else
                    f"the {projection.width} logits of a logistic regression fitted on its "
                    "columns of the public data (--init-from, the pretraining block; it "
                    "costs no ε)")
        return {**report, "features": f"{self.widths[self.session.rank]} per record: {features}",
                **noise_report(report, self.config.dp_noise_mode, self.world, self.noise_std)}

    def _embed_blocks(self, x: torch.Tensor, s: torch.Tensor):  # type: ignore[no-untyped-def]
        """This party's bottom output (with DP: its summary features) and every party's
        secret-shared block."""
        e = (private.party_features(x, s, public_projection(self.session)) if self.private
             else self.session.trainer.model(x, s))
        shapes = [(e.shape[0], width) for width in self.widths]
        blocks, enc = share_blocks(e.detach(), shapes, self.session.rank, 1,
                                   requires_grad=not self.private)
        return e, blocks, enc

    def train_round(self, round_index: int) -> RoundResult:
        if self.private:
            return self._train_round_private()
        session, trainer = self.session, self.session.trainer
        rank, n = session.rank, session.n_train
        trainer.model.train()
        total_loss, seen = 0.0, 0
        for _ in range(self.config.local_epochs):
            order = torch.randperm(n, generator=self.generator)
            for start in range(0, n, self.config.batch_size):
                idx = order[start : start + self.config.batch_size]
                trainer.optimizer.zero_grad(set_to_none=True)
                e, blocks, enc = self._embed_blocks(session.train.x[idx], session.train.static[idx])
                self.top.zero_grad()
                z = self.top(enc)
                with revealing(tags.JOINT_LOGITS_TO_LABEL_PARTY):
                    logits = z.get_plain_text(dst=self.label_party)
                y = session.train.labels[idx] if rank == self.label_party else None
                shape = (len(idx), self.session.n_labels)  # non-label parties get None above
                g = torch.sigmoid(logits) - y if y is not None else torch.zeros(shape)
                z.backward(crypten.cryptensor(g, src=self.label_party))
                self.top.sgd_step(self.config.encrypted_lr / len(idx))
                for owner, block in enumerate(blocks):
                    with revealing(tags.OWN_BOTTOM_GRADIENT):
                        grad = block.grad.get_plain_text(dst=owner)
                    if owner == rank:
                        e.backward(grad / len(idx))
                trainer.optimizer.step()
                if y is not None:
                    loss = binary_cross_entropy_with_logits(logits, y, reduction="sum").item()
                    total_loss, seen = total_loss + loss / y.shape[1], seen + len(idx)
        # only the label party can compute the loss
        return RoundResult(train_loss=total_loss / seen if seen else None, exchanged_elements=0)

    def _train_round_private(self) -> RoundResult:
        """``--local-epochs`` noisy full-batch steps under encryption; no loss is revealed."""
        assert self.accountant is not None
        features, labels = self._encrypted_training_set()
        for _ in range(self.config.local_epochs):
            private.noisy_gradient_step(self.top, features, labels, lr=self.lr,
                                        n=self.session.n_train, std=self.noise_std,
                                        rng=self.rng, dealer=self.config.dealer_dp)
            self.accountant.step()
        return RoundResult(train_loss=None, exchanged_elements=0)

    def _encrypted_training_set(self) -> tuple[list[Any], list[Any]]:
        """Every party's features and the label party's labels, secret-shared once, in chunks."""
        if self._training_set is None:
            train = self.session.train
            _, _, enc = self._embed_blocks(train.x, train.static)
            y = train.labels if self._is_label_party() else None
            y = y if y is not None else torch.zeros(len(train), self.session.n_labels)
            labels = crypten.cryptensor(y, src=self.label_party)
            self._training_set = (private.encrypted_chunks(enc), private.encrypted_chunks(labels))
        return self._training_set

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

    @staticmethod
    def initial_state(session: Any) -> dict[str, torch.Tensor]:
        """With --init-from a vertical party starts from its public feature map."""
        projection = public_projection(session)
        return {} if projection is None else projection.to_state()

    @classmethod
    def final_model_files(cls, index: int) -> list[str]:
        return [f"model_party_{index}.safetensors", f"top_share_party_{index}.safetensors"]

    def load_final(self, run_dir: Path, index: int | None = None) -> None:
        """Load this party's bottom model (with DP: its feature width) and its share of the
        encrypted top model."""
        model, share = self.final_model_files(self.session.rank if index is None else index)
        shares = load_file(str(Path(run_dir) / share))
        if EARLIER_DP_MARK in shares:
            raise UserError(f"{run_dir}: trained with vertical's earlier DP mechanism (before "
                            "2026-12-06), which this version no longer runs; train it again")
        saved = load_file(str(Path(run_dir) / model))
        if FEATURE_WIDTHS in saved:  # trained with DP (evaluate's config has no --dp-epsilon)
            self.session.public_projection = PublicProjection.from_state(saved)
            widths = [int(w) for w in saved[FEATURE_WIDTHS]]
            if widths[self.session.rank] != self._own_feature_width():
                raise UserError(f"{run_dir / model}: a block of {widths[self.session.rank]} "
                                f"features, but this party's data gives "
                                f"{self._own_feature_width()}")
            torch.manual_seed(self.config.seed)
            self._use_private_model(widths)  # every party loads its model: collective
        else:
            self.session.trainer.model.load_state_dict(saved)
        self.top.load_shares(shares)

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
        # with DP a party's "bottom model" is its fixed feature map: only the widths are saved
        # (and its public feature map, with --init-from)
        projection = public_projection(self.session)
        bottom = ({FEATURE_WIDTHS: torch.tensor(self.widths),
                   **({} if projection is None else projection.to_state())} if self.private
                  else self.session.trainer.state_dict())
        # the top model stays secret-shared: each party keeps its own share (int64 ring elements)
        return {f"model_party_{rank}": bottom, f"top_share_party_{rank}": self.top.shares()}
