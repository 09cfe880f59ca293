"""An MLP whose weights are secret-shared among all parties, trained in CrypTen.

Used as the server model of split learning and the top model of vertical learning. Nobody holds
its weights during training; each party holds an additive share. Inputs arrive as blocks, each
secret-shared by the party that owns it (rows of different hospitals for split learning, columns
of different parties for vertical learning); the gradient of a block is revealed only to its owner.

The loss never runs under encryption: the logits of a block are revealed only to the party holding
that block's labels (which sees its own predictions at evaluation anyway), which computes
∂L/∂z = σ(z) − y for binary cross-entropy in the clear and secret-shares it back. This avoids
CrypTen's encrypted sigmoid/log (4–10× the cost of the rest of a step, measured) and means labels
never leave their owner. Multiplications use Beaver triples from the TTP dealer (see
docs/threat-model.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from crypten_fl.fedtrain.compat import crypten
from crypten_fl.fedtrain.secure import tags
from crypten_fl.fedtrain.secure.reveal_audit import revealing
from torch import nn

CrypTensor = crypten.CrypTensor


def plain_head(in_features: int, hidden: int | None, out_features: int) -> nn.Sequential:
    """The plaintext layout of the head: Linear, or Linear-ReLU-Linear."""
    if hidden:
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(),
                             nn.Linear(hidden, out_features))
    return nn.Sequential(nn.Linear(in_features, out_features))


class EncryptedHead:
    """``plain_head`` with secret-shared weights, trained by SGD.

    Args:
        init: the initial weights (identical at every party: a public random initialisation), or
            a plaintext module to start from.
    """

    def __init__(self, init: nn.Sequential) -> None:
        self.layout = init
        layers: list[crypten.nn.Module] = []
        for layer in init:
            if isinstance(layer, nn.Linear):
                enc = crypten.nn.Linear(layer.in_features, layer.out_features)
                enc.weight.data.copy_(layer.weight.data)
                enc.bias.data.copy_(layer.bias.data)
                layers.append(enc)
            else:
                layers.append(crypten.nn.ReLU())
        self.model = crypten.nn.Sequential(*layers).encrypt(src=0)
        self.model.train()

    def __call__(self, x: CrypTensor) -> CrypTensor:
        return self.model(x)

    def zero_grad(self) -> None:
        self.model.zero_grad()

    def sgd_step(self, lr: float) -> None:
        """w ← w − lr·∂w (no gradient thresholding: it costs a comparison per weight)."""
        with crypten.no_grad():
            for param in self.model.parameters():
                if param.grad is not None:
                    param.sub_(param.grad.mul(lr))

    def shares(self) -> dict[str, torch.Tensor]:
        """This party's shares of the weights (uniformly random to anyone else)."""
        return {name: p.share.clone() for name, p in self.model.named_parameters()}

    def load_shares(self, shares: dict[str, torch.Tensor]) -> None:
        for name, p in self.model.named_parameters():
            p.share = shares[name].clone()

    def reveal(self) -> nn.Sequential:
        """The weights in the clear, to every party (done once, at the end of training)."""
        plain = self.layout
        encrypted = [m for m in self.model.modules() if isinstance(m, crypten.nn.Linear)]
        linears = [m for m in plain if isinstance(m, nn.Linear)]
        with torch.no_grad(), revealing(tags.FINAL_SERVER_WEIGHTS):
            for enc, lin in zip(encrypted, linears, strict=True):
                lin.weight.copy_(enc.weight.get_plain_text())
                lin.bias.copy_(enc.bias.get_plain_text())
        return plain


def share_blocks(local: torch.Tensor, shapes: Sequence[tuple[int, ...]], rank: int, dim: int,
                 requires_grad: bool = True) -> tuple[list[CrypTensor], CrypTensor]:
    """Every party secret-shares its own block; returns the blocks and their concatenation.

    ``shapes[k]`` is the shape of party k's block (public); a party only supplies its own values.
    Empty blocks are skipped. ``requires_grad``: whether the blocks' gradients are computed.
    """
    blocks: list[CrypTensor] = []
    for k, shape in enumerate(shapes):
        if 0 in shape:
            continue
        value = local if k == rank else torch.zeros(shape)
        blocks.append(crypten.cryptensor(value, src=k, requires_grad=requires_grad))
    return blocks, crypten.cat(blocks, dim=dim) if len(blocks) > 1 else blocks[0]


def reveal_to_owners(enc: CrypTensor, sizes: Sequence[int], rank: int, dim: int, what: str
                     ) -> torch.Tensor | None:
    """Split ``enc`` into blocks of ``sizes`` along ``dim``; block k is revealed to party k only.

    Returns this party's block (None if it has none).
    """
    mine, offset = None, 0
    for k, size in enumerate(sizes):
        if size == 0:
            continue
        index = torch.arange(offset, offset + size)
        block = enc.index_select(dim, index)
        with revealing(what):
            plain = block.get_plain_text(dst=k)
        if k == rank:
            mine = plain
        offset += size
    return mine
