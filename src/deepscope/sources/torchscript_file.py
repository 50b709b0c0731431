"""TorchScript archives and `.pt2` (torch.export) files: they hold executable code (M3).

With `trust=False` (the default) only the zip listing is read (via `_archive`, in memory):
member names, code file names, the pickle sizes and the archive version, as a
structure-only Model. `torch.jit.load` / `torch.export.load` are never called then.
With `trust=True` the file is loaded by `_trusted.trusted_load` inside a sandbox worker,
which sends back the graph's node kinds, edges and parameter names as JSON.

Example:
    >>> load(Path("scripted.pt")).notes[0]                  # doctest: +SKIP
    'contains executable code; pass trust=True to load'
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from deepscope.graph.ir import Edge, Graph, Node, ParamRef
from deepscope.graph.namespace import module_namespace
from deepscope.sources._archive import ArchiveError, is_zip, open_zip
from deepscope.sources._weights import graph_from_tensors
from deepscope.sources.base import Model, WeightInfo

SUFFIXES = (".pt", ".pth", ".pt2", ".ptl", ".torchscript")
CODE_NOTE = "contains executable code; pass trust=True to load"


def _kind_from_names(names: list[str], suffix: str) -> str | None:
    parts = [n.split("/") for n in names]
    if any(len(p) > 1 and p[1] in ("archive_format",) for p in parts) or suffix == ".pt2":
        return "pt2"
    if any("code" in p[:-1] for p in parts) or any(p[-1] == "constants.pkl" for p in parts):
        return "torchscript"
    return None


def archive_kind(path: Path) -> str | None:
    """ "torchscript", "pt2" or None (not a code archive). Reads the zip directory only."""
    if not is_zip(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()[:100_000]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None
    return _kind_from_names(names, path.suffix.lower())


def is_code_archive(path: Path) -> bool:
    """True for TorchScript and `.pt2` archives (which `torch.load` must never open)."""
    return archive_kind(path) is not None


def match(target: object) -> bool:
    """A TorchScript zip or a `.pt2` file."""
    if not isinstance(target, (str, Path)):
        return False
    path = Path(str(target))
    return path.suffix.lower() in SUFFIXES and is_code_archive(path)


def _listing(path: Path) -> dict[str, Any]:
    with open_zip(path) as z:
        names = z.names
        kind = _kind_from_names(names, path.suffix.lower()) or "torchscript"
        sizes = {n: z.info(n).file_size for n in names}
        version = ""
        for n in names:
            if n.split("/")[-1] in ("version", ".data/version") or n.endswith(".data/version"):
                version = z.read(n, cap=64).decode("utf-8", "replace").strip()
                break
    code = [n for n in names if "code" in n.split("/")[:-1] and not n.endswith("/")]
    pickles = {n: s for n, s in sizes.items() if n.endswith(".pkl")}
    return {
        "kind": kind,
        "members": len(names),
        "codeFiles": code[:1000],
        "pickles": pickles,
        "archiveVersion": version,
        "totalBytes": sum(sizes.values()),
    }


def load(target: object, *, trust: bool = False, **options: Any) -> Model:
    """List a TorchScript/.pt2 archive (default) or load it in a sandbox (`trust=True`)."""
    path = Path(str(target))
    try:
        meta = _listing(path)
    except ArchiveError:
        raise
    fmt = "pt2" if meta["kind"] == "pt2" else "torchscript"
    if not trust:
        graph = Graph(meta={"source": fmt, "archive": meta, "structureOnly": True})
        return Model(graph=graph, format=fmt, notes=[CODE_NOTE])
    from deepscope.sources._sandbox import run_task

    found = run_task("torchscript_graph", path, {"kind": fmt}, fault=options.get("fault"))
    return _model_from_worker(found, fmt, meta)


def _model_from_worker(found: dict[str, Any], fmt: str, meta: dict[str, Any]) -> Model:
    params = [(p["name"], tuple(p["shape"]), p["dtype"]) for p in found["params"]]
    if found["nodes"]:
        nodes = [
            Node(id=n["id"], op=n["op"], label=n["label"], namespace=n.get("namespace", ""))
            for n in found["nodes"]
        ]
        graph = Graph(nodes=nodes, edges=[Edge(src=a, dst=b) for a, b in found["edges"]])
        graph.nodes.append(
            Node(
                id="params",
                op="parameters",
                label="parameters",
                params=[ParamRef(n, s, d) for n, s, d in params],
            )
        )
    else:
        graph = graph_from_tensors(params, fmt)
    graph.meta.update({"source": fmt, "archive": meta, "trusted": True})
    weights = {n: WeightInfo(n, s, d) for n, s, d in params}
    return Model(
        graph=graph,
        weights=weights,
        format=fmt,
        notes=["loaded with trust=True in a sandbox worker"],
    )


def worker_trusted_graph(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Sandbox task: load with trust and describe the graph as JSON."""
    from deepscope.sources._trusted import trusted_load

    if options.get("kind") == "pt2":
        ep = trusted_load(Path(path), "export", trust=True)
        fx_nodes = list(ep.graph.nodes)
        ids = {n: f"n{i}" for i, n in enumerate(fx_nodes)}
        nodes = [
            {
                "id": ids[n],
                "op": str(n.target).split(".")[-2]
                if n.op == "call_function" and str(n.target).count(".") >= 2
                else n.op,
                "label": n.name,
                "namespace": "",
            }
            for n in fx_nodes
        ]
        edges = [[ids[a], ids[n]] for n in fx_nodes for a in n.all_input_nodes]
        state = ep.state_dict
        params = [
            {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
            for k, v in state.items()
        ]
        return {"nodes": nodes, "edges": edges, "params": params}
    module = trusted_load(Path(path), "torchscript", trust=True)
    ts_nodes = list(module.inlined_graph.nodes())
    ids = {n: f"n{i}" for i, n in enumerate(ts_nodes)}
    nodes = []
    for n in ts_nodes:
        scope = n.scopeName() if hasattr(n, "scopeName") else ""
        nodes.append(
            {
                "id": ids[n],
                "op": n.kind().split("::")[-1].lower(),
                "label": n.kind(),
                "namespace": module_namespace(scope),
            }
        )
    edges = [[ids[i.node()], ids[n]] for n in ts_nodes for i in n.inputs() if i.node() in ids]
    params = [
        {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
        for k, v in module.named_parameters()
    ]
    return {"nodes": nodes, "edges": edges, "params": params}
