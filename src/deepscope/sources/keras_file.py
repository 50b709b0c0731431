"""Keras `.keras` archives and legacy `.h5` files, read without importing keras (M4-M6, M8, M10-M12).

`.keras`: a zip read in memory (`_archive`); `config.json` (at most `CONFIG_CAP` bytes and
`MAX_CONTAINERS` JSON objects and arrays) parsed as plain JSON into the Graph IR; weight
names, shapes and statistics read from the inner `model.weights.h5` by h5py in a sandbox
worker (`_keras_h5`), which refuses external storage, external links and virtual datasets.
If h5py is missing or the worker dies, the structure is still returned, with a note.
Legacy `.h5`: the `model_config` attribute (JSON text) and the weights are both read in the
worker. Parameters are the stored weights when there are any (`_keras_weights`), else
those inferred from the config. Lambda layers are shown; their code is never decoded.

Example:
    >>> load(Path("mnist.keras")).graph.node("dense").op   # doctest: +SKIP
    'dense'
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from deepscope.errors import ModelFormatError, UnsafeModelError
from deepscope.sources import _keras_h5, _limits
from deepscope.sources._archive import is_zip, open_zip
from deepscope.sources._keras_config import KerasConfigParser
from deepscope.sources._keras_weights import attach
from deepscope.sources._sandbox import WorkerDiedError, run_task
from deepscope.sources.base import Model, WeightInfo

SUFFIXES = (".keras", ".h5", ".hdf5")
H5_MAGIC = b"\x89HDF\r\n\x1a\n"
WEIGHTS_MEMBER = "model.weights.h5"
#: Largest config.json / model_config read. keras.applications' largest is ~1.5 MB.
CONFIG_CAP = 16 * _limits.MB
#: Most JSON objects + arrays in a config (real ones: ~18 per layer): bounds json.loads memory.
MAX_CONTAINERS = 500_000


def match(target: object) -> bool:
    """`.keras` (a zip) or `.h5`/`.hdf5` (HDF5 magic)."""
    if not isinstance(target, (str, Path)):
        return False
    path = Path(str(target))
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return True
    if suffix in (".h5", ".hdf5"):
        try:
            with open(path, "rb") as f:
                return f.read(8) == H5_MAGIC
        except OSError:
            return False
    return False


def parse_config(text: bytes | str) -> Any:
    """Plain JSON, nothing else: no object hooks that build classes. Size-capped (M11)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > CONFIG_CAP:
        raise ModelFormatError(
            f"Keras config is {len(raw):,} bytes, over the {CONFIG_CAP:,}-byte cap; "
            "real configs are kilobytes to a few MB"
        )
    containers = raw.count(b"{") + raw.count(b"[")  # an upper bound: strings may hold some
    if containers > MAX_CONTAINERS:
        raise ModelFormatError(
            f"Keras config holds about {containers:,} JSON objects and arrays, over the cap "
            f"of {MAX_CONTAINERS:,}; refusing it"
        )
    try:
        return json.loads(raw)
    except RecursionError:
        raise ModelFormatError(
            "Keras config nests JSON objects and arrays too deeply: deepscope reads up to "
            f"about {sys.getrecursionlimit():,} levels (Python's limit); real configs nest "
            "a few dozen"
        ) from None
    except ValueError as e:
        raise ModelFormatError(f"Keras config is not valid JSON ({str(e)[:200]})") from None


def load(target: object, *, trust: bool = False, **options: Any) -> Model:
    """Read a Keras model's structure (and weight metadata when h5py is available)."""
    path = Path(str(target)).resolve()
    fault = options.get("fault")
    if path.suffix.lower() == ".keras" or is_zip(path):
        return _load_keras(path, fault)
    return _load_h5(path, fault)


def _load_keras(path: Path, fault: str | None) -> Model:
    with open_zip(path) as z:
        if "config.json" not in z.names:
            raise ModelFormatError(f"{path.name}: a .keras archive needs a config.json member")
        config = parse_config(z.read("config.json", cap=CONFIG_CAP))
        meta: Any = {}
        if "metadata.json" in z.names:
            meta = parse_config(z.read("metadata.json", cap=_limits.MB))
        has_weights = WEIGHTS_MEMBER in z.names
    parser = KerasConfigParser()
    graph = parser.parse(config)
    if isinstance(meta, dict):
        graph.meta["kerasVersion"] = str(meta.get("keras_version", ""))[:40]
    notes = list(parser.notes)
    weights: dict[str, WeightInfo] = {}
    if not has_weights:
        notes.append("weights not read: the archive has no model.weights.h5")
    elif importlib.util.find_spec("h5py") is None:
        notes.append("weights not read: pip install 'deepscope[keras]' (h5py)")
    else:
        try:
            found = run_task(
                "h5_weights",
                path,
                {"member": WEIGHTS_MEMBER, "stats_budget": _keras_h5.STATS_BUDGET},
                fault=fault,
            )
            weights = _weights(found, graph.meta, notes)
            attach(graph, parser.storage, found["datasets"], legacy=False)
        except WorkerDiedError as e:
            notes.append(
                f"weights not read: {str(e).removeprefix('model could not be parsed (').rstrip(')')}"
            )
        except UnsafeModelError:
            raise
        except ModelFormatError as e:
            notes.append(f"weights not read: {e}")
    return Model(graph=graph, weights=weights, format="keras", notes=notes)


def _load_h5(path: Path, fault: str | None) -> Model:
    from deepscope.errors import require

    require("h5py", "keras")
    found = run_task(
        "h5_legacy",
        path,
        {"config_cap": CONFIG_CAP, "stats_budget": _keras_h5.STATS_BUDGET},
        fault=fault,
    )
    if not found.get("config"):
        raise ModelFormatError(f"{path.name}: no model_config attribute (a weights-only .h5?)")
    parser = KerasConfigParser()
    graph = parser.parse(parse_config(found["config"]))
    notes = list(parser.notes)
    weights = _weights(found, graph.meta, notes)
    attach(graph, parser.storage, found["datasets"], legacy=True)
    return Model(graph=graph, weights=weights, format="keras", notes=notes)


def _weights(
    found: dict[str, Any], meta: dict[str, Any], notes: list[str]
) -> dict[str, WeightInfo]:
    stats = {d["name"]: d["stats"] for d in found["datasets"] if d.get("stats")}
    if stats:
        meta["weightStats"] = stats
    skipped = [str(d["name"]) for d in found["datasets"] if d.get("statsSkipped")]
    if skipped:
        meta["weightStatsSkipped"] = skipped
        notes.append(
            f"statistics skipped: budget ({len(skipped)} of {len(found['datasets'])} weight "
            f"tensors, from {skipped[0]!r}; deepscope reads at most "
            f"{_keras_h5.STATS_BUDGET // _limits.MB} MB of weights per file for statistics)"
        )
    return {
        d["name"]: WeightInfo(d["name"], tuple(d["shape"]), d["dtype"]) for d in found["datasets"]
    }
