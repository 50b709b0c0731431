"""Output shapes and weights of Keras' spatial layers: convolutions, pooling, padding.

Part of `_keras_layers` (which holds the table of rules); channels-last unless the layer's
`data_format` is `channels_first`. Helpers here (`dim`, `as_shape`) validate config values:
anything but a plausible non-negative int dimension is "unknown", never an error.
"""

from __future__ import annotations

from typing import Any

from deepscope.graph.ir import Shape

Weight = tuple[str, tuple[int, ...], bool]

MAX_DIM = 1 << 40  # larger "dimensions" in a config are treated as unknown


def dim(v: Any) -> int | None:
    """A config dimension as a non-negative int, or None when unknown or absurd."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > MAX_DIM:
        return None
    return v


def as_shape(v: Any) -> Shape | None:
    """A list of dims (None allowed) as a Shape; anything else is None."""
    if not isinstance(v, list) or len(v) > 32:
        return None
    if not all(d is None or dim(d) is not None for d in v):
        return None
    return tuple(v)


def _ints(v: Any, n: int, default: int) -> tuple[int, ...]:
    if dim(v) is not None:
        return (int(v),) * n
    if isinstance(v, list) and len(v) == n and all(dim(x) is not None for x in v):
        return tuple(int(x) for x in v)
    return (default,) * n


def _rank(cls: str) -> int:
    for r in (1, 2, 3):
        if f"{r}D" in cls:
            return r
    return 2


def first_shape(ins: list[Shape | None]) -> Shape | None:
    return ins[0] if ins else None


def _channels_first(cfg: dict[str, Any]) -> bool:
    return cfg.get("data_format") == "channels_first"


def _split(s: Shape, rank: int, cf: bool) -> tuple[list[int | None], int | None] | None:
    """(spatial dims, channels) of a (batch, *spatial, channels) shape."""
    if len(s) != rank + 2:
        return None
    return (list(s[2:]), s[1]) if cf else (list(s[1:-1]), s[-1])


def _join(batch: int | None, sp: list[int | None], ch: int | None, cf: bool) -> Shape:
    return (batch, ch, *sp) if cf else (batch, *sp, ch)


def _window(d: int | None, k: int, st: int, dil: int, padding: Any) -> int | None:
    if d is None or st <= 0:
        return None
    if padding in ("same", "causal"):
        return -(-d // st)
    eff = (k - 1) * dil + 1
    return max(0, (d - eff) // st + 1)


def _conv(cfg: dict[str, Any], ins: list[Shape | None], cls: str) -> tuple[Shape | None, Any]:
    """(output shape, (rank, kernel, cin)) shared by every convolution flavour."""
    s, rank, cf = first_shape(ins), _rank(cls), _channels_first(cfg)
    k = _ints(cfg.get("kernel_size"), rank, 1)
    if s is None or (parts := _split(s, rank, cf)) is None:
        return None, (rank, k, None)
    sp, cin = parts
    st = _ints(cfg.get("strides"), rank, 1)
    dil = _ints(cfg.get("dilation_rate"), rank, 1)
    out_sp = [
        _window(d, kk, ss, dd, cfg.get("padding"))
        for d, kk, ss, dd in zip(sp, k, st, dil, strict=True)
    ]
    if "Transpose" in cls:
        outp = cfg.get("output_padding")
        op = _ints(outp, rank, 0) if outp is not None else None
        out_sp = [
            _deconv(d, kk, ss, dd, cfg.get("padding"), None if op is None else op[i])
            for i, (d, kk, ss, dd) in enumerate(zip(sp, k, st, dil, strict=True))
        ]
    return _join(s[0], out_sp, cin, cf), (rank, k, cin)


def _deconv(d: int | None, k: int, st: int, dil: int, padding: Any, op: int | None) -> int | None:
    if d is None:
        return None
    eff = (k - 1) * dil + 1
    if op is None:
        return d * st if padding == "same" else d * st + max(eff - st, 0)
    pad = eff // 2 if padding == "same" else 0
    return (d - 1) * st + eff - 2 * pad + op


def _with_channels(s: Shape | None, ch: int | None, cf: bool) -> Shape | None:
    if s is None:
        return None
    return (s[0], ch, *s[2:]) if cf else (*s[:-1], ch)


def bias_weight(cfg: dict[str, Any], n: int | None) -> list[Weight]:
    if cfg.get("use_bias", True) is False or n is None:
        return []
    return [("bias", (n,), True)]


def conv(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """Conv1D/2D/3D and their Transpose versions (grouped convolutions included)."""
    out, (_, k, cin) = _conv(cfg, ins, cls)
    f = dim(cfg.get("filters"))
    cf = _channels_first(cfg)
    out = _with_channels(out, f, cf)
    if f is None or cin is None:
        return out, []
    if "Transpose" in cls:
        kernel = (*k, f, cin)
    else:
        groups = dim(cfg.get("groups")) or 1
        kernel = (*k, cin // groups, f)
    return out, [("kernel", kernel, True), *bias_weight(cfg, f)]


def depthwise(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """DepthwiseConv1D/2D: one (or `depth_multiplier`) filter per input channel."""
    out, (_, k, cin) = _conv(cfg, ins, cls)
    dm = dim(cfg.get("depth_multiplier", 1)) or 1
    ch = cin * dm if cin is not None else None
    out = _with_channels(out, ch, _channels_first(cfg))
    if cin is None:
        return out, []
    return out, [("depthwise_kernel", (*k, cin, dm), True), *bias_weight(cfg, ch)]


def separable(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """SeparableConv1D/2D: depthwise then pointwise; one bias after the pointwise."""
    out, (rank, k, cin) = _conv(cfg, ins, cls)
    f = dim(cfg.get("filters"))
    dm = dim(cfg.get("depth_multiplier", 1)) or 1
    out = _with_channels(out, f, _channels_first(cfg))
    if cin is None or f is None:
        return out, []
    return out, [
        ("depthwise_kernel", (*k, cin, dm), True),
        ("pointwise_kernel", (*(1,) * rank, cin * dm, f), True),
        *bias_weight(cfg, f),
    ]


def pool(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """MaxPooling*/AveragePooling*: strides default to the pool size."""
    s, rank, cf = first_shape(ins), _rank(cls), _channels_first(cfg)
    if s is None or (parts := _split(s, rank, cf)) is None:
        return None, []
    sp, ch = parts
    k = _ints(cfg.get("pool_size", 2), rank, 2)
    st = _ints(cfg.get("strides") if cfg.get("strides") is not None else list(k), rank, 1)
    out = [_window(d, kk, ss, 1, cfg.get("padding")) for d, kk, ss in zip(sp, k, st, strict=True)]
    return _join(s[0], out, ch, cf), []


def global_pool(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """Global pooling: (batch, channels), or ones in place of the spatial dims (`keepdims`)."""
    s, rank, cf = first_shape(ins), _rank(cls), _channels_first(cfg)
    if s is None or (parts := _split(s, rank, cf)) is None:
        return None, []
    _, ch = parts
    if cfg.get("keepdims") is True:
        return _join(s[0], [1] * rank, ch, cf), []
    return (s[0], ch), []


def _pairs(v: Any, rank: int) -> list[tuple[int, int]] | None:
    if dim(v) is not None:
        return [(int(v), int(v))] * rank
    if not isinstance(v, list):
        return None
    if rank == 1 and len(v) == 2 and all(dim(x) is not None for x in v):
        return [(int(v[0]), int(v[1]))]
    if len(v) != rank:
        return None
    out: list[tuple[int, int]] = []
    for x in v:
        if dim(x) is not None:
            out.append((int(x), int(x)))
        elif isinstance(x, list) and len(x) == 2 and all(dim(y) is not None for y in x):
            out.append((int(x[0]), int(x[1])))
        else:
            return None
    return out


def pad_or_crop(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """ZeroPadding* (adds) and Cropping* (removes) rows and columns at each edge."""
    s, rank, cf = first_shape(ins), _rank(cls), _channels_first(cfg)
    crop = cls.startswith("Cropping")
    amounts = _pairs(cfg.get("cropping" if crop else "padding", 1 if not crop else 0), rank)
    if s is None or amounts is None or (parts := _split(s, rank, cf)) is None:
        return None, []
    sp, ch = parts
    sign = -1 if crop else 1
    out = [
        None if d is None else max(0, d + sign * (a + b))
        for d, (a, b) in zip(sp, amounts, strict=True)
    ]
    return _join(s[0], out, ch, cf), []


def upsample(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """UpSampling1D/2D/3D: each spatial dim times `size`."""
    s, rank, cf = first_shape(ins), _rank(cls), _channels_first(cfg)
    if s is None or (parts := _split(s, rank, cf)) is None:
        return None, []
    sp, ch = parts
    size = _ints(cfg.get("size", 2), rank, 2)
    return _join(
        s[0], [None if d is None else d * f for d, f in zip(sp, size, strict=True)], ch, cf
    ), []


def resize(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    """Resizing and CenterCrop: a fixed (height, width)."""
    s, cf = first_shape(ins), _channels_first(cfg)
    if not s or len(s) not in (3, 4):
        return None, []
    hw = [dim(cfg.get("height")), dim(cfg.get("width"))]
    if len(s) == 3:
        return ((s[0], *hw) if cf else (*hw, s[-1])), []
    return _join(s[0], hw, s[1] if cf else s[-1], cf), []
