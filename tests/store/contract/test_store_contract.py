"""The store contract (`deepscope.store.protocol`), on every backend: what `deepscope.init`
writes, `deepscope.store.open` reads back the same way, whether the target is a log
directory (SQLite) or a ``postgresql://`` URL."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import deepscope
import deepscope.store
from deepscope.errors import NotFoundError

HOSTILE = [
    "'; DROP TABLE deepscope.scalar; --",
    "quote \" and ' and \\ backslash",
    "$$ dollar $$ quoting $tag$",
    "percent %s %(x)s {0} \x7f ünïcödé 🙂",
    "semi; SELECT pg_sleep(10);",
]


def _values(n: int) -> list[float]:
    out = [math.sin(i / 50.0) * (1 + i / 1000.0) for i in range(n)]
    out[17], out[400], out[401], out[1234] = math.nan, math.inf, -math.inf, -0.0
    out[2500] = 1e6  # the global maximum
    out[3001] = -1e6  # the global minimum
    return out


def test_scalars_round_trip_and_downsample_by_the_contract(target: str) -> None:
    values = _values(4000)
    with deepscope.init(store=target, name="s", flush_interval=0.2) as run:
        for step, v in enumerate(values):
            run.log({"loss": v, "const": 1.0}, step=step)
    reader = deepscope.store.open(target).run("s")
    full = reader.scalars("loss", max_points=10_000)
    assert [p.step for p in full] == list(range(4000))
    got, want = [p.value for p in full], values
    for a, b in zip(got, want, strict=True):
        assert (a != a and b != b) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    small = reader.scalars("loss", max_points=200)
    assert 2 <= len(small) <= 200
    assert small[0].step == 0 and small[-1].step == 3999
    assert [p.step for p in small] == sorted(p.step for p in small)
    assert {2500, 3001} <= {p.step for p in small}  # the extremes survive
    assert any(p.value != p.value for p in small)  # NaN marker kept
    assert math.inf in [p.value for p in small] and -math.inf in [p.value for p in small]
    zoom = reader.scalars("loss", max_points=100, start_step=1000, end_step=2999)
    assert zoom[0].step == 1000 and zoom[-1].step == 2999 and len(zoom) <= 100
    assert 2500 in {p.step for p in zoom}
    assert reader.scalars("nope") == []
    tags = {t.tag: t for t in reader.tags()}
    assert tags["loss"].count == 4000 and tags["loss"].kind == "scalar"
    assert (tags["const"].first_step, tags["const"].last_step) == (0, 3999)


def test_histograms_keep_counts_and_downsample(target: str) -> None:
    with deepscope.init(store=target, name="h") as run:
        for step in range(30):
            run.log_histogram("w", np.array([0.0, 1.0, float(step), np.nan, np.inf]), step=step)
    reader = deepscope.store.open(target).run("h")
    hs = reader.histograms("w", max_points=1000)
    assert [h.step for h in hs] == list(range(30))
    assert (hs[5].count, hs[5].n_nan, hs[5].n_posinf, hs[5].n_neginf) == (3, 1, 1, 0)
    assert sum(hs[5].counts) == 3 and len(hs[5].edges) == len(hs[5].counts) + 1
    assert hs[29].max == 29.0 and hs[0].min == 0.0
    few = reader.histograms("w", max_points=7)
    assert len(few) == 7 and few[0].step == 0 and few[-1].step == 29


def test_events_blobs_and_graphs(target: str) -> None:
    image = (np.arange(4 * 5 * 3) % 255).astype(np.uint8).reshape(4, 5, 3)
    with deepscope.init(store=target, name="b") as run:
        for i in range(5):
            run.log_event("nan", f"message {i}", severity="error", layer="fc", step=i)
        run.log_text("notes", "hello", step=0)
        run.log_text("notes", "world", step=1)
        run.log_image("pic", image, step=2, dataformats="HWC")
        run.log_blob("attribution", "sal", b"\x89PNG fake", ext="png", meta={"m": 1}, step=3)
        run.log_graph(_graph(), tag="model")
    reader = deepscope.store.open(target).run("b")
    events = reader.events()
    assert [e.message for e in events] == [f"message {i}" for i in range(5)]
    assert [e.message for e in reader.events(limit=2)] == ["message 3", "message 4"]
    assert events[0].severity == "error" and events[0].layer == "fc"
    texts = reader.blobs("text", "notes")
    assert [reader.read_blob(b) for b in texts] == [b"hello", b"world"]
    assert [b.step for b in reader.blobs("text", limit=1)] == [1]
    assert reader.blob_path(texts[1]).read_bytes() == b"world"
    assert reader.blob(texts[0].id) == texts[0]
    with pytest.raises(NotFoundError):
        reader.blob(10**9)
    (pic,) = reader.blobs("image")
    assert reader.read_blob(pic).startswith(b"\x89PNG")
    (att,) = reader.blobs("attribution")
    assert att.meta == {"m": 1} and reader.read_blob(att) == b"\x89PNG fake"
    (graph,) = reader.blobs("graph")
    assert json.loads(reader.read_blob(graph))  # the graph JSON is there
    kinds = {t.kind for t in reader.tags()}
    assert {"text", "image", "attribution", "graph"} <= kinds


def _graph() -> object:
    from deepscope.graph.ir import Graph, Node, TensorMeta

    node = Node(id="n0", op="Linear", label="fc", namespace="fc",
                inputs=[TensorMeta((1, 3), "float32")], outputs=[TensorMeta((1, 2), "float32")])  # fmt: skip
    return Graph(nodes=[node], edges=[], inputs=["n0"], outputs=["n0"])


def test_lifecycle_config_and_versions(target: str) -> None:
    store = deepscope.store.open(target)
    run = deepscope.init(store=target, name="life", config={"lr": 0.1, "nested": {"a": [1, 2]}})
    run.log({"x": 1.0})
    run.flush()
    info = store.run("life").info()
    assert info.status == "running" and info.config == {"lr": 0.1, "nested": {"a": [1, 2]}}
    assert info.heartbeat >= info.created > 0
    v1 = store.run("life").version()
    run.log({"x": 2.0})
    run.flush()
    assert store.run("life").version() > v1
    run.finish()
    done = store.run("life").info()
    assert done.status == "finished" and done.finished is not None
    with pytest.raises(RuntimeError), deepscope.init(store=target, name="boom") as bad:
        bad.log({"x": 1.0})
        raise RuntimeError("training failed")
    assert store.run("boom").info().status == "interrupted"
    assert store.versions(["life", "gone"])["gone"] is None
    with pytest.raises(NotFoundError):
        store.run("gone")
    with pytest.raises(NotFoundError):
        store.run("../etc")


def test_listing_and_counting_runs(target: str) -> None:
    for i in range(12):
        with deepscope.init(store=target, name=f"{'even' if i % 2 == 0 else 'odd'}-{i:02d}") as run:
            run.log({"x": float(i)})
    store = deepscope.store.open(target)
    names = [r.name for r in store.runs()]
    assert names == sorted(names) and len(names) == 12
    assert store.count_runs() == 12 and store.count_runs(filter="EVEN") == 6
    assert [r.name for r in store.runs(filter="odd", offset=2, limit=2)] == ["odd-05", "odd-07"]
    assert store.run_names(filter="-1") == ["even-10", "odd-11"]
    assert all(r.status == "finished" for r in store.runs())


def test_sql_looking_names_tags_and_metadata_round_trip_as_data(target: str) -> None:
    config = {h: h for h in HOSTILE}
    with deepscope.init(store=target, name=HOSTILE[0], config=config) as run:
        for i, h in enumerate(HOSTILE):
            run.log({h: float(i)}, step=i)
            run.log_event(h, h, layer=h, step=i)
            run.log_text(h, h, step=i)
            run.log_blob("attribution", h, b"x", ext="png", meta={"k": h}, step=i)
        name = run.name
    store = deepscope.store.open(target)
    assert store.run_names() == [name]  # the name was sanitised; the rest kept as data
    reader = store.run(name)
    assert reader.info().config == config
    scalar_tags = {t.tag for t in reader.tags() if t.kind == "scalar"}
    assert scalar_tags == set(HOSTILE)
    for i, h in enumerate(HOSTILE):
        assert [p.value for p in reader.scalars(h)] == [float(i)]
        (text,) = reader.blobs("text", h)
        assert reader.read_blob(text).decode() == h
        (blob,) = reader.blobs("attribution", h)
        assert blob.meta == {"k": h}
    assert [(e.kind, e.message, e.layer) for e in reader.events()] == [(h, h, h) for h in HOSTILE]
    assert store.count_runs(filter="'; DROP") == 0 and store.count_runs(filter="%") == 0
