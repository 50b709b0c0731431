"""Scalars still on an accelerator: cloned in the training thread, read by the writer.

The training thread never synchronises with the device: `run.log` clones a 1-element
device tensor on its stream (so later in-place changes do not leak in) and the writer
thread reads every such value of a batch with one device synchronisation and one copy
per (device, dtype).
"""

from __future__ import annotations

import math
from typing import Any

from deepscope.store.protocol import ScalarRecord


class DeviceValue:
    """A 1-element tensor on an accelerator, read in the writer thread (no sync in training)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def get(self) -> float:
        return read_device_values([self])[0]


def read_device_values(values: list[DeviceValue]) -> list[float]:
    """Read many device scalars with one synchronisation and one copy per (device, dtype).

    The device is synchronised as a whole, so a value queued on any stream is complete.
    """
    import torch

    out: list[float] = [math.nan] * len(values)
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, v in enumerate(values):
        groups.setdefault((v.tensor.device, v.tensor.dtype), []).append(i)
    synced = set()
    for (device, _dtype), idx in groups.items():
        if device.type == "cuda" and device not in synced:
            torch.cuda.synchronize(device)
            synced.add(device)
        flat = torch.cat([values[i].tensor.reshape(1) for i in idx])
        if flat.dtype not in (torch.float32, torch.float64):
            flat = flat.to(torch.float64)
        for i, x in zip(idx, flat.cpu().tolist(), strict=True):
            out[i] = float(x)
    return out


def read_device_items(items: list[Any]) -> list[Any]:
    """Turn every "d" item (scalars with device tensors) into an "s" item, in one read."""
    pending = [v for it in items if it[0] == "d" for _, v in it[3] if type(v) is DeviceValue]
    if not pending:
        return items
    read = dict(zip(map(id, pending), read_device_values(pending), strict=True))
    out = []
    for it in items:
        if it[0] == "d":
            pairs = tuple((k, read[id(v)] if type(v) is DeviceValue else v) for k, v in it[3])
            out.append(ScalarRecord("s", it[1], it[2], pairs))
        else:
            out.append(it)
    return out
