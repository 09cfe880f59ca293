"""Multi-label Transformer over binned ICU time series, split into a shared encoder and a head.

Input per stay: ``x`` of shape ``(B, T, 2F)`` = [z-scored values, observed mask] per time bin and
``static`` of shape ``(B, S)``. Output: 12 logits (apply a sigmoid for probabilities; the loss is
``BCEWithLogitsLoss``).

Two submodules with stable names carry every parameter exactly once:

* ``model.encoder(x, static) -> (B, d_model)`` — everything up to the pooled representation;
* ``model.head(rep) -> (B, n_labels)`` — an ``nn.Sequential`` of ``len(head_hidden) + 1`` layers
  (each hidden layer is ``Linear → ReLU → Dropout``; the last is the ``Linear`` to logits).

Strategies that share some layers and keep others local cut the model with ``personal_layers``:
the last ``personal_layers`` head layers stay with the hospital, the encoder and the first
``len(head) - personal_layers`` head layers are shared (see :meth:`ICUTransformer.lower` /
:meth:`ICUTransformer.upper` and :meth:`ICUTransformer.is_shared_key`).

Every trainable tensor lives in an ``nn.Linear``, ``nn.Embedding`` or ``nn.LayerNorm`` (time bins
and the [CLS] token are embeddings looked up by index), so Opacus has a per-sample gradient rule for
each of them; attention is the stock ``nn.MultiheadAttention`` that ``make_private_compatible``
swaps for a DP-friendly one. Activations are ReLU (never GELU, which CrypTen cannot evaluate
correctly) and never in-place (in-place ops break Opacus' backward hooks, opacus #828).

>>> model = ICUTransformer(n_features=3, n_static=4, n_bins=6)
>>> model(torch.zeros(2, 6, 6), torch.zeros(2, 4)).shape
torch.Size([2, 12])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from crypten_fl.fedtrain.models import stay_summary as summaries
from torch import nn

Pooling = Literal["cls", "mean"]


class ICUEncoder(nn.Module):
    """Tokens per time bin (+ optional [CLS]) → stock Transformer encoder → pooled vector.

    Token of bin t = ``input_proj([values_t, mask_t]) + time_embedding(t) + static_proj(static)``:
    the static vector is added to every token (and to [CLS]) rather than given its own token, so
    the sequence length stays ``n_bins`` (+1) and every position sees the patient context.
    """

    def __init__(
        self,
        *,
        n_features: int,
        n_static: int,
        n_bins: int,
        d_model: int,
        n_heads: int,
        n_layers: int,
        dim_feedforward: int,
        dropout: float,
        pooling: Pooling,
        stay_summary: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.n_features = n_features
        self.n_static = n_static
        self.n_bins = n_bins
        self.pooling = pooling
        self.d_model = d_model
        self.stay_summary = stay_summary
        self.input_proj = nn.Linear(2 * n_features, d_model)
        self.static_proj = nn.Linear(n_static, d_model) if n_static > 0 else None
        self.time_embedding = nn.Embedding(n_bins, d_model)
        self.cls_embedding = nn.Embedding(1, d_model) if pooling == "cls" else None
        self.token_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model,
            n_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            activation="relu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(
            layer, n_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )

    @property
    def output_width(self) -> int:
        """Width of the representation: ``d_model``, plus the stay summaries and the static
        vector with ``stay_summary``."""
        extra = summaries.summary_width(self.n_features) + self.n_static if self.stay_summary else 0
        return self.d_model + extra

    def forward(self, x: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        """Representation ``(B, output_width)`` of ``x (B, T, 2F)`` and ``static (B, S)``: the
        pooled Transformer output, then (``stay_summary``) the stay's per-feature summaries and
        its static vector (:mod:`~crypten_fl.fedtrain.models.stay_summary`)."""
        batch, n_steps, width = x.shape
        if width != 2 * self.n_features:
            raise ValueError(f"x has {width} channels, expected 2 × {self.n_features} features")
        if n_steps > self.n_bins:
            raise ValueError(f"x has {n_steps} time bins, the model was built for {self.n_bins}")
        steps = torch.arange(n_steps, device=x.device).expand(batch, n_steps)
        tokens = self.input_proj(x) + self.time_embedding(steps)
        if self.cls_embedding is not None:
            cls_index = torch.zeros(batch, 1, dtype=torch.long, device=x.device)
            tokens = torch.cat([self.cls_embedding(cls_index), tokens], dim=1)
        if self.static_proj is not None:
            tokens = tokens + self.static_proj(static).unsqueeze(1)
        hidden = self.transformer(self.token_dropout(tokens))
        pooled = hidden[:, 0] if self.cls_embedding is not None else hidden.mean(dim=1)
        if not self.stay_summary:
            return pooled
        return torch.cat([pooled, summaries.stay_summary(x, self.n_features),
                          static.clamp(-summaries.CLAMP, summaries.CLAMP)], dim=1)


def build_head(
    d_model: int, head_hidden: Sequence[int], n_labels: int, dropout: float
) -> nn.Sequential:
    """The MLP head: one ``Sequential(Linear, ReLU, Dropout)`` per hidden width, then logits."""
    layers: list[nn.Module] = []
    width = d_model
    for hidden in head_hidden:
        layers.append(nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)))
        width = hidden
    layers.append(nn.Linear(width, n_labels))
    return nn.Sequential(*layers)


class ICUTransformer(nn.Module):
    """Encoder + MLP head predicting ``n_labels`` logits from an ICU stay.

    Args:
        n_features: F, time-series features per bin (the input has 2F channels: values, mask).
        n_static: S, width of the encoded static vector (0 for a party without static data).
        n_labels: number of outputs (12 disease labels).
        n_bins: maximum number of time bins (size of the learned time embedding).
        d_model: token width.
        n_heads: attention heads (must divide ``d_model``).
        n_layers: Transformer encoder layers.
        dim_feedforward: hidden width of each layer's feed-forward block.
        dropout: dropout in the encoder layers, on the tokens and in the head.
        pooling: ``"cls"`` (a learned [CLS] token) or ``"mean"`` (mean over time bins).
        head_hidden: hidden widths of the head MLP; ``()`` makes the head a single Linear.
        stay_summary: the head also reads each stay's per-feature summaries and its static
            vector (:mod:`~crypten_fl.fedtrain.models.stay_summary`).
    """

    def __init__(
        self,
        n_features: int,
        n_static: int,
        n_labels: int = 12,
        n_bins: int = 24,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.1,
        pooling: Pooling = "cls",
        head_hidden: Sequence[int] = (64,),
        stay_summary: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = ICUEncoder(
            n_features=n_features,
            n_static=n_static,
            n_bins=n_bins,
            d_model=d_model,
            n_heads=n_heads,
            n_layers=n_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            pooling=pooling,
            stay_summary=stay_summary,
        )
        self.head = build_head(self.encoder.output_width, tuple(head_hidden), n_labels, dropout)

    @property
    def n_head_layers(self) -> int:
        """Number of head layers that ``personal_layers`` counts (hidden layers + output)."""
        return len(self.head)

    def forward(self, x: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_labels)``."""
        return self.head(self.encoder(x, static))

    def _cut(self, personal_layers: int) -> int:
        if not 0 <= personal_layers <= self.n_head_layers:
            raise ValueError(
                f"personal_layers must be in [0, {self.n_head_layers}], got {personal_layers}"
            )
        return self.n_head_layers - personal_layers

    def lower(self, x: torch.Tensor, static: torch.Tensor, personal_layers: int) -> torch.Tensor:
        """The shared side: encoder, then the head layers before the cut."""
        hidden = self.encoder(x, static)
        for layer in self.head[: self._cut(personal_layers)]:
            hidden = layer(hidden)
        return hidden

    def upper(self, hidden: torch.Tensor, personal_layers: int) -> torch.Tensor:
        """The personal side: the last ``personal_layers`` head layers (identity for 0)."""
        for layer in self.head[self._cut(personal_layers) :]:
            hidden = layer(hidden)
        return hidden

    def is_shared_key(self, key: str, personal_layers: int) -> bool:
        """Whether a state-dict key belongs to the shared side of the cut.

        Works on any key spelling of this model (stock or DP attention), since only the
        ``encoder.`` / ``head.<i>.`` prefix matters.
        """
        if key.startswith("encoder."):
            return True
        if not key.startswith("head."):
            raise KeyError(f"{key!r} is neither an encoder. nor a head. key")
        return int(key.split(".")[1]) < self._cut(personal_layers)
