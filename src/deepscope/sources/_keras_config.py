"""Keras model `config.json` (plain JSON) → Graph IR. Never imports keras (M4).

Class names and modules are only strings to display; a Lambda layer's code is never decoded.
"""

from __future__ import annotations

import re
from typing import Any

from deepscope.errors import ModelFormatError
from deepscope.graph.ir import Edge, Graph, Node, ParamRef, Shape, TensorMeta

MODEL_CLASSES = {"Sequential", "Functional", "Model"}
MAX_DEPTH = 16
_SHOWN = (
    "units",
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "activation",
    "rate",
    "pool_size",
    "input_dim",
    "output_dim",
    "axis",
    "use_bias",
    "dtype",
)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


def _json_safe(v: Any, depth: int = 0) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v if not isinstance(v, str) else v[:200]
    if isinstance(v, list) and depth < 3:
        return [_json_safe(x, depth + 1) for x in v[:16]]
    return str(v)[:200]


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    if isinstance(v, list) and all(isinstance(x, int) for x in v):
        return tuple(v)
    return (1,) * n


class KerasConfigParser:
    """Builds a Graph from a parsed Keras model config; collects notes (e.g. Lambda layers)."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.notes: list[str] = []

    def parse(self, config: Any) -> Graph:
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise ModelFormatError("Keras config.json must be an object with a class_name")
        outs = self._model(config, [], None, 0)
        graph = Graph(nodes=self.nodes, edges=self.edges, meta={"source": "keras"})
        graph.inputs = [n.id for n in self.nodes if n.op == "input_layer" and "/" not in n.id]
        graph.outputs = [nid for nid, _ in outs]
        return graph

    def _model(
        self,
        cfg: dict[str, Any],
        prefix: list[str],
        feed: list[tuple[str, Shape | None]] | None,
        depth: int,
    ) -> list[tuple[str, Shape | None]]:
        if depth > MAX_DEPTH:
            raise ModelFormatError(f"Keras models nest deeper than {MAX_DEPTH} levels")
        inner = cfg.get("config")
        layers = inner.get("layers") if isinstance(inner, dict) else None
        if not isinstance(layers, list):
            raise ModelFormatError(f"Keras model {cfg.get('class_name')!r} lists no layers")
        if cfg.get("class_name") == "Sequential":
            current = feed or []
            for layer in layers:
                current = self._layer(layer, prefix, current, depth)
            return current
        return self._functional(layers, prefix, depth)

    def _functional(
        self, layers: list[Any], prefix: list[str], depth: int
    ) -> list[tuple[str, Shape | None]]:
        produced: dict[str, list[tuple[str, Shape | None]]] = {}
        last: list[tuple[str, Shape | None]] = []
        for layer in layers:
            if not isinstance(layer, dict):
                raise ModelFormatError("a Keras layer entry must be an object")
            feed = [
                produced[h[0]][min(h[2], len(produced[h[0]]) - 1)]
                for h in _history(layer.get("inbound_nodes"))
                if h[0] in produced and produced[h[0]]
            ]
            last = self._layer(layer, prefix, feed, depth)
            produced[str(layer.get("name") or (layer.get("config") or {}).get("name"))] = last
        return last

    def _layer(
        self, layer: Any, prefix: list[str], feed: list[tuple[str, Shape | None]], depth: int
    ) -> list[tuple[str, Shape | None]]:
        if not isinstance(layer, dict):
            raise ModelFormatError("a Keras layer entry must be an object")
        cls = str(layer.get("class_name", "?"))[:100]
        raw_cfg = layer.get("config")
        cfg: dict[str, Any] = raw_cfg if isinstance(raw_cfg, dict) else {}
        name = str(layer.get("name") or cfg.get("name") or f"{cls}_{len(self.nodes)}")[
            :200
        ].replace("/", "_")
        if cls in MODEL_CLASSES and isinstance(cfg.get("layers"), list):
            return self._model(layer, prefix + [name], feed, depth + 1)
        nid = "/".join(prefix + [name])
        in_shape = feed[0][1] if feed else _input_shape(layer, cfg)
        out_shape, params = _shape_and_params(cls, cfg, in_shape, nid)
        node = Node(
            id=nid,
            op=_snake(cls),
            label=name,
            namespace=nid,
            inputs=[TensorMeta(shape=s) for _, s in feed],
            outputs=[TensorMeta(shape=out_shape)],
            params=params,
        )
        node.attrs["class_name"] = cls
        if isinstance(layer.get("module"), str):
            node.attrs["module"] = layer["module"][:200]
        for key in _SHOWN:
            if key in cfg:
                node.attrs[key] = _json_safe(cfg[key])
        if cls == "Lambda":
            node.attrs["code"] = "not decoded"
            self.notes.append(
                f"Lambda layer {name!r} holds Python code; it is shown but never decoded or run"
            )
        self.nodes.append(node)
        for j, (src, s) in enumerate(feed):
            self.edges.append(Edge(src=src, dst=nid, dst_input=j, tensor=TensorMeta(shape=s)))
        return [(nid, out_shape)]


def _history(inbound: Any) -> list[tuple[str, int, int]]:
    """(layer, node_index, tensor_index) of every input, from Keras 3 or Keras 2 formats."""
    found: list[tuple[str, int, int]] = []

    def walk(x: Any, depth: int) -> None:
        if depth > 8 or len(found) > 1000:
            return
        if isinstance(x, dict):
            hist = (
                (x.get("config") or {}).get("keras_history")
                if x.get("class_name") == "__keras_tensor__"
                else None
            )
            if isinstance(hist, list) and len(hist) == 3 and isinstance(hist[0], str):
                found.append(
                    (
                        hist[0],
                        int(hist[1]) if isinstance(hist[1], int) else 0,
                        int(hist[2]) if isinstance(hist[2], int) else 0,
                    )
                )
                return
            for v in x.values():
                walk(v, depth + 1)
        elif isinstance(x, list):
            if (
                len(x) >= 3
                and isinstance(x[0], str)
                and isinstance(x[1], int)
                and isinstance(x[2], int)
            ):
                found.append((x[0], x[1], x[2]))
                return
            for v in x:
                walk(v, depth + 1)

    walk(inbound, 0)
    return found


def _input_shape(layer: dict[str, Any], cfg: dict[str, Any]) -> Shape | None:
    for src in (
        cfg.get("batch_shape"),
        cfg.get("batch_input_shape"),
        (layer.get("build_config") or {}).get("input_shape")
        if isinstance(layer.get("build_config"), dict)
        else None,
    ):
        if isinstance(src, list) and all(d is None or isinstance(d, int) for d in src):
            return tuple(src)
    return None


def _shape_and_params(
    cls: str, cfg: dict[str, Any], s: Shape | None, nid: str
) -> tuple[Shape | None, list[ParamRef]]:
    bias = cfg.get("use_bias", True) is not False
    last = s[-1] if s else None
    if cls in ("InputLayer", "Dropout", "Activation", "ReLU", "LeakyReLU", "Softmax"):
        return s, []
    if cls == "Dense" and isinstance(cfg.get("units"), int):
        units = cfg["units"]
        ps = [ParamRef(f"{nid}/kernel", (last, units), "float32")] if isinstance(last, int) else []
        if bias:
            ps.append(ParamRef(f"{nid}/bias", (units,), "float32"))
        return (s[:-1] + (units,)) if s else None, ps
    if cls == "Flatten" and s:
        n = 1
        for d in s[1:]:
            n = n * d if isinstance(d, int) and isinstance(n, int) else None  # type: ignore[assignment]
        return (s[0], n), []
    if cls == "Conv2D" and isinstance(cfg.get("filters"), int):
        k, st = _tuple(cfg.get("kernel_size"), 2), _tuple(cfg.get("strides"), 2)
        f = cfg["filters"]
        ps = (
            [ParamRef(f"{nid}/kernel", (k[0], k[1], last, f), "float32")]
            if isinstance(last, int)
            else []
        )
        if bias:
            ps.append(ParamRef(f"{nid}/bias", (f,), "float32"))
        return _spatial(s, k, st, cfg.get("padding"), f), ps
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        k = _tuple(cfg.get("pool_size", 2), 2)
        st = _tuple(cfg.get("strides") or list(k), 2)
        return _spatial(s, k, st, cfg.get("padding"), last), []
    if cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D") and s:
        return (s[0], last), []
    if cls == "BatchNormalization" and isinstance(last, int):
        ps = [
            ParamRef(f"{nid}/{w}", (last,), "float32", trainable=w in ("gamma", "beta"))
            for w in ("gamma", "beta", "moving_mean", "moving_variance")
        ]
        return s, ps
    if (
        cls == "Embedding"
        and isinstance(cfg.get("input_dim"), int)
        and isinstance(cfg.get("output_dim"), int)
    ):
        ps = [ParamRef(f"{nid}/embeddings", (cfg["input_dim"], cfg["output_dim"]), "float32")]
        return (s + (cfg["output_dim"],)) if s else None, ps
    return None, []


def _spatial(
    s: Shape | None, k: tuple[int, ...], st: tuple[int, ...], padding: Any, ch: int | None
) -> Shape | None:
    if not s or len(s) != 4 or len(k) != 2 or len(st) != 2:
        return None
    out: list[int | None] = [s[0]]
    for d, kk, ss in zip(s[1:3], k, st, strict=True):
        if not isinstance(d, int) or ss <= 0:
            out.append(None)
        elif padding == "same":
            out.append(-(-d // ss))
        else:
            out.append((d - kk) // ss + 1)
    return (*out, ch)
