"""A UMAP request through the server's projector worker reports progress over the SSE
stream (epochs, not just 0 and done) and can be cancelled while it runs (issue 17)."""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_support import strict_loads
from sklearn.datasets import load_digits

import deepscope
from deepscope.analysis.projection.umap import GRAPH_SHARE
from deepscope.server.app import Settings
from deepscope.server.routes.projector import manager
from deepscope.server.runner import start_in_thread

# the spawned worker compiles umap-learn's numba code once; later runs load it from here
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "numba"))


def _read_stream(url: str, out: queue.Queue[str], stop: threading.Event) -> None:
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(60.0)) as response:
            for line in response.iter_lines():
                out.put(line)
                if stop.is_set():
                    return
    except httpx.HTTPError as exc:
        out.put(f"error {exc!r}")


@pytest.mark.slow  # the worker's first UMAP loads (or compiles) numba code
def test_umap_request_streams_epoch_progress_and_cancels(tmp_path: Path) -> None:
    x = load_digits().data.astype(np.float32)[:400]  # small: the graph takes no time
    with deepscope.init(logdir=tmp_path, name="r") as run:
        run.log_embedding("emb", x, step=0)
    server = start_in_thread(Settings(logdir=tmp_path, poll_interval=0.05, ping_interval=1.0))
    url, work = server.url, manager(server.app)
    lines: queue.Queue[str] = queue.Queue()
    stop = threading.Event()
    try:
        threading.Thread(target=_read_stream, args=(url + "/api/stream?run=r", lines, stop),
                         daemon=True).start()  # fmt: skip
        body = {
            "run": "r",
            "tag": "emb",
            "step": 0,
            "method": "umap",
            "dims": 2,
            "params": {"n_epochs": 100_000},
        }  # fmt: skip  (hours: it must be cancelled)
        job = httpx.post(url + "/api/projector/project", json=body, timeout=30).json()
        deadline = time.monotonic() + 540  # a cold numba cache: minutes
        seen: list[float] = []
        event = ""
        while not any(p > GRAPH_SHARE for p in seen):  # past the graph: epochs are counted
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line.startswith("event: "):
                event = line
            elif line.startswith("data: ") and event == "event: projection":
                e = strict_loads(line[6:])
                if e["key"] == job["key"] and e["state"] == "running":
                    seen.append(e["progress"])
        assert seen == sorted(seen) and max(seen) < 1.0
        assert httpx.get(url + "/api/projector/embeddings?run=r").status_code == 200
        cancel = {"run": "r", "key": job["key"]}
        assert httpx.post(url + "/api/projector/cancel", json=cancel).json()["cancelled"]
        end = time.monotonic() + 60
        while work.job(job["key"]).state == "running" and time.monotonic() < end:  # type: ignore[union-attr]
            time.sleep(0.2)
        assert work.job(job["key"]).state == "cancelled"  # type: ignore[union-attr]
    finally:
        stop.set()
        work.close()
        server.stop()
