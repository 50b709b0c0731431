"""Keras model `config.json` (plain JSON) → Graph IR. Never imports keras (M4).

Class names and modules are only strings to display; a Lambda layer's code is never decoded.
Shapes, weights and MACs of each layer come from `_keras_layers` and `_keras_macs`; a layer
whose input shape cannot be inferred (an unknown class upstream) takes it from its own
`build_config`, so one unknown layer does not blank the rest of the model.

Each node also gets its storage path in a `.keras` weights file (`storage`): Keras 3 names
a layer's weights `layers/<snake_case class>[_<n>]/vars/<i>` by its position among the
layers of its model, not by its name (`keras.src.saving.saving_lib`).

Malformed configs raise `ModelFormatError` naming the layer; configs are capped at
`MAX_LAYERS` layers in all (M11, M12).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from deepscope.errors import ModelFormatError
from deepscope.graph.ir import Edge, Graph, Node, ParamRef, Shape, TensorMeta
from deepscope.sources._keras_layers import as_shape, infer
from deepscope.sources._keras_macs import layer_macs, partial_note

MODEL_CLASSES = {"Sequential", "Functional", "Model"}
MAX_DEPTH = 16
#: Most layers, all nesting levels together (keras.applications: at most ~1,100; ~1 KB each).
MAX_LAYERS = 20_000
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
    "groups",
    "depth_multiplier",
)
Feed = list[tuple[str, Shape | None]]


@lru_cache(maxsize=4096)
def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


@lru_cache(maxsize=4096)
def storage_name(class_name: str) -> str:
    """Keras' `naming.to_snake_case`: the base of a layer's path in a weights file."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _count_layers(config: dict[str, Any]) -> int:
    """Layers in a config, nested models' layers included (nesting up to MAX_DEPTH)."""
    count, todo = 0, [(config, 0)]
    while todo:
        cfg, depth = todo.pop()
        inner = cfg.get("config")
        layers = inner.get("layers") if isinstance(inner, dict) else None
        if not isinstance(layers, list) or depth > MAX_DEPTH:
            continue
        for layer in layers:
            nested = isinstance(layer, dict) and layer.get("class_name") in MODEL_CLASSES
            if nested and isinstance(layer.get("config"), dict):
                if isinstance(layer["config"].get("layers"), list):
                    todo.append((layer, depth + 1))
                    continue
            count += 1
    return count


def _too_many(count: int, cap: int) -> str:
    """The layer-cap refusal: how many layers the file has against the limit."""
    has = f"{count:,} layers" if count > cap else f"more than {cap:,} layers"
    return (
        f"Keras config has {has}, over the limit of {cap:,} layers that deepscope reads; "
        "refusing it (real models have far fewer: the largest keras.applications model has "
        "about 1,000)"
    )


def _json_safe(v: Any, depth: int = 0) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v if not isinstance(v, str) else v[:200]
    if isinstance(v, list) and depth < 3:
        return [_json_safe(x, depth + 1) for x in v[:16]]
    return str(v)[:200]


def _dtype(cfg: dict[str, Any]) -> str:
    d = cfg.get("dtype")
    if isinstance(d, dict) and isinstance(d.get("config"), dict):
        d = d["config"].get("name")
    if isinstance(d, str) and d.startswith("mixed_"):
        return "float32"  # mixed policies keep their variables in float32
    return d[:40] if isinstance(d, str) else "float32"


class KerasConfigParser:
    """Builds a Graph from a parsed Keras model config; collects notes (e.g. Lambda layers).

    After `parse`, `storage` maps node ids to their `.keras` weights path (`layers/conv2d`).
    """

    def __init__(self, max_layers: int | None = None) -> None:
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.notes: list[str] = []
        self.storage: dict[str, str] = {}
        # namespace -> Keras class (a layer's own namespace, a nested model's): the graph
        # panel names and colours each layer's group by it, as torch modules' are
        self.module_types: dict[str, str] = {}
        self.max_layers = MAX_LAYERS if max_layers is None else max_layers
        self._ids: set[str] = set()
        self._where = "the model"
        self._root: dict[str, Any] = {}

    def parse(self, config: Any) -> Graph:
        """The graph of a config dict; `ModelFormatError` for anything malformed."""
        if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
            raise ModelFormatError("Keras config.json must be an object with a class_name")
        self._root = config
        try:
            outs = self._model(config, [], None, 0, "")
        except ModelFormatError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError) as e:
            raise ModelFormatError(
                f"malformed Keras config at {self._where}: {type(e).__name__}: {str(e)[:200]}"
            ) from None
        except RecursionError:
            raise ModelFormatError(f"Keras config nests too deeply at {self._where}") from None
        graph = Graph(nodes=self.nodes, edges=self.edges, meta={"source": "keras"})
        name = (
            (config.get("config") or {}).get("name")
            if isinstance(config.get("config"), dict)
            else None
        )
        graph.meta["modelType"] = str(config["class_name"])[:100]
        graph.meta["moduleTypes"] = self.module_types
        if isinstance(name, str):
            graph.meta["modelName"] = name[:200]
        if note := partial_note(self.nodes):
            graph.meta["macsNote"] = note
        graph.inputs = [n.id for n in self.nodes if n.op == "input_layer" and "/" not in n.id]
        graph.outputs = [nid for nid, _ in outs]
        return graph

    def _model(
        self, cfg: dict[str, Any], prefix: list[str], feed: Feed | None, depth: int, store: str
    ) -> Feed:
        if depth > MAX_DEPTH:
            raise ModelFormatError(f"Keras models nest deeper than {MAX_DEPTH} levels")
        inner = cfg.get("config")
        layers = inner.get("layers") if isinstance(inner, dict) else None
        if not isinstance(layers, list):
            raise ModelFormatError(
                f"Keras model {str(cfg.get('class_name'))[:100]!r} lists no layers"
            )
        used: dict[str, int] = {}
        sequential = cfg.get("class_name") == "Sequential"
        if sequential:
            current = feed or []
            for i, layer in enumerate(layers):
                # Sequential.layers (and so the weights file) omit the leading InputLayer
                skip = (
                    i == 0 and isinstance(layer, dict) and layer.get("class_name") == "InputLayer"
                )
                path = "" if skip else self._path(store, layer, used)
                current = self._layer(layer, prefix, current, depth, path)
            return current
        return self._functional(layers, prefix, depth, store, used)

    def _path(self, store: str, layer: Any, used: dict[str, int]) -> str:
        base = storage_name(str(layer.get("class_name", ""))) if isinstance(layer, dict) else ""
        if base in used:
            used[base] += 1
            base = f"{base}_{used[base]}"
        else:
            used[base] = 0
        return f"{store}/layers/{base}" if store else f"layers/{base}"

    def _functional(
        self, layers: list[Any], prefix: list[str], depth: int, store: str, used: dict[str, int]
    ) -> Feed:
        produced: dict[str, Feed] = {}
        last: Feed = []
        for layer in layers:
            if not isinstance(layer, dict):
                raise ModelFormatError(
                    f"a Keras layer entry must be an object, not {type(layer).__name__}"
                )
            name = _layer_name(layer)
            self._where = f"layer {name!r}"
            feed: Feed = []
            for src, _node, tensor in _history(layer.get("inbound_nodes")):
                outs = produced.get(src)
                if outs is None:
                    raise ModelFormatError(
                        f"Keras layer {name!r} takes input from {src!r}, which no earlier layer produces"
                    )
                if not 0 <= tensor < len(outs):
                    raise ModelFormatError(
                        f"Keras layer {name!r} takes output #{tensor} of {src!r}, "
                        f"which has {len(outs)} output(s)"
                    )
                feed.append(outs[tensor])
            last = self._layer(layer, prefix, feed, depth, self._path(store, layer, used))
            produced[name] = last
        return last

    def _layer(self, layer: Any, prefix: list[str], feed: Feed, depth: int, store: str) -> Feed:
        if not isinstance(layer, dict):
            raise ModelFormatError(
                f"a Keras layer entry must be an object, not {type(layer).__name__}"
            )
        cls = layer.get("class_name")
        if not isinstance(cls, str):
            raise ModelFormatError("a Keras layer entry needs a class_name string")
        cls = cls[:100]
        raw_cfg = layer.get("config", {})
        if not isinstance(raw_cfg, dict):
            raise ModelFormatError(
                f"Keras layer {cls!r}: its config must be an object, not {type(raw_cfg).__name__}"
            )
        cfg: dict[str, Any] = raw_cfg
        name = _layer_name(layer) or f"{cls}_{len(self.nodes)}"
        name = name.replace("/", "_")
        self._where = f"layer {name!r}"
        if len(self.nodes) >= self.max_layers:
            raise ModelFormatError(_too_many(_count_layers(self._root), self.max_layers))
        if cls in MODEL_CLASSES and isinstance(cfg.get("layers"), list):
            self.module_types.setdefault("/".join(prefix + [name]), cls)
            return self._model(layer, prefix + [name], feed, depth + 1, store)
        nid = "/".join(prefix + [name])
        if nid in self._ids:
            raise ModelFormatError(f"two Keras layers are both named {name!r}")
        self._ids.add(nid)
        ins = [s for _, s in feed] or [_input_shape(layer, cfg)]
        if any(s is None for s in ins):
            ins = _built_shapes(layer) or ins
        out_shape, weights = infer(cls, cfg, ins)
        frozen = cfg.get("trainable") is False
        dtype = _dtype(cfg)
        node = Node(
            id=nid,
            op=_snake(cls),
            label=name,
            namespace=nid,
            inputs=[TensorMeta(shape=s) for _, s in feed],
            outputs=[TensorMeta(shape=out_shape)],
            params=[
                ParamRef(f"{nid}/{w}", shape, "int64" if w == "count" else dtype, t and not frozen)
                for w, shape, t in weights
            ],
            macs=layer_macs(cls, cfg, ins, out_shape, weights),
        )
        node.attrs["class_name"] = cls
        self.module_types[nid] = cls
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
        if store:
            self.storage[nid] = store
        self.nodes.append(node)
        for j, (src, s) in enumerate(feed):
            self.edges.append(Edge(src=src, dst=nid, dst_input=j, tensor=TensorMeta(shape=s)))
        return [(nid, out_shape)]


def _layer_name(layer: dict[str, Any]) -> str:
    cfg = layer.get("config")
    name = layer.get("name")
    if not isinstance(name, str) and isinstance(cfg, dict):
        name = cfg.get("name")
    return name[:200] if isinstance(name, str) else ""


def _history(inbound: Any) -> list[tuple[str, int, int]]:
    """(layer, node_index, tensor_index) of every input, from Keras 3 or Keras 2 formats."""
    found: list[tuple[str, int, int]] = []

    def index(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ModelFormatError(f"a Keras inbound node index must be an integer, not {v!r:.40}")
        if v < 0:
            raise ModelFormatError(f"a Keras inbound node index is negative ({v})")
        return v

    def walk(x: Any, depth: int) -> None:
        if depth > 8 or len(found) > 1000:
            return
        if isinstance(x, dict):
            conf = x.get("config")
            hist = (
                conf.get("keras_history")
                if x.get("class_name") == "__keras_tensor__" and isinstance(conf, dict)
                else None
            )
            if isinstance(hist, list) and len(hist) == 3 and isinstance(hist[0], str):
                found.append((hist[0], index(hist[1]), index(hist[2])))
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
                found.append((x[0], index(x[1]), index(x[2])))
                return
            for v in x:
                walk(v, depth + 1)

    walk(inbound, 0)
    return found


def _input_shape(layer: dict[str, Any], cfg: dict[str, Any]) -> Shape | None:
    for src in (cfg.get("batch_shape"), cfg.get("batch_input_shape")):
        if (s := as_shape(src)) is not None:
            return s
    built = _built_shapes(layer)
    return built[0] if built else None


def _built_shapes(layer: dict[str, Any]) -> list[Shape | None] | None:
    """The input shapes a layer was built with (`build_config`), one per input."""
    bc = layer.get("build_config")
    raw = bc.get("input_shape") if isinstance(bc, dict) else None
    if (s := as_shape(raw)) is not None:
        return [s]
    if isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
        return [as_shape(x) for x in raw[:64]]
    if isinstance(raw, dict):
        return [as_shape(x) for x in list(raw.values())[:64]]
    return None
