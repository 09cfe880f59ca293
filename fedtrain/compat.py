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
6. **Start-up.** ``import crypten`` imports its ONNX converter, and with it onnx and ml_dtypes
   (0.6 s of every party's start), for ``from_pytorch``/``from_onnx`` only, which crypten-fl never
   calls. A stand-in with the converter's four public names is registered first; the real
   converter (unchanged) is loaded the first time one of them is used.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import importlib.util
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

ONNX_CONVERTER = "crypten.nn.onnx_converter"


def load_onnx_converter() -> types.ModuleType:
    """CrypTen's real ONNX converter (loaded on first use, then kept in ``sys.modules``)."""
    current = sys.modules.get(ONNX_CONVERTER)
    if current is not None and not getattr(current, "_crypten_fl_stand_in", False):
        return current
    origin = importlib.util.find_spec("crypten").origin  # type: ignore[union-attr]
    path = os.path.join(os.path.dirname(origin or ""), "nn", "onnx_converter.py")
    spec = importlib.util.spec_from_file_location(ONNX_CONVERTER, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[ONNX_CONVERTER] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _defer_onnx_converter() -> None:
    if ONNX_CONVERTER in sys.modules:
        return
    stand_in = types.ModuleType(ONNX_CONVERTER, "Loads CrypTen's ONNX converter on first use.")
    stand_in._crypten_fl_stand_in = True  # type: ignore[attr-defined]

    def deferred(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(load_onnx_converter(), name)(*args, **kwargs)
        call.__name__ = name
        return call

    for name in ("from_onnx", "from_pytorch", "from_tensorflow"):
        setattr(stand_in, name, deferred(name))
    stand_in.TF_AND_TF2ONNX = all(  # type: ignore[attr-defined]
        importlib.util.find_spec(m) is not None for m in ("tensorflow", "tf2onnx"))

    def other(name: str) -> Any:  # e.g. crypten.nn.onnx_converter.numpy_helper: the real one
        if name.startswith("__"):  # the import machinery probes __path__ and the like
            raise AttributeError(name)
        return getattr(load_onnx_converter(), name)

    stand_in.__getattr__ = other  # type: ignore[attr-defined]
    sys.modules[ONNX_CONVERTER] = stand_in


_defer_onnx_converter()

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
