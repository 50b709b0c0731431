"""Hover thumbnails and nearest neighbours in a static report (`deepscope report`, opened
from file:// with every non-file request aborted and recorded): the snapshot carries the
embedding's sprite atlas and its vectors, the hovered point's thumbnail is that point's own
sprite tile pixel for pixel, and the neighbour list (cosine, then euclidean) is exactly the
brute-force one computed here with numpy. No request leaves the page."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import SCREENSHOTS, STATIC_INDEX, wait_thumb

pytestmark = [pytest.mark.browser]

RUN = "thumbs"
N = 150
DIM = 12
TILE = 8


def _data() -> tuple[np.ndarray, np.ndarray]:
    """Small integers (exact in float16, so stored and brute-force values are the same
    numbers) in three groups; a random 8x8 RGB picture per point (no two alike)."""
    rng = np.random.default_rng(7)
    x = rng.integers(-4, 5, (N, DIM)).astype(np.float32)
    x[:, :3] += 12 * np.eye(3, dtype=np.float32)[np.arange(N) % 3]
    imgs = rng.integers(0, 256, (N, TILE, TILE, 3)).astype(np.uint8)
    return x, imgs


def _brute(x: np.ndarray, i: int, metric: str, k: int = 10) -> list[int]:
    x = x.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1)
        d = 1.0 - (x @ x[i]) / (norms * norms[i])
    else:
        d = np.linalg.norm(x - x[i], axis=1)
    d[i] = np.inf
    order = np.lexsort((np.arange(len(d)), d))
    return [int(j) for j in order[:k]]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (STATIC_INDEX.parent / "embed" / "report.js").exists():
        pytest.skip("the frontend is not built: run `npm run build` in frontend/")
    from click.testing import CliRunner

    import deepscope
    from deepscope.cli import main

    root = tmp_path_factory.mktemp("report-thumbs")
    x, imgs = _data()
    run = deepscope.init(root / "runs", name=RUN)
    run.log_embedding("feats", x, labels=[f"g{i % 3}" for i in range(N)], images=imgs, step=0)
    run.finish()
    out = root / "report.html"
    result = CliRunner().invoke(main, ["report", str(root / "runs"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _snapshot(page_html: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="deepscope-data">(.*?)</script>',
                  page_html, re.S)  # fmt: skip
    assert m is not None
    return dict(json.loads(m.group(1)))  # `<`, `>`, `&` are JSON escapes there


def test_report_hover_thumbnail_and_neighbours_offline(report: Path, browser: Any) -> None:
    from PIL import Image

    snap = _snapshot(report.read_text(encoding="utf-8"))
    sprite_url = snap["blobs"][f"{RUN}\u0000projector:sprite:0:feats"]
    atlas = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(sprite_url.split(",", 1)[1]))).convert("RGB")
    )
    assert f"{RUN}\u0000projector:vectors:0:feats" in snap["blobs"]
    x, imgs = _data()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    attempted: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            attempted.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else attempted.append(r.url),
    )
    try:
        page.goto(f"{report.as_uri()}#/projector?runs={RUN}&run={RUN}&tag=feats&method=pca")
        page.wait_for_selector('[data-testid="panel-projector"]')
        page.wait_for_function("(n) => window.__deepscopeProjector?.plot('a')?.count() === n",
                               arg=N)  # fmt: skip
        shown_all = []
        for metric in ("cosine", "euclidean"):
            if metric == "euclidean":
                page.locator('[data-testid="proj-metric"]').select_option("euclidean")
            target = 40 if metric == "cosine" else 101
            px, py = page.evaluate(
                "(i) => window.__deepscopeProjector.plot('a').screenPos(i)", target
            )
            page.mouse.move(px, py)
            hover = page.locator('[data-testid="proj-hover"]')
            hover.wait_for()
            shown = int(hover.get_attribute("data-index") or -1)
            shown_all.append(shown)
            wait_thumb(page, shown)
            # the thumbnail canvas, read back: each 8x8 cell of the scaled tile is the pixel
            # of this point's sprite tile (and of the picture logged for it)
            thumb = page.evaluate(
                "() => { const c = document.querySelector('[data-testid=proj-thumb]');"
                " return [c.width, c.height,"
                " Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"
            )
            w, h, flat = thumb
            canvas = np.asarray(flat, dtype=np.uint8).reshape(h, w, 4)[..., :3]
            scale = w // TILE
            assert scale >= 2 and h == TILE * scale
            cells = canvas[scale // 2 :: scale, scale // 2 :: scale]
            cols = atlas.shape[1] // TILE
            r, c = divmod(shown, cols)
            tile = atlas[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE]
            assert np.array_equal(cells, tile)
            assert np.array_equal(tile, imgs[shown])
            if metric == "cosine":
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "report-projector-hover.png"))
            page.mouse.click(px, py)
            page.wait_for_function(
                "(a) => { const s = document.querySelector("
                "'[data-testid=proj-selection][data-source=neighbors]');"
                " return s && s.querySelector('.proj-row.anchor')?.dataset.index === String(a); }",
                arg=shown,
            )
            rows = page.locator('[data-testid="proj-row"]')
            got = [int(rows.nth(k).get_attribute("data-index") or -1) for k in range(rows.count())]
            assert got[0] == shown
            assert got[1:] == _brute(x, shown, metric), (metric, got)
            page.screenshot(path=str(SCREENSHOTS / f"report-projector-neighbours-{metric}.png"),
                            full_page=True)  # fmt: skip
        assert attempted == [], attempted
        assert problems == [], problems
    finally:
        context.close()
