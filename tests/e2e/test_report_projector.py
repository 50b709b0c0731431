"""The Projector tab of a static report (`deepscope report`): the snapshot carries each
embedding's columns and a 2-D PCA, so the panel's default view draws offline from file://
with the network cut (every non-file request aborted and recorded: none is made); each
cluster's points show the cluster's colour at the cluster's place; t-SNE answers a clear
"not available in a static report" error; an embedding over the point limit is left out
and said so."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import SCREENSHOTS, STATIC_INDEX

pytestmark = [pytest.mark.browser]

RUN = "emb"
N = 300  # points per cluster
# palette of the panel (panels/projector/palette.ts): category i -> CATEGORY_COLORS[i]
PALETTE = [(0x4E, 0x79, 0xA7), (0xF2, 0x8E, 0x2B), (0xE1, 0x57, 0x59)]


def _clusters() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(0)
    centres = np.zeros((3, 16), dtype=np.float32)
    centres[0, 0], centres[1, 0], centres[2, 1] = 20.0, -20.0, 20.0
    x = np.concatenate([c + rng.normal(0, 0.5, (N, 16)).astype(np.float32) for c in centres])
    return x, [f"c{i}" for i in range(3) for _ in range(N)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    if not (STATIC_INDEX.parent / "embed" / "report.js").exists():
        pytest.skip("the frontend is not built: run `npm run build` in frontend/")
    import deepscope
    from deepscope.notebook.snapshot import Limits, snapshot_logdir
    from deepscope.views import embed

    root = tmp_path_factory.mktemp("report-projector")
    run = deepscope.init(root / "runs", name=RUN)
    x, labels = _clusters()
    run.log_embedding("feats", x, labels=labels, step=0)
    run.log_embedding("big", np.zeros((3 * N + 1, 2), dtype=np.float32), step=0)
    run.finish()
    rec = snapshot_logdir(root / "runs", limits=Limits(max_projector_points=3 * N))
    out = root / "report.html"
    out.write_text(embed.report_html(rec.snapshot), encoding="utf-8")
    return out, rec.notes


def _pixels(page: Any) -> np.ndarray:
    from PIL import Image

    png = page.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def test_report_projector_draws_pca_offline(report: tuple[Path, list[str]], browser: Any) -> None:
    out, notes = report
    assert any("'big'" in n and f"{3 * N + 1} points" in n for n in notes), notes
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
        page.goto(f"{out.as_uri()}#/projector?runs={RUN}&run={RUN}&tag=feats&method=pca")
        page.wait_for_selector('[data-testid="panel-projector"]')
        page.wait_for_function(
            "(n) => window.__deepscopeProjector?.plot('a')?.count() === n", arg=3 * N
        )
        page.wait_for_timeout(300)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "report-projector.png"), full_page=True)
        img = _pixels(page)
        centres = []
        for c in range(3):
            idx = list(range(c * N, c * N + 100))
            pts = np.asarray(
                page.evaluate(
                    "(idx) => idx.map((i) => window.__deepscopeProjector.plot('a').screenPos(i))",
                    idx,
                ),
                dtype=float,
            )
            cx, cy = np.median(pts, axis=0)
            centres.append((cx, cy))
            block = img[int(cy) - 1 : int(cy) + 2, int(cx) - 1 : int(cx) + 2].reshape(-1, 3)
            assert all((np.abs(p - np.asarray(PALETTE[c])) <= 6).all() for p in block), (
                c,
                block[:3],
            )
        # PCA keeps the clusters apart as the data does
        for a in range(3):
            for b in range(a + 1, 3):
                assert np.hypot(*np.subtract(centres[a], centres[b])) > 100, centres
        # the big embedding was left out of the listing
        options = page.locator('[data-testid="panel-projector"] select option').all_inner_texts()
        assert not any("big" in o for o in options), options
        # t-SNE cannot run here: the panel says so
        page.locator('[data-testid="proj-method-tsne"]').click()
        page.wait_for_function(
            "() => document.querySelector('[data-testid=panel-projector]')"
            ".innerText.includes('not available in a static report')"
        )
        page.screenshot(path=str(SCREENSHOTS / "report-projector-tsne.png"), full_page=True)
        assert attempted == [], attempted
        assert problems == [], problems
    finally:
        context.close()
