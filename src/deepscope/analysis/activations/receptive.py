"""Receptive fields of conv units, found by gradient, and the input crops they cut.

On the first batch, the support of d(unit at the centre position)/d(input) over four random
inputs gives the box one position sees, and a position's box is that box moved by the
layer's stride (how far the box moves for one step of the position, from a second probe).
ReLU and max-pool gating can make the probe slightly smaller than the theoretical field;
padding clips it at the borders.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.MaxPool2d(2))
    >>> rf = probe_field(net, net[1], torch.rand(1, 1, 12, 12), channels_last=False)
    >>> rf["size"], rf["stride"], box(rf, 0, 0)
    ((4, 4), (2.0, 2.0), (0, 4, 0, 4))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepscope.analysis.activations.base import run_model
from deepscope.capture.hooks import HookSet

__all__ = ["box", "crop", "probe_field"]


class _Stop(Exception):
    pass


def probe_field(
    model: nn.Module, module: nn.Module, x: torch.Tensor, channels_last: bool
) -> dict[str, Any] | None:
    """The receptive field of a 4-D layer's centre position, by input gradient (None when
    the output is not 4-D or does not depend on the input)."""
    kept: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: tuple[Any, ...], out: Any) -> None:
        kept.append(out if isinstance(out, torch.Tensor) else out[0])
        raise _Stop

    modes = {m: m.training for m in model.modules()}
    probe = torch.randn((4, *x.shape[1:]), dtype=x.dtype, device=x.device, requires_grad=True)
    try:
        model.eval()
        with torch.enable_grad(), HookSet() as hooks:
            hooks.forward(module, hook)
            try:
                run_model(model, probe)
            except _Stop:
                pass
    finally:
        for m, mode in modes.items():
            m.training = mode
    out = kept[0]
    if out.ndim != 4 or not out.requires_grad:
        return None
    out = out.movedim(-1, 1) if channels_last else out
    h, w = int(out.shape[2]), int(out.shape[3])
    cy, cx = h // 2, w // 2
    in_h, in_w = (
        int(probe.shape[-2 if not channels_last else 1]),
        int(probe.shape[-1 if not channels_last else 2]),
    )
    here = _support(out, probe, cy, cx, channels_last, retain=True)
    if here is None:
        return None
    # the stride is how far the box moves for one step of the position (a second probe)
    ny, nx = (cy - 1 if cy > 0 else cy), (cx - 1 if cx > 0 else cx)
    there = _support(out, probe, ny, nx, channels_last, retain=False)
    sy = float(here[0] - there[0]) if there and ny != cy else in_h / h
    sx = float(here[2] - there[2]) if there and nx != cx else in_w / w
    return {
        "method": "gradient",
        "box_at_centre": here,
        "centre": (cy, cx),
        "stride": (sy, sx),
        "size": (here[1] - here[0], here[3] - here[2]),
        "input_size": (in_h, in_w),
    }


def _support(
    out: torch.Tensor, probe: torch.Tensor, y: int, x: int, channels_last: bool, retain: bool
) -> tuple[int, int, int, int] | None:
    """Box (y0, y1, x0, x1) of the inputs whose gradient of position (y, x) is non-zero."""
    (grad,) = torch.autograd.grad(out[:, :, y, x].sum(), probe, retain_graph=retain)
    g = grad.movedim(-1, 1) if channels_last else grad
    support = g.abs().sum((0, 1)) > 0
    ys, xs = torch.nonzero(support.any(1)).flatten(), torch.nonzero(support.any(0)).flatten()
    if ys.numel() == 0:
        return None
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def box(rf: dict[str, Any], y: int, x: int) -> tuple[int, int, int, int]:
    """The input box (y0, y1, x0, x1) that output position (y, x) sees, clipped to the input."""
    y0, y1, x0, x1 = rf["box_at_centre"]
    sy, sx = rf["stride"]
    dy, dx = round((y - rf["centre"][0]) * sy), round((x - rf["centre"][1]) * sx)
    h, w = rf["input_size"]
    return max(0, y0 + dy), min(h, y1 + dy), max(0, x0 + dx), min(w, x1 + dx)


def crop(item: torch.Tensor, where: tuple[int, int, int, int], channels_last: bool) -> torch.Tensor:
    """A CPU copy of one input item cut to a box (its own storage, not a view of the batch)."""
    y0, y1, x0, x1 = where
    if channels_last:
        return item[y0:y1, x0:x1].detach().cpu().clone()
    return item[:, y0:y1, x0:x1].detach().cpu().clone()
