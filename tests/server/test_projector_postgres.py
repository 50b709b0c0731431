"""The Projector on a PostgreSQL store: the worker reads the embedding through the store
contract, caches the result in ``deepscope.projection`` (not in a local folder), and a
restarted server answers from that table; the coordinates equal those of the same run in a
log directory (SQLite)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from server_support import BASE
from starlette.testclient import TestClient

import deepscope
import deepscope.store.process
from deepscope.analysis.projection import normalize
from deepscope.server.app import Settings, create_app
from deepscope.server.routes.projector import manager
from deepscope.server.runner import start_in_thread
from deepscope.store.postgres.projections import cached_projection
from deepscope.store.postgres.url import password_of
from deepscope.views import envelope

N, D = 150, 12


def _data() -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(3)
    centers = rng.normal(scale=4.0, size=(3, D))
    labels = [i % 3 for i in range(N)]
    x = (centers[labels] + rng.normal(size=(N, D))).astype(np.float32)
    x[7] = np.nan  # one row the projections drop
    return x, labels


def _log(x: np.ndarray, labels: list[int], **where: Any) -> None:
    with deepscope.init(name="r", **where) as run:
        run.log_embedding("emb", x, labels=labels, step=3)


BODIES = {
    "pca": {"run": "r", "tag": "emb", "step": 3, "method": "pca", "dims": 2, "params": {}},
    "tsne": {"run": "r", "tag": "emb", "step": 3, "method": "tsne", "dims": 2,
             "params": {"perplexity": 10, "n_iter": 200, "early_exaggeration_iter": 100}},
}  # fmt: skip


def _done(post: Any, body: dict[str, Any], limit: float = 240) -> dict[str, Any]:
    end = time.monotonic() + limit
    while True:
        answer: dict[str, Any] = post(body)
        if answer["state"] not in ("queued", "running") or time.monotonic() > end:
            return answer
        time.sleep(0.2)


def _expected(x: np.ndarray) -> dict[str, np.ndarray]:
    """Each projection computed here as the worker does, from the vectors as stored
    (`log_embedding` keeps float16): what a log directory's copy of the run gives too."""
    stored = x.astype(np.float16).astype(np.float32)
    finite = int(np.isfinite(stored).all(axis=1).sum())
    out = {}
    for name, body in BODIES.items():
        opts = normalize(name, 2, dict(body["params"]), finite)
        if name == "pca":
            opts["backend"] = "numpy"
        out[name] = deepscope.project(stored, name, 2, 0, cache=False, **opts).coords
    return out


def _rows(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(
                "SELECT r.name, p.key FROM deepscope.projection p"
                " JOIN deepscope.run r ON r.id = p.run_id ORDER BY p.key"
            ).fetchall()
        ]


def test_projector_computes_and_caches_in_postgres(
    pg_fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the store's blob cache
    x, labels = _data()
    _log(x, labels, store=pg_fresh_url)
    deepscope.store.process.close_all()
    want = _expected(x)
    secret = password_of(pg_fresh_url)
    assert secret

    settings = Settings(logdir=tmp_path / "cache", store_url=pg_fresh_url, poll_interval=0.05)
    server = start_in_thread(settings)
    work = manager(server.app)
    got: dict[str, np.ndarray] = {}
    keys: dict[str, str] = {}
    try:

        def post(body: dict[str, Any]) -> dict[str, Any]:
            return dict(httpx.post(server.url + "/api/projector/project", json=body,
                                   timeout=30).json())  # fmt: skip

        for name, body in BODIES.items():
            done = _done(post, body)
            assert done["state"] == "done" and done["dropped"] == 1, done
            job = work.job(done["key"])
            assert job is not None and not job.spec.chunks and len(job.spec.blobs) == 1
            assert secret not in repr(job) and secret not in repr(job.spec)
            coords = httpx.get(server.url + "/api/projector/coords",
                               params={"run": "r", "key": done["key"]}).content  # fmt: skip
            got[name] = envelope.decode(coords)
            keys[name] = done["key"]
        assert work.computations == 2
    finally:
        work.close()
        server.stop()
    np.testing.assert_allclose(got["pca"], want["pca"], atol=1e-5)
    np.testing.assert_allclose(got["tsne"], want["tsne"], atol=1e-4)
    assert np.isnan(got["tsne"][7]).all() and np.isfinite(np.delete(got["tsne"], 7, 0)).all()
    # cached in the database, not in a local folder: the local caches can go
    assert sorted(_rows(pg_fresh_url)) == sorted(("r", k) for k in keys.values())
    assert not list((tmp_path / "xdg").rglob("projections")) and not (tmp_path / "cache").exists()
    shutil.rmtree(tmp_path / "xdg", ignore_errors=True)

    # a restarted server answers from the table at once: done, nothing computed
    app = create_app(Settings(logdir=tmp_path / "cache2", store_url=pg_fresh_url))
    try:
        with TestClient(app, base_url=BASE) as c:
            for name, body in BODIES.items():
                key = keys[name]
                again = c.post("/api/projector/project", json=body).json()
                assert again == {"key": key, "state": "done", "progress": 1.0, "dropped": 1}
                stored = c.get(f"/api/projector/coords?run=r&key={key}")
                assert stored.headers["content-type"] == envelope.CONTENT_TYPE
                np.testing.assert_array_equal(envelope.decode(stored.content), got[name])
            # a key nothing computed: 404 from the table, not an error
            assert c.get("/api/projector/coords?run=r&key=abc123").status_code == 404
            assert manager(app).computations == 0
    finally:
        manager(app).close()


def test_a_store_without_the_table_has_no_cached_projection(pg_fresh_url: str) -> None:
    _log(np.ones((4, 2), np.float32), [0, 1, 0, 1], store=pg_fresh_url)
    deepscope.store.process.close_all()
    store = deepscope.store.open(pg_fresh_url)
    try:
        assert cached_projection(store, "r", "abc") is None  # no table yet: a miss, no error
    finally:
        store.close()  # type: ignore[attr-defined]


def test_a_report_of_a_postgres_run_holds_its_projector(
    pg_fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notebook/report path (`deepscope.notebook.snapshot`, which reads the vectors with
    the projector routes' helpers) on a database store."""
    import base64

    from deepscope.notebook.snapshot import record, vectors_blob_id
    from deepscope.views.embed import blob_key, request_key

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    x, labels = _data()
    _log(x, labels, store=pg_fresh_url)
    deepscope.store.process.close_all()
    app = create_app(Settings(logdir=tmp_path / "cache", store_url=pg_fresh_url))
    rec = record(app, runs=["r"])
    blobs, answers = rec.snapshot["blobs"], rec.snapshot["answers"]
    listing = answers[request_key("projector/embeddings", [("run", "r")])]
    assert [(e["tag"], e["n"], e["dim"]) for e in listing["embeddings"]] == [("emb", N, D)]

    def decode(blob_id: str) -> np.ndarray:
        url = blobs[blob_key("r", blob_id)]
        return envelope.decode(base64.b64decode(url.split(",", 1)[1]))

    stored = x.astype(np.float16)
    np.testing.assert_array_equal(decode(vectors_blob_id("emb", 3)), stored)
    pca = deepscope.project(stored.astype(np.float32), "pca", 2, backend="numpy").coords
    np.testing.assert_allclose(decode("projector:report-pca-3-0"), pca, atol=1e-3)
    assert manager(app).computations == 0  # computed in the report, not by the worker
