"""Output shapes and weights of Keras layers, from their config alone (never imports keras).

`infer(class_name, config, input_shapes)` returns the output shape (None when unknown) and
the weights the layer creates, in Keras' creation order (the order of `vars/0, vars/1, ...`
in a `.keras` file), each as (name, shape, trainable). It covers every layer class used by
`keras.applications` plus the common core, recurrent and attention layers; an unknown
class gives (None, []). Shapes are channels-last unless `data_format` says otherwise.

Example:
    >>> infer("Dense", {"units": 3}, [(None, 4)])
    ((None, 3), [('kernel', (4, 3), True), ('bias', (3,), True)])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from deepscope.graph.ir import Shape
from deepscope.sources._keras_spatial import (
    MAX_DIM,
    Weight,
    as_shape,
    bias_weight,
    conv,
    depthwise,
    dim,
    first_shape,
    global_pool,
    pad_or_crop,
    pool,
    resize,
    separable,
    upsample,
)

__all__ = ["RULES", "Weight", "as_shape", "dim", "infer"]


IDENTITY = frozenset(
    {
        "InputLayer",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "Softmax",
        "ThresholdedReLU",
        "Rescaling",
        "Identity",
        "Masking",
        "ActivityRegularization",
        "StochasticDepth",
        "UnitNormalization",
        "CustomScaleLayer",
    }
)
MERGE = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"})


def dense(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    """Dense on the last axis of an N-D input."""
    s, units = first_shape(ins), dim(cfg.get("units"))
    out = (*s[:-1], units) if s else None
    if units is None or not s or s[-1] is None:
        return out, []
    return out, [("kernel", (s[-1], units), True), *bias_weight(cfg, units)]


def _axes(v: Any, ndim: int) -> list[int] | None:
    axes = v if isinstance(v, list) else [v]
    if not all(isinstance(a, int) and not isinstance(a, bool) and -ndim <= a < ndim for a in axes):
        return None
    return [a % ndim for a in axes]


def _axis_shape(s: Shape | None, axis: Any) -> tuple[int, ...] | None:
    if not s or (axes := _axes(axis, len(s))) is None:
        return None
    dims = [s[a] for a in axes]
    return tuple(d for d in dims if d is not None) if None not in dims else None


def batch_norm(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    """gamma, beta (when `scale`/`center`), then the moving mean and variance (frozen)."""
    s = first_shape(ins)
    shape = _axis_shape(s, cfg.get("axis", -1))
    if shape is None:
        return s, []
    ws: list[Weight] = []
    if cfg.get("scale", True) is not False:
        ws.append(("gamma", shape, True))
    if cfg.get("center", True) is not False:
        ws.append(("beta", shape, True))
    return s, [*ws, ("moving_mean", shape, False), ("moving_variance", shape, False)]


def layer_norm(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """LayerNormalization / GroupNormalization / RMSNormalization: gamma, beta on `axis`."""
    s = first_shape(ins)
    shape = _axis_shape(s, cfg.get("axis", -1))
    if shape is None:
        return s, []
    ws: list[Weight] = []
    rms = cfg.get("rms_scaling") is True or cls == "RMSNormalization"
    if cfg.get("scale", True) is not False or rms:
        ws.append(("gamma", shape, True))
    if cfg.get("center", True) is not False and not rms:
        ws.append(("beta", shape, True))
    return s, ws


def normalization(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    """The preprocessing `Normalization`: adapted mean, variance, count unless given."""
    s = first_shape(ins)
    if cfg.get("mean") is not None or not s:
        return s, []
    axes = _axes(cfg.get("axis", -1), len(s)) if cfg.get("axis") is not None else []
    if axes is None or any(s[a] is None for a in axes):
        return s, []
    shape = tuple(int(s[a] or 0) for a in sorted(axes))
    return s, [("mean", shape, False), ("variance", shape, False), ("count", (), False)]


def embedding(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    s, n, d = first_shape(ins), dim(cfg.get("input_dim")), dim(cfg.get("output_dim"))
    out = (*s, d) if s is not None else None
    return out, [("embeddings", (n, d), True)] if n is not None and d is not None else []


def merge(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    """Elementwise merges broadcast their inputs (numpy rules)."""
    if not ins or any(s is None for s in ins):
        return None, []
    n = max(len(s) for s in ins if s is not None)
    out: list[int | None] = []
    for i in range(n):
        dims = {s[i - n + len(s)] for s in ins if s is not None and i - n + len(s) >= 0}
        known = {d for d in dims if d is not None and d != 1}
        out.append(known.pop() if len(known) == 1 else (1 if dims == {1} else None))
    return tuple(out), []


def concatenate(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    if not ins or any(s is None for s in ins):
        return None, []
    first = ins[0]
    assert first is not None
    axes = _axes(cfg.get("axis", -1), len(first))
    if axes is None or any(s is None or len(s) != len(first) for s in ins):
        return None, []
    a = axes[0]
    total: int | None = 0
    for s in ins:
        d = s[a] if s is not None else None
        total = None if d is None or total is None else total + d
    return (*first[:a], total, *first[a + 1 :]), []


def flatten(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    s = first_shape(ins)
    if not s:
        return None, []
    rest = s[1:]
    return (s[0], math.prod(d for d in rest if d is not None) if None not in rest else None), []


def reshape(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    s, target = first_shape(ins), cfg.get("target_shape")
    if not s or not isinstance(target, list) or len(target) > 32:
        return None, []
    if not all(
        isinstance(t, int) and not isinstance(t, bool) and -1 <= t <= MAX_DIM for t in target
    ):
        return None, []
    out: list[int | None] = list(target)
    if target.count(-1) == 1:
        known = math.prod(t for t in target if t != -1)
        total = math.prod(d for d in s[1:] if d is not None) if None not in s[1:] else None
        out[target.index(-1)] = total // known if total is not None and known else None
    elif -1 in target:
        return None, []
    return (s[0], *out), []


def permute(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    s, dims = first_shape(ins), cfg.get("dims")
    if not s or not isinstance(dims, list) or sorted(dims) != list(range(1, len(s))):
        return None, []
    return (s[0], *(s[d] for d in dims)), []


def repeat_vector(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    s = first_shape(ins)
    return ((s[0], dim(cfg.get("n")), s[-1]) if s and len(s) == 2 else None), []


def layer_scale(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    """ConvNeXt's LayerScale: one gamma per channel."""
    d = dim(cfg.get("projection_dim"))
    return first_shape(ins), [("gamma", (d,), True)] if d is not None else []


def prelu(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    s = first_shape(ins)
    if not s or None in s[1:]:
        return s, []
    shape = [int(d or 0) for d in s[1:]]
    shared = cfg.get("shared_axes") or []
    for a in shared if isinstance(shared, list) else [shared]:
        if isinstance(a, int) and 1 <= a <= len(shape):
            shape[a - 1] = 1
    return s, [("alpha", tuple(shape), True)]


_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def recurrent(
    cfg: dict[str, Any], ins: list[Shape | None], cls: str
) -> tuple[Shape | None, list[Weight]]:
    """SimpleRNN / GRU / LSTM: kernel, recurrent_kernel, bias (GRU `reset_after`: 2 rows)."""
    s, u = first_shape(ins), dim(cfg.get("units"))
    if not s or len(s) != 3 or u is None:
        return None, []
    out: Shape = (s[0], s[1], u) if cfg.get("return_sequences") is True else (s[0], u)
    if s[2] is None:
        return out, []
    g = _GATES[cls] * u
    bias: tuple[int, ...] = (2, g) if cls == "GRU" and cfg.get("reset_after", True) else (g,)
    ws: list[Weight] = [("kernel", (s[2], g), True), ("recurrent_kernel", (u, g), True)]
    if cfg.get("use_bias", True) is not False:
        ws.append(("bias", bias, True))
    return out, ws


def bidirectional(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    """Bidirectional(RNN): the wrapped layer twice; `concat` doubles the features."""
    inner = cfg.get("layer")
    if not isinstance(inner, dict) or not isinstance(inner.get("config"), dict):
        return None, []
    icls = inner.get("class_name")
    if icls not in _GATES:
        return None, []
    out, ws = recurrent(inner["config"], ins, str(icls))
    if out is not None and cfg.get("merge_mode", "concat") == "concat" and out[-1] is not None:
        out = (*out[:-1], 2 * out[-1])
    named = [(f"forward_{n}", sh, t) for n, sh, t in ws] + [
        (f"backward_{n}", sh, t) for n, sh, t in ws
    ]
    return out, named


def attention(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    """MultiHeadAttention: query/key/value/output einsum-dense projections."""
    q = first_shape(ins)
    v = ins[1] if len(ins) > 1 else q
    k = ins[2] if len(ins) > 2 else v
    h, kd = dim(cfg.get("num_heads")), dim(cfg.get("key_dim"))
    vd = dim(cfg.get("value_dim")) if cfg.get("value_dim") is not None else kd
    if not q or not v or not k or h is None or kd is None or vd is None:
        return None, []
    dq, dv, dk = q[-1], v[-1], k[-1]
    dout = cfg.get("output_shape")
    d_out = (
        dim(dout)
        if dim(dout) is not None
        else (dim(dout[-1]) if isinstance(dout, list) and dout else dq)
    )
    out = (*q[:-1], d_out)
    if dq is None or dv is None or dk is None or d_out is None:
        return out, []
    b = cfg.get("use_bias", True) is not False
    ws: list[Weight] = []
    for name, d_in, d_head in (("query", dq, kd), ("key", dk, kd), ("value", dv, vd)):
        ws.append((f"{name}/kernel", (d_in, h, d_head), True))
        if b:
            ws.append((f"{name}/bias", (h, d_head), True))
    ws.append(("attention_output/kernel", (h, vd, d_out), True))
    if b:
        ws.append(("attention_output/bias", (d_out,), True))
    return out, ws


def _same(
    cfg: dict[str, Any], ins: list[Shape | None], _: str
) -> tuple[Shape | None, list[Weight]]:
    return first_shape(ins), []


def _rules() -> dict[
    str, Callable[[dict[str, Any], list[Shape | None], str], tuple[Shape | None, list[Weight]]]
]:
    table: dict[str, Any] = {c: _same for c in IDENTITY}
    table.update({c: merge for c in MERGE})
    for r in ("1D", "2D", "3D"):
        table[f"Conv{r}"] = conv
        table[f"Conv{r}Transpose"] = conv
        table[f"MaxPooling{r}"] = pool
        table[f"AveragePooling{r}"] = pool
        table[f"GlobalAveragePooling{r}"] = global_pool
        table[f"GlobalMaxPooling{r}"] = global_pool
        table[f"ZeroPadding{r}"] = pad_or_crop
        table[f"Cropping{r}"] = pad_or_crop
        table[f"UpSampling{r}"] = upsample
    for r in ("1D", "2D"):
        table[f"DepthwiseConv{r}"] = depthwise
        table[f"SeparableConv{r}"] = separable
    table.update(
        {
            "Dense": dense,
            "BatchNormalization": batch_norm,
            "LayerNormalization": layer_norm,
            "GroupNormalization": layer_norm,
            "RMSNormalization": layer_norm,
            "Normalization": normalization,
            "Embedding": embedding,
            "Concatenate": concatenate,
            "Flatten": flatten,
            "Reshape": reshape,
            "Permute": permute,
            "RepeatVector": repeat_vector,
            "Resizing": resize,
            "CenterCrop": resize,
            "LayerScale": layer_scale,
            "PReLU": prelu,
            "SimpleRNN": recurrent,
            "GRU": recurrent,
            "LSTM": recurrent,
            "Bidirectional": bidirectional,
            "MultiHeadAttention": attention,
        }
    )
    return table


RULES = _rules()


def infer(
    cls: str, cfg: dict[str, Any], ins: list[Shape | None]
) -> tuple[Shape | None, list[Weight]]:
    """Output shape and weights of one call of layer class `cls` on inputs of shapes `ins`."""
    rule = RULES.get(cls)
    if rule is None:
        return None, []
    return rule(cfg, ins, cls)
