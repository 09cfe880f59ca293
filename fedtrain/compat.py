"""Make CrypTen 0.4.1 correct and usable on torch 2.13. Import this module before ``crypten``.

Each fix is measured in DESIGN.md ("CrypTen 0.4.1 on torch 2.13") and has its own test in
tests/test_compat.py:

1. **Import.** CrypTen's ONNX converter imports ``torch.onnx._internal.registration``, which moved
   to ``torch.onnx._internal.torchscript_exporter.registration`` in torch >= 2.9. We alias the moved
   module (not a stub), so CrypTen's custom ONNX symbolics keep working.
2. **Negative decoding.** ``FixedPointEncoder.decode`` floor-divides by ``scale - correction`` (an
   operator-precedence slip), so about |x|·2⁻¹⁶ of negative values decode exactly 1.0 too low. We
   floor-divide by the scale and add the remainder over the scale.
3. **Odd powers.** ``pow(x, p)`` for odd p >= 5 computes x^(3(p-1)/2); we compute x·(x²)^((p-1)/2).
   (erf/GELU are built on it; the project does not use them in encrypted models anyway.)
4. **Timeouts.** CrypTen passes no timeout to ``init_process_group`` / ``new_group``, so a stalled
   party makes the others wait torch's default 30 minutes. We inject an explicit timeout into both.
5. **Re-forming.** CrypTen always joins through its ``RENDEZVOUS`` URL. To let survivors form a new
   world after a dropout (fedtrain/secure/group.py) we pass it the store of the current group
   generation instead, when one is set with :func:`set_group_store`.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import os
import sys
import types
from typing import Any

import torch

DEFAULT_TIMEOUT_S = float(os.environ.get("CRYPTEN_FL_TIMEOUT_S", "60"))
_timeout_s = DEFAULT_TIMEOUT_S
_group_store: Any = None


def _alias_onnx_registration() -> None:
    old = "torch.onnx._internal.registration"
    new = "torch.onnx._internal.torchscript_exporter.registration"
    if old not in sys.modules:
        with contextlib.suppress(ModuleNotFoundError):  # older torch: the old path still exists
            sys.modules[old] = importlib.import_module(new)


_alias_onnx_registration()

import crypten  # noqa: E402  (must follow the alias)
import crypten.common.functions.power as _power  # noqa: E402
import crypten.communicator.distributed_communicator as _dcomm  # noqa: E402
from crypten.common.tensor_types import is_int_tensor  # noqa: E402
from crypten.common.util import torch_stack  # noqa: E402, F401  (keeps crypten's import order)
from crypten.cryptensor import CrypTensor  # noqa: E402
from crypten.encoder import FixedPointEncoder, nearest_integer_division  # noqa: E402


def _decode(self: FixedPointEncoder, tensor: torch.Tensor | None) -> torch.Tensor | None:
    """Fixed-point decode that is exact for negative values: floor(t / s) + (t mod s) / s."""
    if tensor is None:
        return None
    assert is_int_tensor(tensor), "input must be a LongTensor"
    if self._scale > 1:
        quotient = tensor.div(self._scale, rounding_mode="floor")
        remainder = tensor - quotient * self._scale  # in [0, scale)
        return (quotient.float() + remainder.float() / self._scale).data
    return nearest_integer_division(tensor, self._scale).data


def _pow(self: CrypTensor, p: int | float, **kwargs: Any) -> CrypTensor:
    """Integer power; odd exponents as x·(x²)^((p-1)/2) (CrypTen computed x^(3(p-1)/2))."""
    if isinstance(p, float) and int(p) == p:
        p = int(p)
    if isinstance(p, int) and p >= 3 and p % 2 == 1:
        return self.square().pow((p - 1) // 2).mul_(self)
    return _original_pow(self, p, **kwargs)


def set_collective_timeout(seconds: float) -> None:
    """Timeout applied to CrypTen's process group and sub-groups created after this call."""
    global _timeout_s
    _timeout_s = float(seconds)


def set_group_store(store: Any) -> None:
    """Store (a ``torch.distributed.Store``) CrypTen's next world is formed through."""
    global _group_store
    _group_store = store


def collective_timeout() -> datetime.timedelta:
    """The timeout currently injected into CrypTen's process groups."""
    return datetime.timedelta(seconds=_timeout_s)


class _DistWithTimeouts(types.ModuleType):
    """``torch.distributed`` as CrypTen's communicator sees it, with timeouts on group creation."""

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.distributed, name)

    @staticmethod
    def init_process_group(*args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", collective_timeout())
        if _group_store is not None:
            kwargs.pop("init_method", None)
            kwargs["store"] = _group_store
        torch.distributed.init_process_group(*args, **kwargs)

    @staticmethod
    def new_group(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", collective_timeout())
        return torch.distributed.new_group(*args, **kwargs)


_original_pow = _power.pow
_original_decode = FixedPointEncoder.decode
if not getattr(FixedPointEncoder, "_crypten_fl_patched", False):
    FixedPointEncoder.decode = _decode
    FixedPointEncoder._crypten_fl_patched = True
    _power.pow = _pow
    CrypTensor.pow = _pow
    _dcomm.dist = _DistWithTimeouts("torch.distributed")

__all__ = ["collective_timeout", "crypten", "set_collective_timeout", "set_group_store"]
