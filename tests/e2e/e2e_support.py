"""Helpers for the browser tests (fixtures live in conftest.py).

`write_logdir` writes the shared test store with the public logging API (`deepscope.init`);
`ServerThread` runs `create_app` under uvicorn on a free loopback port; the rest reads the
page (canvas pixels, colours) and saves screenshots.
"""

from __future__ import annotations

import base64
import contextlib
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
STATIC_INDEX = REPO / "src" / "deepscope" / "server" / "static" / "app" / "index.html"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

XSS_PAYLOADS = [
    "<img src=x onerror=window.__x=1>",
    '"><svg onload=window.__x=1>',
    "</script><script>window.__x=1</script>",
    "javascript:window.__x=1",
]

# Values the tests assert against.
LOSS_STEPS = 100
UNSTABLE_NONFINITE = {10: float("nan"), 20: float("inf"), 30: float("-inf")}
HIST_STEPS = 10
HIST_NAN_STEP = 5
HIST_NAN_COUNT = 50
IMAGE_COLORS = [(255, 0, 0), (0, 200, 0), (0, 0, 255)]


def _tiny_model() -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    ), torch.randn(1, 4)


def write_logdir(root: Path) -> None:
    """Runs `alpha` and `beta` (curves, histograms, images, text, events, a graph) and `xss`."""
    import deepscope

    rng = np.random.default_rng(0)
    with deepscope.init(
        logdir=root, name="alpha", config={"lr": 0.001, "optimizer": "adam", "layers": [4, 8, 2]}
    ) as run:
        for step in range(LOSS_STEPS):
            unstable = UNSTABLE_NONFINITE.get(step, math.sin(step / 7.0))
            run.log({"loss": 2.0 * math.exp(-step / 30.0) + 0.1, "unstable": unstable}, step=step)
        for step in range(HIST_STEPS):
            if step == HIST_NAN_STEP:
                values = np.full(HIST_NAN_COUNT, np.nan)
            else:
                values = rng.normal(loc=step * 0.3, scale=1.0, size=2000)
            run.log_histogram("weights/layer1", values, step=step)
        for step, (r, g, b) in enumerate(IMAGE_COLORS):
            img = np.zeros((16, 16, 3), dtype=np.uint8)
            img[...] = (r, g, b)
            run.log_image("samples", img, step=step, dataformats="HWC")
        run.log_text("notes", "plain note: lr warmup done", step=3)
        run.log_event("nan", "NaN in layer1 output", severity="error", layer="layer1", step=50)
        run.log_event(
            "exploding_grad", "gradient norm 1e6", severity="warning", layer="layer2", step=60
        )
        model, example = _tiny_model()
        run.log_graph(model, example)
    with deepscope.init(logdir=root, name="beta", config={"lr": 0.01}) as run:
        for step in range(LOSS_STEPS):
            run.log({"loss": 1.5 * math.exp(-step / 50.0) + 0.3}, step=step)
    with deepscope.init(
        logdir=root,
        name=XSS_PAYLOADS[0],  # sanitised by init into a safe directory name
        config={p: p for p in XSS_PAYLOADS},
    ) as run:
        for i, p in enumerate(XSS_PAYLOADS):
            run.log({p: float(i)}, step=0)
            run.log({p: float(i + 1)}, step=1)
            run.log_text(p, p, step=i)
            run.log_event("xss", p, severity="info", layer=p, step=i)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn serving `create_app(settings)` in a daemon thread on 127.0.0.1."""

    def __init__(self, logdir: Path) -> None:
        import uvicorn

        from deepscope.server.app import create_app
        from deepscope.server.settings import Settings

        self.port = free_port()
        settings = Settings(logdir=logdir, bound_host="127.0.0.1", poll_interval=0.25)
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class PageLog:
    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def csp_messages(self) -> list[str]:
        return [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]


CSP_PROBE = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def open_tab(page: Any, server_url: str, tab: str, runs: list[str] | None = None) -> None:
    """Load the dashboard at ``#/<tab>?runs=...`` and wait for the panel root."""
    from urllib.parse import quote

    fragment = f"#/{tab}"
    if runs is not None:
        fragment += "?runs=" + ",".join(quote(r, safe="") for r in runs)
    page.goto(f"{server_url}/{fragment}")
    page.wait_for_selector(f'[data-testid="panel-{tab}"]')


@contextlib.contextmanager
def graph_run_server(root: Path, name: str, graph: Any) -> Iterator[str]:
    """A run `name` in `root` holding `graph`, served on loopback: yields the URL."""
    import pytest

    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import deepscope
    from deepscope.server.runner import serve_in_thread
    from deepscope.server.settings import Settings

    with deepscope.init(logdir=root, name=name) as run:
        run.log_graph(graph)
    url, stop = serve_in_thread(Settings(logdir=root))
    try:
        yield url
    finally:
        stop()


def settle_graph(page: Any) -> None:
    """Wait until the graph explorer has laid out and drawn what it shows."""
    page.wait_for_function(
        "() => document.querySelector('[data-testid=graph-explorer]')?.dataset.busy === 'false'"
    )


def fit_graph(page: Any) -> None:
    """Click the graph's Fit button and wait until the fitted view is rendered.

    The view is culled to the window around the viewport, and the fit lands one frame after
    the click, so reading the nodes right after the click can see the old window.
    """
    canvas = page.get_by_test_id("graph-canvas")
    before = int(canvas.get_attribute("data-command") or 0)
    page.get_by_test_id("graph-fit").click()
    page.wait_for_function(
        "(n) => +document.querySelector('[data-testid=graph-canvas]').dataset.command > n",
        arg=before,
    )


def wait_thumb(page: Any, index: int) -> None:
    """Wait until the projector's hover thumbnail holds the picture of point `index`."""
    page.wait_for_selector(f'[data-testid="proj-thumb"][data-drawn="{index}"]')


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


CANVAS_PIXELS = """
([selector, index]) => {
  const canvas = document.querySelectorAll(selector)[index];
  if (!canvas) return null;
  const bytes = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return { width: canvas.width, height: canvas.height, b64: btoa(bin) };
}
"""


def canvas_rgba(page: Any, selector: str, index: int = 0) -> np.ndarray:
    """The pixels of the `index`-th canvas matching `selector` as an (h, w, 4) uint8 array."""
    got = page.evaluate(CANVAS_PIXELS, [selector, index])
    assert got is not None, f"no canvas matches {selector}"
    data = np.frombuffer(base64.b64decode(got["b64"]), dtype=np.uint8)
    return data.reshape(got["height"], got["width"], 4)


def count_color(rgba: np.ndarray, rgb: tuple[int, int, int], tol: int = 40) -> int:
    """Opaque-ish pixels within `tol` of `rgb` on every channel."""
    diff = np.abs(rgba[..., :3].astype(int) - np.asarray(rgb)[None, None, :])
    return int(((diff <= tol).all(axis=-1) & (rgba[..., 3] > 150)).sum())


def count_red(rgba: np.ndarray) -> int:
    r, g, b, a = (rgba[..., i].astype(int) for i in range(4))
    return int(((r > 200) & (g < 70) & (b < 70) & (a > 150)).sum())


def css_rgb(value: str) -> tuple[int, int, int]:
    """'rgb(1, 2, 3)' or 'rgba(1, 2, 3, 0.5)' -> (1, 2, 3)."""
    inner = value[value.index("(") + 1 : value.index(")")]
    r, g, b = (int(float(x)) for x in inner.split(",")[:3])
    return r, g, b
