"""Make a model trainable with Opacus 1.6.0 DP-SGD, and keep its weights exchangeable.

``ModuleValidator.fix`` swaps each ``nn.MultiheadAttention`` for Opacus' ``DPMultiheadAttention``
(separate q/k/v ``nn.Linear`` layers, so per-sample gradients come from hooks). Two pitfalls remain:

* With ``batch_first=True`` (our encoder), Opacus 1.6.0 merges the heads of the attention output
  with a plain ``view`` of the ``(B·H, L, D)`` tensor, splicing heads into time steps (opacus
  #774 / PR #825): the fixed model then computes a different function than the stock one. We swap in
  :class:`BatchFirstDPMultiheadAttention`, which transposes heads back before merging.
* In-place activations break Opacus' full backward hooks (opacus #828): every module ``inplace``
  flag is cleared.

The DP model names attention weights ``qlinear/klinear/vlinear``, the stock model
``in_proj_weight/in_proj_bias``. Hospitals with and without DP must exchange the same tensors, so
:func:`canonical_state_dict` always speaks the stock spelling and
:func:`load_canonical_state_dict` accepts it for either kind of model.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def _attention_prefixes(model: nn.Module) -> list[str]:
    return [f"{name}." for name, m in model.named_modules() if isinstance(m, DPMultiheadAttention)]


def canonical_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters under the stock (non-DP) key names, detached copies.

    Unwraps an Opacus ``GradSampleModule`` first, so no ``_module.`` prefix leaks out.
    """
    model = unwrap(model)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for prefix in _attention_prefixes(model):
        for kind in ("weight", "bias"):
            parts = [state.pop(f"{prefix}{p}linear.{kind}", None) for p in "qkv"]
            if all(p is not None for p in parts):
                state[f"{prefix}in_proj_{kind}"] = torch.cat(parts, dim=0)  # type: ignore[arg-type]
    return state


def to_model_spelling(
    model: nn.Module, state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Translate a (possibly partial) canonical state dict into ``model``'s own key names."""
    model = unwrap(model)
    out = dict(state)
    for prefix in _attention_prefixes(model):
        for kind in ("weight", "bias"):
            packed = out.pop(f"{prefix}in_proj_{kind}", None)
            if packed is not None:
                for p, chunk in zip("qkv", packed.chunk(3, dim=0), strict=True):
                    out[f"{prefix}{p}linear.{kind}"] = chunk
    return out


def load_canonical_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy a canonical (possibly partial) state dict into ``model``'s parameters in place.

    Parameters keep their identity (optimizers and Opacus hooks stay attached). Unknown keys and
    shape mismatches raise ``KeyError`` / ``ValueError``.
    """
    target = unwrap(model)
    own = target.state_dict(keep_vars=True)
    translated = to_model_spelling(target, state)
    unknown = sorted(set(translated) - set(own))
    if unknown:
        raise KeyError(f"state has keys the model does not know: {unknown[:5]}")
    with torch.no_grad():
        for key, value in translated.items():
            if own[key].shape != value.shape:
                raise ValueError(f"{key}: shape {tuple(value.shape)} != {tuple(own[key].shape)}")
            own[key].copy_(value)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside an Opacus ``GradSampleModule`` (or the model itself)."""
    inner = getattr(model, "_module", None)
    return inner if isinstance(inner, nn.Module) else model
