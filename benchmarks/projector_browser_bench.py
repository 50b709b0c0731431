"""Projector browser benchmark: 1M logged points to the first WebGL frame, and pan frames.

Run: ``.venv/bin/python benchmarks/projector_browser_bench.py [--points N] [--repeats K]``.
Needs the built frontend (``pip install -e .``) and Chromium at /usr/bin/chromium. Prints a
few lines, then as the last line one JSON object with every figure.

A run logs N points (default 1,000,000) x 16 dims in 8 clusters with `run.log_embedding`;
the real dashboard server (``create_app`` under uvicorn on loopback) serves it. The PCA of
it is computed once by ``POST /api/projector/project`` (``cold_project_s``: request until
the worker answers "done"), then, for each GL backend, Chromium opens
``#/projector?tag=big&method=pca`` K times and measures:

- ``first_frame_s``: the panel's POST /api/projector/project (cached: answers "done") to
  the first frame with all N points (the answer, GET /coords as an 8-byte-per-point float32
  envelope, decode, normalise, upload, draw; then one 1-pixel ``readPixels`` so the GPU
  really finished). Median over K page loads. Goal <= 1.5 s.
- ``payload_bytes_per_point``: the bytes of GET /coords / N (goal <= 8 for 2-D).
- ``pan_frame_ms``: median of 20 pan frames, each a pan + full redraw of the N points +
  ``readPixels`` of one pixel (waits for the rasteriser). Goal <= 16 ms on a GPU.
- ``raw_webgl_frame_ms``: the peer floor, measured in the same page loads: a bare WebGL
  program (no panel, one attribute, constant colour) drawing N 2-px points + the same
  ``readPixels``; ``pan_vs_raw_webgl_ratio`` = panel frame / that floor.

Headless Chromium here has no GPU: WebGL runs on SwiftShader (software, on the CPU), by
default through ANGLE's Vulkan backend, or with ``--use-gl=angle --use-angle=swiftshader``.
Frame times are those of a software rasteriser on a loaded 2-core machine, not of a GPU.

TensorBoard's projector cannot be driven headless offline here (its projector plugin needs
a checkpoint + projector config and downloads nothing, but it renders through three.js
and runs t-SNE/UMAP in the browser); its documented caps are reported instead: it loads
only the first 100,000 points (tensorflow/tensorboard#773), samples 10,000 points for
t-SNE (#3647) and 5,000 for UMAP (#6635).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
STATIC_INDEX = REPO / "src" / "deepscope" / "server" / "static" / "app" / "index.html"
BASE_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
GL_BACKENDS = {
    "default (ANGLE/Vulkan on SwiftShader)": BASE_ARGS + ["--disable-gpu"],
    "--use-gl=angle --use-angle=swiftshader": BASE_ARGS
    + ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
}
# The floor: a bare WebGL program (no panel) drawing the same number of 2-px points and
# waiting for the rasteriser (1-pixel readPixels), median of 5 frames, in the same browser.
RAW_FLOOR_JS = """
(n) => {
  const c = document.createElement('canvas'); c.width = 950; c.height = 620;
  const gl = c.getContext('webgl', { antialias: false, preserveDrawingBuffer: true });
  const vs = 'attribute vec2 p; void main() { gl_Position = vec4(p, 0.0, 1.0); gl_PointSize = 2.0; }';
  const fs = 'precision mediump float; void main() { gl_FragColor = vec4(0.3, 0.5, 0.7, 1.0); }';
  const prog = gl.createProgram();
  for (const [t, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const sh = gl.createShader(t); gl.shaderSource(sh, src); gl.compileShader(sh); gl.attachShader(prog, sh);
  }
  gl.linkProgram(prog); gl.useProgram(prog);
  const pos = new Float32Array(2 * n);
  for (let i = 0; i < pos.length; i++) pos[i] = Math.random() * 1.8 - 0.9;
  gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
  gl.bufferData(gl.ARRAY_BUFFER, pos, gl.STATIC_DRAW);
  gl.enableVertexAttribArray(0); gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
  const px = new Uint8Array(4); const out = [];
  for (let k = 0; k < 6; k++) {
    const t0 = performance.now();
    gl.clear(gl.COLOR_BUFFER_BIT); gl.drawArrays(gl.POINTS, 0, n);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    out.push(performance.now() - t0);
  }
  return out.slice(1).sort((a, b) => a - b)[2];
}
"""
# The panel's marks (hook.ts `timings`) and the coords request's Resource Timing entry
SPLIT_JS = """
() => {
  const h = window.__deepscopeProjector; const p = h.plot('a');
  p.syncFrameMs(0, 0); const done = performance.now();
  const c = document.createElement('canvas').getContext('webgl');
  const d = c && c.getExtension('WEBGL_debug_renderer_info');
  const res = performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/api/projector/coords') && !e.name.includes('partial'));
  const r = res[res.length - 1] || null;
  const t = h.timings;
  return { request: t['a:request'], coords: t['a:coords'], layout: t['a:layout'],
    upload: t['a:upload'], colors: t['a:colors'], colorUpload: t['a:colorUpload'],
    draw: t['a:draw'], frame: p.firstFrameAt(), done,
    coordsFetchStart: r ? r.fetchStart : null, coordsResponseStart: r ? r.responseStart : null,
    coordsResponseEnd: r ? r.responseEnd : null,
    renderer: d ? c.getParameter(d.UNMASKED_RENDERER_WEBGL) : '' };
}
"""


def _split(got: dict[str, Any]) -> dict[str, float]:
    """The first frame's parts in ms: the project answer (POST until GET /coords starts),
    the server's payload (GET sent until its first byte), transfer (first to last byte),
    decode (last byte until the panel holds the Float32Array), layout (normalise), the
    position upload, colour/size buffers built, their upload, the draw call, and the GPU
    finishing it (readPixels)."""
    if got.get("coordsResponseEnd") is None:
        return {}
    marks = [("project_answer", "request", "coordsFetchStart"),
             ("server_payload", "coordsFetchStart", "coordsResponseStart"),
             ("transfer", "coordsResponseStart", "coordsResponseEnd"),
             ("decode", "coordsResponseEnd", "coords"), ("layout", "coords", "layout"),
             ("position_upload", "layout", "upload"), ("colour_buffers", "upload", "colors"),
             ("colour_upload", "colors", "colorUpload"), ("draw_call", "colorUpload", "draw"),
             ("gpu_finish", "draw", "frame")]  # fmt: skip
    return {
        k: float(got[b] - got[a])
        for k, a, b in marks
        if got.get(a) is not None and got.get(b) is not None
    }


TB_CAPS = {
    "tb_points_loaded_max": 100_000,
    "tb_tsne_sample": 10_000,
    "tb_umap_sample": 5_000,
    "tb_caps_source": "tensorflow/tensorboard issues #773, #3647, #6635",
    "tb_driven": False,
}


def log_points(root: Path, n: int) -> None:
    import deepscope

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 10, (8, 16)).astype(np.float32)
    codes = rng.integers(0, 8, n)
    x = centers[codes] + rng.normal(0, 1, (n, 16)).astype(np.float32)
    with deepscope.init(logdir=root, name="bench") as run:
        run.log_embedding("big", x, labels=[f"c{c}" for c in codes], step=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, root: Path) -> None:
        import uvicorn

        from deepscope.server.app import create_app
        from deepscope.server.settings import Settings

        self.port = free_port()
        settings = Settings(logdir=root, bound_host="127.0.0.1", poll_interval=0.25)
        cfg = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=600) as r:
        out: dict[str, Any] = json.loads(r.read())
    return out


def browser_figures(url: str, n: int, args: list[str], repeats: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    first: list[float] = []
    to_drawn: list[float] = []
    pan: list[float] = []
    coords: list[float] = []
    draw: list[float] = []
    raw: list[float] = []
    split: dict[str, list[float]] = {}
    renderer = ""
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            for k in range(repeats):
                page = b.new_page(viewport={"width": 1280, "height": 900})
                t0 = time.perf_counter()
                page.goto(f"{url}/#/projector?runs=bench&run=bench&tag=big&method=pca")
                page.wait_for_function(
                    "(n) => window.__deepscopeProjector?.plot('a')?.count() === n",
                    arg=n, timeout=300_000, polling=10,
                )  # fmt: skip
                got = page.evaluate(SPLIT_JS)
                to_drawn.append(time.perf_counter() - t0)
                # the first frame: the drawn frame's draw call, then the GPU finished
                first.append((got["frame"] - got["request"]) / 1000)
                coords.append((got["coords"] - got["request"]) / 1000)
                draw.append((got["frame"] - got["coords"]) / 1000)
                for part, ms in _split(got).items():
                    split.setdefault(part, []).append(ms)
                renderer = got["renderer"]
                if k == 0:
                    pan = page.evaluate(
                        "() => { const p = window.__deepscopeProjector.plot('a'); const out = [];"
                        " for (let i = 0; i < 20; i++) out.push(p.syncFrameMs(3, 2));"
                        " return out; }"
                    )
                # interleaved with the panel's frames: the bare-WebGL floor, same browser
                raw.append(page.evaluate(RAW_FLOOR_JS, n))
                page.close()
        finally:
            b.close()
    return {
        "renderer": renderer,
        "first_frame_s": round(statistics.median(first), 3),
        "first_frame_runs_s": [round(v, 3) for v in first],
        "request_to_coords_s": round(statistics.median(coords), 3),
        "coords_to_first_frame_s": round(statistics.median(draw), 3),
        "navigation_to_drawn_s": round(statistics.median(to_drawn), 3),
        "raw_webgl_frame_ms": round(statistics.median(raw), 1),
        "pan_frame_ms_median": round(statistics.median(pan), 2),
        "pan_frame_ms_p90": round(float(np.percentile(pan, 90)), 2),
        "pan_vs_raw_webgl_ratio": round(statistics.median(pan) / statistics.median(raw), 2),
        "first_frame_split_ms": {k: round(statistics.median(v), 1) for k, v in split.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if not STATIC_INDEX.exists():
        sys.exit("build the frontend first: pip install -e . (or cd frontend && npm run build)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        log_points(root, a.points)
        log_s = time.perf_counter() - t
        print(f"logged {a.points} x 16 points in {log_s:.1f} s", flush=True)
        server = Server(root)
        try:
            body = {
                "run": "bench",
                "tag": "big",
                "step": 0,
                "method": "pca",
                "dims": 2,
                "params": {},
            }
            t = time.perf_counter()
            ans = post(f"{server.url}/api/projector/project", body)
            while ans["state"] != "done":
                time.sleep(0.05)
                ans = post(f"{server.url}/api/projector/project", body)
            cold = time.perf_counter() - t
            with urllib.request.urlopen(
                f"{server.url}/api/projector/coords?run=bench&key={ans['key']}", timeout=60
            ) as r:
                payload = len(r.read())
            print(f"PCA on the server: {cold:.2f} s; coords payload {payload} bytes", flush=True)
            out: dict[str, Any] = {
                "points": a.points,
                "log_embedding_s": round(log_s, 2),
                "cold_project_s": round(cold, 3),
                "payload_bytes": payload,
                "payload_bytes_per_point": round(payload / a.points, 4),
                "goal_first_frame_s": 1.5,
                "goal_pan_frame_ms": 16,
                "goal_payload_bytes_per_point": 8,
                "machine": "2 cores shared by ~8 agents (loaded); no GPU: SwiftShader software GL",
            }
            for name, args in GL_BACKENDS.items():
                figs = browser_figures(server.url, a.points, args, a.repeats)
                print(f"{name}: {figs}", flush=True)
                key = "angle_swiftshader" if "use-angle" in name else "default_gl"
                out.update({f"{key}_{k}": v for k, v in figs.items()})
            out.update(TB_CAPS)
            out["tb_points_ratio"] = round(a.points / TB_CAPS["tb_points_loaded_max"], 1)
        finally:
            server.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
