"""Turning what `run.log` receives into floats, cheaply and in the caller's thread.

Python numbers pass as they are; numpy scalars and 1-element arrays become floats; a
1-element torch tensor on the CPU is read at once (``item()``, no device involved), one
on an accelerator is cloned on its stream and read later in the writer thread (one device
synchronisation and one copy per batch), so the training loop never waits for the device. Anything else raises here, in the caller.
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

from deepscope.store.writer import DeviceValue

_INT64 = 2**63


def check_text(what: str, text: str) -> str:
    """`text` unchanged if it can be stored (valid Unicode); ValueError naming `what` if it
    holds a lone surrogate (from ``os.fsdecode``, ``surrogateescape`` or a bad decode)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{what} {text[:40]!r} holds a lone surrogate ({text[exc.start]!r} at "
                f"{exc.start}), which is not valid Unicode and cannot be stored; fix it with "
                "s.encode('utf-8', 'backslashreplace').decode()"
            ) from None
    return text


def escape_text(text: str) -> str:
    """`text` with any lone surrogate written as ``\\udcxx`` (for free text: messages)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def to_scalar(tag: str, v: Any) -> float | DeviceValue:
    """A value for `run.log`: a float, or a `DeviceValue` read later. Raises TypeError or
    ValueError naming `tag` for strings, None, complex numbers or multi-element tensors."""
    t = type(v)
    if t is float:
        return float(v)
    if t is int or t is bool:
        try:
            return float(v)
        except OverflowError:
            raise ValueError(f"run.log value for {tag!r} is too large for a float64: {v}") from None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(v, torch.Tensor):
        return _tensor(tag, v, torch)
    if hasattr(v, "dtype") and hasattr(v, "shape") and t.__module__.startswith("numpy"):
        return _numpy(tag, v)
    if isinstance(v, (str, bytes)) or v is None:
        raise TypeError(
            f"run.log value for {tag!r} must be a number or a 1-element tensor, not "
            f"{t.__name__} ({v!r:.40}); log text with run.log_text"
        )
    if isinstance(v, numbers.Complex) and not isinstance(v, numbers.Real):
        raise TypeError(f"run.log value for {tag!r} is complex ({v}); log its .real or abs()")
    if isinstance(v, numbers.Real):
        return float(v)
    raise TypeError(
        f"run.log value for {tag!r} must be a number or a 1-element tensor, not {t.__name__}"
    )


def _numpy(tag: str, v: Any) -> float:
    kind = v.dtype.kind
    if kind == "c":
        raise TypeError(f"run.log value for {tag!r} is complex ({v.dtype}); log its .real or abs()")
    if kind not in "biuf":
        raise TypeError(f"run.log value for {tag!r} must be numeric, not a numpy {v.dtype} value")
    if v.size != 1:
        raise ValueError(
            f"run.log value for {tag!r} must hold exactly one number, got shape {tuple(v.shape)}; "
            "log a reduction (.mean()) or use run.log_histogram"
        )
    return float(v.reshape(-1)[0])


def _tensor(tag: str, v: Any, torch: Any) -> float | DeviceValue:
    if v.numel() != 1:
        raise ValueError(
            f"run.log value for {tag!r} must be a 1-element tensor, got shape {tuple(v.shape)}; "
            "log a reduction (.mean()) or use run.log_histogram"
        )
    if v.is_complex():
        raise TypeError(f"run.log value for {tag!r} is a complex tensor; log .real or .abs()")
    dev = v.device
    if dev.type == "cpu" or dev.type == "meta":
        if dev.type == "meta":
            raise ValueError(f"run.log value for {tag!r} is a meta tensor (it has no value)")
        return float(v.item())
    # clone (queued on the caller's stream, no sync): the caller may change the tensor in
    # place after logging (a running sum, a learnable scale the optimizer updates)
    return DeviceValue(v.detach().clone())


def to_step(step: Any) -> int:
    """A step as a python int (python/numpy ints, 0-d integer tensors); TypeError otherwise,
    ValueError outside the signed 64-bit range the store keeps."""
    if type(step) is int and -_INT64 <= step < _INT64:
        return step
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        if hasattr(step, "numel") and step.numel() == 1 and not step.is_floating_point():
            return to_step(int(step.item()))
        raise TypeError(f"step must be an integer, not {type(step).__name__} ({step!r:.40})")
    s = int(step.__index__())
    if not -_INT64 <= s < _INT64:
        raise ValueError(f"step {s} does not fit in 64 bits")
    return s
