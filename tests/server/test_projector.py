"""``/api/projector/*``: schemas, neighbours, and projections computed by the spawn worker
(shared identical requests, cancel, SSE progress with partial layouts, results persisted
in the run so a restarted server answers at once)."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from server_support import BASE, strict_loads
from sklearn.datasets import load_digits
from starlette.testclient import TestClient

import deepscope
from deepscope.analysis.projection import nearest
from deepscope.server.app import Settings, create_app
from deepscope.server.routes.projector import manager
from deepscope.server.runner import start_in_thread
from deepscope.views import envelope
from deepscope.views.kinds import embedding as kind
from deepscope.views.schema import errors


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("projector")
    digits = load_digits()
    x = digits.data.astype(np.float32)
    x[5] = np.nan
    with deepscope.init(logdir=root, name="r") as run:
        run.log_embedding("emb", x, labels=digits.target, images=digits.images, step=2,
                          metadata={"row": [f"digit #{i}" for i in range(len(x))]})  # fmt: skip
        run.log_embedding("tiny", x[:20], step=0)
    return root


@pytest.fixture()
def client(logdir: Path) -> Iterator[TestClient]:
    app = create_app(Settings(logdir=logdir))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c
    manager(app).close()


def _check(body: Any, schema: type) -> Any:
    assert not errors(body, schema), errors(body, schema)
    return body


def test_embeddings_columns_sprite_and_neighbours(client: TestClient) -> None:
    rows = _check(client.get("/api/projector/embeddings?run=r").json(), kind.ProjectorEmbeddings)
    emb = {e["tag"]: e for e in rows["embeddings"]}["emb"]
    assert (emb["step"], emb["n"], emb["dim"], emb["nonfinite"]) == (2, 1797, 64, 1)
    assert emb["sprite"] == {"tile": [8, 8], "cols": 43, "count": 1797}
    assert emb["columns"] == [
        {"name": "label", "type": "category"},
        {"name": "row", "type": "text"},
    ]
    cols = strict_loads(client.get("/api/projector/columns?run=r&tag=emb&step=2").content)
    _check(cols, kind.ProjectorColumns)
    label = cols["columns"][0]
    assert label["categories"] == [str(i) for i in range(10)]
    assert label["codes"] == load_digits().target.tolist()
    sprite = client.get("/api/projector/sprite?run=r&tag=emb&step=2")
    assert sprite.headers["content-type"] == "image/png" and sprite.content[:4] == b"\x89PNG"
    assert client.get("/api/projector/sprite?run=r&tag=tiny&step=0").status_code == 404
    x = load_digits().data.astype(np.float32)
    x[5] = np.nan
    for metric in ("cosine", "euclidean"):
        got = client.get(
            f"/api/projector/neighbors?run=r&tag=emb&step=2&index=7&k=10&metric={metric}"
        )
        body = _check(got.json(), kind.ProjectorNeighbors)
        want = nearest(x, 7, 10, metric)  # type: ignore[arg-type]
        assert [n["index"] for n in body["neighbors"]] == [i for i, _ in want]
        assert 5 not in [n["index"] for n in body["neighbors"]]
    assert client.get("/api/projector/neighbors?run=r&tag=emb&step=2&index=5").status_code == 422


def test_bad_requests_are_refused_at_once(client: TestClient) -> None:
    post = client.post("/api/projector/project",
                       json={"run": "r", "tag": "tiny", "step": 0, "method": "tsne", "dims": 2, "params": {}})  # fmt: skip
    assert post.status_code == 422
    assert (
        "perplexity 30 is too large for 19 points" in post.json()["error"]["message"]
    )  # 1 NaN row
    for body in ({"run": "r", "tag": "emb", "step": 2, "method": "pca", "dims": 5},
                 {"run": "r", "tag": "emb", "step": 2, "method": "pca", "params": {"x": 1}},
                 {"run": "r", "tag": "nope", "step": 2, "method": "pca"}):  # fmt: skip
        assert client.post("/api/projector/project", json=body).status_code in (404, 422)
    foreign = client.post("/api/projector/project", json={"run": "r"},
                          headers={"origin": "http://evil.example"})  # fmt: skip
    assert foreign.status_code == 403
    assert manager(client.app).computations == 0


def _read_stream(url: str, out: queue.Queue[str], stop: threading.Event) -> None:
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(60.0)) as response:
            for line in response.iter_lines():
                out.put(line)
                if stop.is_set():
                    return
    except httpx.HTTPError as exc:
        out.put(f"error {exc!r}")


def _wait(
    url: str, body: dict[str, Any], states: tuple[str, ...], limit: float = 240
) -> dict[str, Any]:
    end = time.monotonic() + limit
    while True:
        answer = httpx.post(url + "/api/projector/project", json=body, timeout=30).json()
        if answer["state"] in states or time.monotonic() > end:
            return answer
        time.sleep(0.3)


def test_worker_computes_once_cancels_streams_progress_and_persists(logdir: Path) -> None:
    server = start_in_thread(Settings(logdir=logdir, poll_interval=0.05, ping_interval=1.0))
    url, work = server.url, manager(server.app)
    lines: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    try:
        threading.Thread(target=_read_stream, args=(url + "/api/stream?run=r", lines, stop),
                         daemon=True).start()  # fmt: skip
        pca = {"run": "r", "tag": "emb", "step": 2, "method": "pca", "dims": 2, "params": {}}
        answers: list[dict[str, Any]] = []
        posts = [threading.Thread(target=lambda: answers.append(
            httpx.post(url + "/api/projector/project", json=pca, timeout=30).json())) for _ in range(2)]  # fmt: skip
        for t in posts:
            t.start()
        for t in posts:
            t.join()
        assert answers[0]["key"] == answers[1]["key"] and work.computations == 1
        key = answers[0]["key"]
        assert _check(answers[0], kind.ProjectorJob)["state"] in ("queued", "running", "done")
        done = _wait(url, pca, ("done", "error"))
        assert done["state"] == "done" and done["dropped"] == 1, done
        coords = envelope.decode(httpx.get(url + f"/api/projector/coords?run=r&key={key}").content)
        x = load_digits().data.astype(np.float32)
        x[5] = np.nan
        want = deepscope.project(x, "pca", backend="numpy").coords
        assert coords.dtype == np.float32 and coords.shape == (1797, 2)
        np.testing.assert_allclose(coords, want, atol=1e-3)
        assert np.isnan(coords[5]).all()
        assert work.computations == 1  # a later identical request shares the result

        tsne = {**pca, "method": "tsne", "params": {"n_iter": 5000, "perplexity": 20}}
        slow = httpx.post(url + "/api/projector/project", json=tsne, timeout=30).json()
        queued = httpx.post(url + "/api/projector/project", timeout=30,
                            json={**tsne, "params": {"perplexity": 25}}).json()  # fmt: skip
        assert queued["state"] == "queued"
        cancelled = httpx.post(
            url + "/api/projector/cancel", json={"run": "r", "key": queued["key"]}
        )
        assert cancelled.json() == {"cancelled": True}
        assert work.job(queued["key"]).state == "cancelled"  # type: ignore[union-attr]
        # the running t-SNE reports progress and partial layouts over SSE
        deadline = time.monotonic() + 300
        events: list[dict[str, Any]] = []
        event = ""
        while not any(e["partial"] and e["key"] == slow["key"] for e in events):
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line.startswith("event: "):
                event = line
            elif line.startswith("data: ") and event == "event: projection":
                events.append(_check(strict_loads(line[6:]), kind.ProjectionEvent))
        assert any(e["state"] == "running" and 0 < e["progress"] < 1 for e in events)
        partial = httpx.get(url + f"/api/projector/coords?run=r&key={slow['key']}&partial=1")
        assert envelope.decode(partial.content).shape == (1797, 2)
        assert httpx.get(url + f"/api/projector/coords?run=r&key={slow['key']}").status_code == 404
        assert httpx.get(url + "/api/projector/embeddings?run=r").status_code == 200  # not blocked
        assert httpx.post(
            url + "/api/projector/cancel", json={"run": "r", "key": slow["key"]}
        ).json()["cancelled"]
        end = time.monotonic() + 60
        while work.job(slow["key"]).state == "running" and time.monotonic() < end:  # type: ignore[union-attr]
            time.sleep(0.2)
        assert work.job(slow["key"]).state == "cancelled"  # type: ignore[union-attr]
        assert work.computations == 2  # the queued job never reached the worker
    finally:
        stop.set()
        work.close()
        server.stop()
    # a restarted server finds the stored result: done at once, nothing computed
    app = create_app(Settings(logdir=logdir))
    with TestClient(app, base_url=BASE) as c:
        again = c.post("/api/projector/project", json=pca).json()
        assert again == {"key": key, "state": "done", "progress": 1.0, "dropped": 1}
        stored = envelope.decode(c.get(f"/api/projector/coords?run=r&key={key}").content)
        np.testing.assert_array_equal(stored, coords)
        assert manager(app).computations == 0


def test_relogged_vectors_get_a_new_key(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with deepscope.init(logdir=tmp_path, name="r") as run:
        run.log_embedding("e", x, labels=[0, 1] * 15, step=0)
    body = {"run": "r", "tag": "e", "step": 0, "method": "pca", "dims": 2, "params": {}}
    app = create_app(Settings(logdir=tmp_path))
    try:
        with TestClient(app, base_url=BASE) as c:
            first = c.post("/api/projector/project", json=body).json()["key"]
            assert c.post("/api/projector/project", json=body).json()["key"] == first
            with deepscope.init(logdir=tmp_path, name="r") as run:
                run.log_embedding("e", x * 2, labels=[0, 1] * 15, step=0)  # same columns
            assert c.post("/api/projector/project", json=body).json()["key"] != first
    finally:
        manager(app).close()


def test_a_projection_of_a_live_run_leaves_its_database_alone(tmp_path: Path) -> None:
    """The cached result is a file beside the run's blobs: the server never opens a writer
    on a run, so a run still training keeps its status and its own session."""
    run = deepscope.init(logdir=tmp_path, name="live")
    x = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    run.log_embedding("emb", x, step=1)
    run.flush()
    db = tmp_path / "live" / "run.db"

    def rows() -> list[Any]:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return conn.execute(
                "SELECT (SELECT count(*) FROM session), (SELECT count(*) FROM blob)"
            ).fetchall()

    before = rows()
    server = start_in_thread(Settings(logdir=tmp_path, poll_interval=0.05))
    try:
        body = {"run": "live", "tag": "emb", "step": 1, "method": "pca", "dims": 2, "params": {}}
        assert _wait(server.url, body, ("done", "error"))["state"] == "done"
        runs = httpx.get(server.url + "/api/runs").json()["runs"]
        assert [r["status"] for r in runs if r["name"] == "live"] == ["running"]
    finally:
        manager(server.app).close()
        server.stop()
    assert rows() == before  # no session or blob row written by the server
    assert list((tmp_path / "live" / "blobs" / "projections").glob("*.dsa"))
    run.log({"loss": 1.0}, step=2)
    run.finish()
