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
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.data.preprocess import ModelInputs
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.encrypted_head import EncryptedHead, reveal_to_owners, share_blocks
from crypten_fl.fedtrain.secure.reveal_audit import revealing
from crypten_fl.fedtrain.sessions import lockstep
from crypten_fl.fedtrain.strategies.base import ParameterSharing, RoundResult
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits
from torch.utils.data import DataLoader, TensorDataset

PREDICT_CHUNK = 1024


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
    supports_dp_sgd = False
    shares_updates = True  # its client parts, through the same checks (not --central-dp)
    receives = frozenset({tags.MOMENTS, tags.WEIGHTED_MODEL_SUM, tags.METRIC_HISTOGRAMS,
                          tags.OWN_ROW_LOGITS,
                          tags.OWN_CUT_GRADIENT, tags.FINAL_SERVER_WEIGHTS})
    reveals = ("to hospital k: the logits of its own rows and the gradient at the cut of its own "
               "rows; to all: each hospital's training-set size, the weighted sum of the client "
               "parts each round, and the server weights once at the end")
    final_model = "model"  # client part and revealed server part, written by hospital 0

    def __init__(self, config, session) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, session)
        self.model = session.trainer.model
        self.cut = config.cut
        self.server = EncryptedHead(_server_layout(self.model.head, self.cut))
        self.sizes = lockstep.all_sizes(session.n_train)
        self.steps, self.batches = lockstep.plan(self.sizes, config.batch_size)
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + session.rank)
        train = session.train
        self.dataset = TensorDataset(train.x, train.static, train.labels)
        self.revealed = False

    def is_shared(self, key: str) -> bool:
        return self.model.is_shared_key(key, self.cut)

    def _server_step(self, h: torch.Tensor, y: torch.Tensor, step: int) -> tuple[float, int]:
        rank, sizes = self.session.rank, lockstep.block_sizes(self.sizes, self.batches, step)
        total = sum(sizes)
        blocks, enc = share_blocks(h.detach(), [(s, h.shape[1]) for s in sizes], rank, 0)
        self.server.zero_grad()
        z = self.server(enc)
        mine = reveal_to_owners(z, sizes, rank, 0, tags.OWN_ROW_LOGITS)
        g = torch.sigmoid(mine) - y if mine is not None else torch.zeros(0, z.size(1))
        _, g_enc = share_blocks(g, [(s, z.size(1)) for s in sizes], rank, 0)
        z.backward(g_enc)
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
        if grad_h is not None:
            h.backward(grad_h / total)
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
                    trainer.step(proximal)
                total_loss, seen = total_loss + loss, seen + n
        # the client parts are averaged through the pipeline every update-sharing strategy uses:
        # checked (non-finite, --max-update-norm), then securely summed
        return RoundResult(train_loss=total_loss / max(seen, 1),
                           exchanged_elements=self.share_update(round_index, start))

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
        return state

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.server.load_shares({k[len("server."):]: v for k, v in state.items()
                                 if k.startswith("server.")})
        self.generator.set_state(state["generator"])

    def models_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.session.rank != 0:
            return {}
        return {"model": self.session.trainer.state_dict()}
