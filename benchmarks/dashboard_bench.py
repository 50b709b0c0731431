"""Dashboard benchmark: time to a drawn scalar chart of 1M points, deepscope vs TensorBoard.

Run: ``.venv/bin/python benchmarks/dashboard_bench.py [--points N] [--quick]
[--no-tensorboard] [--no-graph]``. Prints a
few lines, then as the last line one JSON object with every figure. Needs the built
frontend (``pip install -e .``) and Chromium at /usr/bin/chromium.

The same 1M points of one tag ``loss`` are logged with `deepscope.init` and written as a
TensorBoard event file (records framed by hand with a vectorised CRC-32C, because
TensorBoard's pure-Python writer needs minutes for 1M events). Then, each in a subprocess:

- ``deepscope serve LOGDIR``: ``ds_server_start_s`` (spawn to ``/api/health`` answering),
  ``ds_first_data_s`` (navigation to ``[data-testid=scalar-chart][data-points]`` > 0, the
  chart drawn with the server-downsampled series; cold = first query of the store),
  ``ds_cold_api_requests`` (each ``/api/`` request of that cold load, request to last byte),
  ``ds_first_data_warm_s`` (median of reloads), ``ds_total_s`` (spawn to chart);
  ``ds_zoom_ms`` (``window.__deepscope.zoom(tag, a, b)``, a documented automation hook
  doing what a drag-select does: re-query ``/api/scalars`` for the step range at the
  chart's pixel width and redraw; resolves after the redraw).
- ``tensorboard --logdir ... --host 127.0.0.1 --load_fast=false``: ``tb_server_start_s``
  (spawn to HTTP answering), ``tb_first_data_s`` (navigation to a ``scalar-card`` for the
  tag with a drawn chart, after a ``timeSeries`` answer holding the run's last step; the
  page is reloaded every 3 s while TensorBoard is still loading, which is faster than
  waiting for its 30 s auto-reload), ``tb_total_s``.

Goals: ds_first_data_s <= 0.3, tb_total_s / ds_total_s >= 5, zoom <= 100 ms.
When ``benchmarks/_dashboard_graph.py`` exists its ``graph_figures`` are merged (``graph_*``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BIN = Path(sys.executable).parent
TAG = "loss"
RUN = "bench"
TB_TIMEOUT_S = 170.0

CHROMIUM_LAUNCH: dict[str, Any] = {
    "executable_path": "/usr/bin/chromium",
    "headless": True,
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ],
}


def values(n: int) -> np.ndarray:
    steps = np.arange(n, dtype=np.float64)
    rng = np.random.default_rng(0)
    return 2.0 * np.exp(-steps / (n / 5)) + 0.1 * np.sin(steps / 500.0) + rng.normal(0, 0.02, n)


def write_deepscope(root: Path, ys: np.ndarray) -> float:
    import deepscope

    t0 = time.perf_counter()
    with deepscope.init(logdir=root, name=RUN, flush_interval=2.0) as run:
        log = run.log
        for step, y in enumerate(ys.tolist()):
            log({TAG: y}, step=step)
    return time.perf_counter() - t0


# --- TensorBoard event file, written in bulk ------------------------------------------

_CRC_POLY = 0x82F63B78


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _CRC_POLY if c & 1 else c >> 1
        table[i] = c
    return table


_TABLE = _crc_table()


def masked_crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """Masked CRC-32C (TFRecord framing) of each row of a (k, L) uint8 array, vectorised."""
    crc = np.full(rows.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for j in range(rows.shape[1]):
        crc = _TABLE[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    rotated = ((crc >> np.uint32(15)) | (crc << np.uint32(17))) & np.uint32(0xFFFFFFFF)
    return (rotated + np.uint32(0xA282EAD8)).astype(np.uint32)


def write_tensorboard(logdir: Path, ys: np.ndarray) -> float:
    """One event file: a file_version event, then one simple_value event per step."""
    from tensorboard.compat.proto.event_pb2 import Event

    t0 = time.perf_counter()
    run_dir = logdir / RUN
    run_dir.mkdir(parents=True, exist_ok=True)
    now = time.time()
    records = [Event(wall_time=now, step=0, file_version="brain.Event:2").SerializeToString()]
    for step, y in enumerate(ys.tolist()):
        ev = Event(wall_time=now + step * 1e-3, step=step)
        ev.summary.value.add(tag=TAG, simple_value=y)
        records.append(ev.SerializeToString())
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_len.setdefault(len(r), []).append(i)
    headers: list[bytes] = [b""] * len(records)
    footers: list[bytes] = [b""] * len(records)
    for length, idx in by_len.items():
        data = np.frombuffer(b"".join(records[i] for i in idx), dtype=np.uint8)
        data_crc = masked_crc32c_rows(data.reshape(len(idx), length))
        header = struct.pack("<Q", length)
        header_crc = struct.pack(
            "<I", int(masked_crc32c_rows(np.frombuffer(header, np.uint8)[None, :])[0])
        )
        for i, c in zip(idx, data_crc.tolist(), strict=True):
            headers[i] = header + header_crc
            footers[i] = struct.pack("<I", c)
    path = run_dir / f"events.out.tfevents.{int(now)}.bench"
    with open(path, "wb") as f:
        f.write(b"".join(h + r + ft for h, r, ft in zip(headers, records, footers, strict=True)))
    return time.perf_counter() - t0


def check_tfrecord_framing() -> None:
    """Our CRC must match TensorBoard's own (else TensorBoard would drop the records)."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    sample = b"deepscope benchmark record"
    ours = int(masked_crc32c_rows(np.frombuffer(sample, np.uint8)[None, :])[0])
    assert ours == masked_crc32c(sample), "vectorised CRC-32C disagrees with TensorBoard's"


# --- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


DS_DRAWN = """(tag) => { const el = document.querySelector(
    `[data-testid="scalar-chart"][data-tag="${tag}"]`);
  return el !== null && Number(el.dataset.points) > 0; }"""


def measure_deepscope(browser: Any, logdir: Path, points: int, zooms: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t_spawn = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "deepscope"), "serve", str(logdir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(url + "/api/health", proc, 60)
        t_up = time.perf_counter()
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        api: list[tuple[str, float]] = []  # (path, ms) of each /api/ request of the cold load

        def on_finished(req: Any) -> None:
            if "/api/" in req.url and "/api/stream" not in req.url:
                timing = req.timing
                api.append((req.url.split("/api/", 1)[1].split("?")[0], timing["responseEnd"]))

        page.on("requestfinished", on_finished)
        t_nav = time.perf_counter()
        page.goto(f"{url}/#/scalars?runs={RUN}")
        page.wait_for_function(DS_DRAWN, arg=TAG, timeout=60_000, polling="raf")
        t_drawn = time.perf_counter()
        page.remove_listener("requestfinished", on_finished)
        drawn = int(
            page.get_attribute(f'[data-testid="scalar-chart"][data-tag="{TAG}"]', "data-points")
            or 0
        )
        warm = []
        for _ in range(3):
            t = time.perf_counter()
            page.reload()
            page.wait_for_function(DS_DRAWN, arg=TAG, timeout=60_000, polling="raf")
            warm.append(time.perf_counter() - t)
        zoom_ms = []
        rng = np.random.default_rng(1)
        for _ in range(zooms):
            width = int(rng.integers(points // 100, points // 2))
            start = int(rng.integers(0, points - width))
            ms = page.evaluate(
                """async ([tag, a, b]) => { const t = performance.now();
                     await window.__deepscope.zoom(tag, a, b); return performance.now() - t; }""",
                [TAG, start, start + width],
            )
            zoom_ms.append(float(ms))
        page.close()
    finally:
        stop(proc)
    return {
        "ds_server_start_s": round(t_up - t_spawn, 3),
        "ds_first_data_s": round(t_drawn - t_nav, 3),
        "ds_first_data_warm_s": round(statistics.median(warm), 3),
        "ds_total_s": round(t_drawn - t_spawn, 3),
        "ds_points_drawn": drawn,
        "ds_cold_api_requests": [f"{path} {ms:.0f} ms" for path, ms in api],
        "ds_zoom_ms_median": round(statistics.median(zoom_ms), 1),
        "ds_zoom_ms_max": round(max(zoom_ms), 1),
    }


TB_DRAWN = """(tag) => Array.from(document.querySelectorAll('scalar-card')).some((card) =>
  card.textContent.includes(tag) &&
  card.querySelector('line-chart canvas, line-chart svg path, line-chart svg line') !== null)"""


def measure_tensorboard(browser: Any, tb_logdir: Path, points: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    exe = BIN / "tensorboard"
    t_spawn = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(exe),
            "--logdir",
            str(tb_logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast=false",
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    full: dict[str, float] = {}

    def on_response(resp: Any) -> None:
        if "timeSeries" not in resp.url or "full" in full:
            return
        try:
            body = resp.text()
        except Exception:  # noqa: BLE001 (a navigation may abort the body)
            return
        if f'"step": {points - 1}' in body or f'"step":{points - 1}' in body:
            full["full"] = time.perf_counter()

    try:
        wait_http(url + "/data/environment", proc, 120)
        t_up = time.perf_counter()
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("response", on_response)
        t_nav = time.perf_counter()
        page.goto(f"{url}/#timeseries")
        t_drawn = None
        last_reload = time.perf_counter()
        while time.perf_counter() - t_spawn < TB_TIMEOUT_S:
            if "full" in full and page.evaluate(TB_DRAWN, TAG):
                t_drawn = time.perf_counter()
                break
            if "full" not in full and time.perf_counter() - last_reload > 3.0:
                page.reload()
                last_reload = time.perf_counter()
            page.wait_for_timeout(50)
        page.close()
    finally:
        stop(proc)
    if t_drawn is None:
        return {
            "tb_server_start_s": round(t_up - t_spawn, 3),
            "tb_first_data_s": None,
            "tb_total_s": None,
            "tb_timed_out_after_s": TB_TIMEOUT_S,
        }
    return {
        "tb_server_start_s": round(t_up - t_spawn, 3),
        "tb_first_data_s": round(t_drawn - t_nav, 3),
        "tb_total_s": round(t_drawn - t_spawn, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50k points, no TensorBoard")
    parser.add_argument("--no-graph", action="store_true", help="skip the graph figures")
    parser.add_argument(
        "--no-tensorboard", action="store_true", help="skip TensorBoard (deepscope figures only)"
    )
    args = parser.parse_args()
    points = 50_000 if args.quick else args.points
    from playwright.sync_api import sync_playwright

    check_tfrecord_framing()
    ys = values(points)
    tmp = Path(tempfile.mkdtemp(prefix="deepscope-dash-bench-"))
    figures: dict[str, Any] = {"points": points, "tag": TAG}
    try:
        figures["ds_write_s"] = round(write_deepscope(tmp / "ds", ys), 2)
        print(f"deepscope: {points} points logged in {figures['ds_write_s']} s", flush=True)
        if not (args.quick or args.no_tensorboard):
            figures["tb_write_s"] = round(write_tensorboard(tmp / "tb", ys), 2)
            print(f"tensorboard: event file written in {figures['tb_write_s']} s", flush=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(**CHROMIUM_LAUNCH)
            try:
                figures |= measure_deepscope(browser, tmp / "ds", points, zooms=10)
                print(f"deepscope: {figures}", flush=True)
                if not (args.quick or args.no_tensorboard):
                    figures |= measure_tensorboard(browser, tmp / "tb", points)
            finally:
                browser.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if figures.get("tb_total_s"):
        figures["speedup_total_vs_tb"] = round(figures["tb_total_s"] / figures["ds_total_s"], 1)
        figures["speedup_first_data_vs_tb"] = round(
            figures["tb_first_data_s"] / figures["ds_first_data_s"], 1
        )
    elif figures.get("tb_timed_out_after_s"):
        figures["speedup_total_vs_tb"] = (
            f">{figures['tb_timed_out_after_s'] / figures['ds_total_s']:.0f}"
        )
    figures["goals"] = {
        "first_data_le_0_3_s": figures["ds_first_data_s"] <= 0.3,
        "zoom_le_100_ms": figures["ds_zoom_ms_median"] <= 100,
        "ge_5x_tensorboard": (
            None
            if "speedup_total_vs_tb" not in figures
            else (
                figures["speedup_total_vs_tb"] >= 5
                if isinstance(figures["speedup_total_vs_tb"], float)
                else True
            )
        ),
    }
    if not args.no_graph and (HERE / "_dashboard_graph.py").exists():
        sys.path.insert(0, str(HERE))
        try:
            from _dashboard_graph import graph_figures

            graph = graph_figures(CHROMIUM_LAUNCH)
            figures |= {f"graph_{k}": v for k, v in graph.items()}
        except Exception as exc:  # noqa: BLE001 (report, keep the scalar figures)
            figures["graph_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(figures))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
