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

import sys
from collections.abc import Mapping

import torch
from torch import nn


def make_private_compatible(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that Opacus can train and that computes the same function
    (:func:`fedtrain.models.dp_attention.make_private_compatible`; Opacus is imported only here,
    when DP-SGD is asked for: it costs a second at every party's start)."""
    from crypten_fl.fedtrain.models.dp_attention import make_private_compatible as fix

    return fix(model)


def _dp_attention_class() -> type | None:
    """Opacus' DPMultiheadAttention if Opacus is loaded (without it no model can contain one)."""
    layers = sys.modules.get("opacus.layers")
    return getattr(layers, "DPMultiheadAttention", None) if layers is not None else None


def _attention_prefixes(model: nn.Module) -> list[str]:
    dp_attention = _dp_attention_class()
    if dp_attention is None:
        return []
    return [f"{name}." for name, m in model.named_modules() if isinstance(m, dp_attention)]


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
