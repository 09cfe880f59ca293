"""Opacus' attention, fixed for ``batch_first=True``, and the model copy DP-SGD trains.

Imported only when DP-SGD is used (Opacus takes about a second to import); see
:mod:`fedtrain.models.dp_compat` for why these fixes exist.
"""

from __future__ import annotations

import torch
from opacus.layers import DPMultiheadAttention
from opacus.validators import ModuleValidator
from torch import nn


class BatchFirstDPMultiheadAttention(DPMultiheadAttention):
    """``DPMultiheadAttention`` with a correct ``batch_first=True`` path (self-attention only).

    Masks, ``add_bias_kv`` and ``add_zero_attn`` are not supported (the ICU model uses none): the
    upstream implementation is used unchanged whenever ``batch_first`` is False.
    """

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention over ``(B, L, E)``; the q/k/v/out Linear layers see batch-first input."""
        if not self.batch_first:
            return super().forward(
                query, key, value, key_padding_mask, need_weights, attn_mask, is_causal
            )
        if attn_mask is not None or is_causal or self.add_bias_kv or self.add_zero_attn:
            raise NotImplementedError("attention masks/extra keys are not supported here")
        bsz, tgt_len, embed_dim = query.shape
        src_len = key.shape[1]
        heads, head_dim = self.num_heads, embed_dim // self.num_heads

        def split_heads(t: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B·H, L, D)
            length = t.shape[1]
            return (
                t.view(bsz, length, heads, head_dim).transpose(1, 2).reshape(-1, length, head_dim)
            )

        q = split_heads(self.qlinear(query) * head_dim**-0.5)
        k = split_heads(self.klinear(key))
        v = split_heads(self.vlinear(value))
        scores = torch.bmm(q, k.transpose(1, 2))
        if key_padding_mask is not None:
            scores = scores.view(bsz, heads, tgt_len, src_len).masked_fill(
                key_padding_mask.to(torch.bool)[:, None, None, :], float("-inf")
            )
            scores = scores.view(bsz * heads, tgt_len, src_len)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        merged = (
            torch.bmm(weights, v)
            .view(bsz, heads, tgt_len, head_dim)
            .transpose(1, 2)
            .reshape(bsz, tgt_len, embed_dim)
        )
        out = self.out_proj(merged)
        if not need_weights:
            return out, None
        return out, weights.view(bsz, heads, tgt_len, src_len).mean(dim=1)


def _batch_first_copy(attn: DPMultiheadAttention) -> BatchFirstDPMultiheadAttention:
    """The same attention (sharing its Linear modules) with the corrected forward."""
    fixed = BatchFirstDPMultiheadAttention(
        attn.embed_dim,
        attn.num_heads,
        dropout=attn.dropout.p,
        add_bias_kv=attn.add_bias_kv,
        add_zero_attn=attn.add_zero_attn,
        kdim=attn.kdim,
        vdim=attn.vdim,
        batch_first=attn.batch_first,
    )
    fixed.qlinear, fixed.klinear, fixed.vlinear = attn.qlinear, attn.klinear, attn.vlinear
    fixed.out_proj, fixed.dropout = attn.out_proj, attn.dropout
    return fixed


def make_private_compatible(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that Opacus can train and that computes the same function.

    Runs ``ModuleValidator.fix`` (which clones the model and swaps attention), replaces each
    ``DPMultiheadAttention`` by :class:`BatchFirstDPMultiheadAttention`, clears in-place flags and
    validates the result strictly. The input model is not modified.
    """
    fixed = ModuleValidator.fix(model)
    for parent in list(fixed.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is DPMultiheadAttention:
                setattr(parent, name, _batch_first_copy(child))
    for module in fixed.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    was_training = fixed.training
    ModuleValidator.validate(fixed.train(), strict=True)  # Opacus validates in training mode
    return fixed.train(was_training)
