"""The Projector panel in Chromium against the real server: 100k logged points drawn in
WebGL (the colour of a known cluster at its screen place), hover labels and thumbnails, a
lasso drawn with the mouse selecting exactly one cluster (and its CSV export), a method
change that runs t-SNE on the server and draws its coordinates, nearest neighbours equal
to a brute-force search, dropped NaN rows counted, 3-D and side-by-side steps. The store
(written by `run.log_embedding`) and the server are this module's own."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import STATIC_INDEX, ServerThread, screenshot, wait_thumb

pytestmark = pytest.mark.browser

RUN = "proj"
BIG_N = 100_000
DIM = 8
# four clusters far apart in the first two axes (PCA keeps them apart), one lonely point
CENTERS = np.array([[-30, -20], [30, -20], [0, 30], [-30, 25]], dtype=np.float32)
LONELY = 12_345
SMALL_N = 240
SMALL_NAN = (5, 17, 200)
# palette of the panel (panels/projector/palette.ts): category i -> CATEGORY_COLORS[i]
PALETTE = [(0x4E, 0x79, 0xA7), (0xF2, 0x8E, 0x2B), (0xE1, 0x57, 0x59), (0x76, 0xB7, 0xB2)]
THUMB_COLORS = [(255, 0, 0), (0, 160, 255), (40, 200, 40)]


def _big() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, BIG_N)
    x = np.zeros((BIG_N, DIM), dtype=np.float32)
    x[:, :2] = CENTERS[codes] + rng.normal(0, 1.0, (BIG_N, 2))
    x[:, 2:] = rng.normal(0, 0.05, (BIG_N, DIM - 2))
    labels = [f"c{c}" for c in codes]
    x[LONELY, :2] = (60.0, 60.0)  # far from every cluster
    labels[LONELY] = "lonely"
    return x, labels


def _small() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    codes = np.arange(SMALL_N) % 3
    x = rng.normal(0, 1, (SMALL_N, 16)).astype(np.float32)
    x[:, :3] += 8 * np.eye(3, dtype=np.float32)[codes]
    x[list(SMALL_NAN), 0] = np.nan
    imgs = np.zeros((SMALL_N, 3, 8, 8), dtype=np.float32)
    for i, c in enumerate(codes):
        imgs[i] = (np.asarray(THUMB_COLORS[c], dtype=np.float32) / 255.0)[:, None, None]
    return x, codes, imgs


@pytest.fixture(scope="module")
def proj_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import deepscope

    root: Path = tmp_path_factory.mktemp("projector-logdir")
    x, labels = _big()
    sx, scodes, imgs = _small()
    with deepscope.init(logdir=root, name=RUN) as run:
        run.log_embedding(
            "big", x, labels=labels, metadata={"score": np.linspace(0, 1, BIG_N)}, step=0
        )
        for step in (0, 10):
            run.log_embedding(
                "small", sx * (1 + step / 10), labels=[f"k{c}" for c in scodes],
                metadata={"caption": [f"item {i}" for i in range(SMALL_N)]},
                images=imgs, step=step,
            )  # fmt: skip
    with ServerThread(root) as server:
        yield server.url


def _open(page: Any, url: str, tag: str, extra: str = "") -> None:
    page.goto(f"{url}/#/projector?runs={RUN}&run={RUN}&tag={tag}&method=pca{extra}")
    page.wait_for_selector('[data-testid="panel-projector"]')


def _wait_drawn(page: Any, plot: str, n: int, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "([id, n]) => { const p = window.__deepscopeProjector?.plot(id);"
        " return p !== null && p !== undefined && p.count() === n; }",
        arg=[plot, n],
        timeout=timeout,
    )


def _pos(page: Any, index: int, plot: str = "a") -> tuple[float, float]:
    x, y = _positions(page, [index], plot)[0]
    return float(x), float(y)


def _positions(page: Any, indices: list[int], plot: str = "a") -> np.ndarray:
    """Client positions of data points (one round trip); every one must be drawn."""
    got = page.evaluate(
        "([id, idx]) => idx.map((i) => window.__deepscopeProjector.plot(id).screenPos(i))",
        [plot, [int(i) for i in indices]],
    )
    missing = [i for i, g in zip(indices, got, strict=True) if g is None]
    assert not missing, f"points not drawn: {missing[:5]}"
    return np.asarray(got, dtype=float)


def _pixels(page: Any) -> np.ndarray:
    from PIL import Image

    png = page.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _near(rgb: np.ndarray, want: tuple[int, int, int], tol: int = 6) -> bool:
    return bool((np.abs(rgb - np.asarray(want)) <= tol).all())


def test_100k_points_drawn_cluster_colour_at_its_place(page: Any, proj_server: str) -> None:
    _open(page, proj_server, "big")
    _wait_drawn(page, "a", BIG_N)  # every point is on the canvas, none sampled away
    x, labels = _big()
    codes = np.array([int(lab[1]) if lab != "lonely" else -1 for lab in labels])
    img = _pixels(page)
    centres = {}
    for c in range(4):
        idx = np.flatnonzero(codes == c)[:300]
        pts = _positions(page, [int(i) for i in idx])
        cx, cy = np.median(pts, axis=0)
        centres[c] = (cx, cy)
        # the cluster's centre shows the cluster's colour (5x5 block, all of it)
        block = img[int(cy) - 2 : int(cy) + 3, int(cx) - 2 : int(cx) + 3].reshape(-1, 3)
        assert all(_near(p, PALETTE[c]) for p in block), (c, block[:3], PALETTE[c])
    # the layout keeps the clusters apart as the data does: c0/c1 opposite in x
    d01 = math.dist(centres[0], centres[1])
    assert d01 > 150, centres
    legend = page.locator('[data-testid="proj-legend-row"]')
    assert legend.count() == 5  # c0..c3 and lonely
    assert page.locator('[data-testid="proj-legend-row"][data-label="c2"]').get_attribute(
        "data-color"
    ) == "#{:02x}{:02x}{:02x}".format(*PALETTE[2])
    screenshot(page, "projector-100k")


def test_hover_shows_label_of_known_point(page: Any, proj_server: str) -> None:
    _open(page, proj_server, "big")
    _wait_drawn(page, "a", BIG_N)
    px, py = _pos(page, LONELY)
    page.mouse.move(px - 40, py + 40)
    page.mouse.move(px, py)
    hover = page.locator('[data-testid="proj-hover"]')
    hover.wait_for()
    assert hover.get_attribute("data-index") == str(LONELY)
    assert page.locator('[data-testid="proj-hover-label"]').inner_text() == "lonely"
    # a point of a cluster: the label of that very point
    _, labels = _big()
    i = next(k for k in range(BIG_N) if labels[k] == "c3")
    # move next to the point on its outer side is ambiguous inside a dense cluster; ask the
    # panel for the point under the cursor and check the label matches its logged one
    qx, qy = _pos(page, i)
    page.mouse.move(qx, qy)
    page.wait_for_function(
        "(i) => document.querySelector('[data-testid=proj-hover]')?.dataset.index !== String(i)",
        arg=LONELY,
    )
    shown = int(hover.get_attribute("data-index") or -1)
    assert page.locator('[data-testid="proj-hover-label"]').inner_text() == labels[shown] == "c3"
    screenshot(page, "projector-hover")


def test_lasso_selects_one_cluster_and_exports_it(page: Any, proj_server: str) -> None:
    _open(page, proj_server, "big")
    _wait_drawn(page, "a", BIG_N)
    _, labels = _big()
    idx = [i for i in range(BIG_N) if labels[i] == "c1"]
    pts = _positions(page, idx[:400])
    cx, cy = np.median(pts, axis=0)
    spread = float(np.percentile(np.hypot(pts[:, 0] - cx, pts[:, 1] - cy), 99))
    far = [i for i in range(0, BIG_N, 97) if labels[i] != "c1"]
    others = np.hypot(*(_positions(page, far) - (cx, cy)).T)
    radius = min(spread * 3 + 10, float(others.min()) - 10)
    assert radius > spread * 2, "the test layout has no room for a lasso"
    page.locator('[data-testid="proj-mode-lasso"]').click()
    page.mouse.move(cx + radius, cy)
    page.mouse.down()
    for k in range(1, 41):
        a = 2 * math.pi * k / 40
        page.mouse.move(cx + radius * math.cos(a), cy + radius * math.sin(a), steps=2)
    page.mouse.up()
    sel = page.locator('[data-testid="proj-selection"]')
    sel.wait_for()
    assert sel.get_attribute("data-source") == "lasso"
    assert int(sel.get_attribute("data-count") or 0) == len(idx)
    screenshot(page, "projector-lasso")
    with page.expect_download() as dl:
        page.locator('[data-testid="proj-export"]').click()
    lines = Path(dl.value.path()).read_text().splitlines()
    assert lines[0].split(",")[:3] == ["index", "label", "score"]
    assert len(lines) == len(idx) + 1
    assert {line.split(",")[1] for line in lines[1:]} == {"c1"}
    assert sorted(int(line.split(",")[0]) for line in lines[1:]) == idx


def test_method_change_runs_tsne_and_draws_it(page: Any, proj_server: str) -> None:
    _open(page, proj_server, "small")
    finite = SMALL_N - len(SMALL_NAN)
    _wait_drawn(page, "a", finite)
    wrap = page.locator('[data-testid="proj-plot-wrap"]').first
    assert page.locator('[data-testid="proj-dropped"]').inner_text() == "3 points dropped (NaN/Inf)"
    pca_key = wrap.get_attribute("data-coords-key")
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/projector/project")
    ) as req:
        page.locator('[data-testid="proj-method-tsne"]').click()
    body = req.value.post_data_json
    assert body["method"] == "tsne" and body["params"] == {"perplexity": 30}
    page.wait_for_function(
        "(old) => { const w = document.querySelector('[data-testid=proj-plot-wrap]');"
        " return w.dataset.state === 'done' && w.dataset.coordsKey !== old"
        " && w.dataset.coordsKey === w.dataset.key && w.dataset.partial === 'false'; }",
        arg=pca_key,
        timeout=120_000,
    )
    _wait_drawn(page, "a", finite)
    assert "method=tsne" in page.evaluate("location.hash")
    # the t-SNE layout separates the three classes: a point's nearest drawn neighbour on
    # screen shares its class for nearly every point
    _, codes, _ = _small()
    keep = [i for i in range(SMALL_N) if i not in SMALL_NAN]
    pts = _positions(page, keep)
    d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1])
    np.fill_diagonal(d, np.inf)
    agree = np.mean(codes[keep] == codes[np.array(keep)[d.argmin(1)]])
    assert agree > 0.9, agree
    screenshot(page, "projector-tsne")


def test_click_shows_true_nearest_neighbours_and_thumbnail(page: Any, proj_server: str) -> None:
    _open(page, proj_server, "small")
    _wait_drawn(page, "a", SMALL_N - len(SMALL_NAN))
    target = 42
    px, py = _pos(page, target)
    page.mouse.move(px, py)
    hover = page.locator('[data-testid="proj-hover"]')
    hover.wait_for()
    shown = int(hover.get_attribute("data-index") or -1)
    _, codes, _ = _small()
    # the hover thumbnail is the crop of that point's own image (solid, colour by class)
    wait_thumb(page, shown)
    rgb = page.evaluate(
        "() => { const c = document.querySelector('[data-testid=proj-thumb]');"
        " const d = c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data;"
        " return [d[0], d[1], d[2]]; }"
    )
    assert _near(np.asarray(rgb), THUMB_COLORS[codes[shown]], tol=3), rgb
    page.mouse.click(px, py)
    sel = page.locator('[data-testid="proj-selection"][data-source="neighbors"]')
    sel.wait_for()
    rows = page.locator('[data-testid="proj-row"]')
    got = [int(rows.nth(k).get_attribute("data-index") or -1) for k in range(rows.count())]
    assert got[0] == shown
    x, _, _ = _small()
    x = x * 2.0  # step 10 (the last step) logged x * 2
    ok = np.isfinite(x).all(axis=1)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1 - unit @ unit[shown]
    dist[~ok] = np.inf
    dist[shown] = np.inf
    # the 10 shown are the 10 nearest (distances equal brute force's 10 smallest; the
    # server may hold the points as float16, so equal-distance ties may order differently)
    assert len(got) == 11 and len(set(got)) == 11
    np.testing.assert_allclose(dist[got[1:]], np.sort(dist)[:10], atol=2e-3)
    screenshot(page, "projector-neighbours")


def test_search_3d_and_compare_steps(page: Any, proj_server: str) -> None:
    _open(page, proj_server, "small")
    finite = SMALL_N - len(SMALL_NAN)
    _wait_drawn(page, "a", finite)
    page.locator('[data-testid="proj-search"]').fill("item 1")
    sel = page.locator('[data-testid="proj-selection"][data-source="search"]')
    sel.wait_for()
    want = sum(1 for i in range(SMALL_N) if "item 1" in f"item {i}")
    assert int(sel.get_attribute("data-count") or 0) == want
    page.locator('[data-testid="proj-search"]').fill("")
    key2d = page.locator('[data-testid="proj-plot-wrap"]').first.get_attribute("data-coords-key")
    page.locator('[data-testid="proj-dims-3"]').click()
    page.wait_for_function(
        "(old) => { const w = document.querySelector('[data-testid=proj-plot-wrap]');"
        " return w.dataset.state === 'done' && w.dataset.coordsKey === w.dataset.key"
        " && w.dataset.key !== old; }",
        arg=key2d,
        timeout=60_000,
    )
    before = _pos(page, 0)
    box = page.locator('[data-testid="proj-canvas-a"]').bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(box["x"] + 320, box["y"] + 260, steps=8)
    page.mouse.up()
    after = _pos(page, 0)
    assert math.dist(before, after) > 5  # the drag rotated the 3-D layout
    screenshot(page, "projector-3d")
    page.locator('[data-testid="proj-dims-2"]').click()
    page.locator('[data-testid="proj-compare"]').check()
    page.locator('[data-testid="proj-step-b"]').select_option("0")
    _wait_drawn(page, "b", finite)
    _wait_drawn(page, "a", finite)
    heads = page.locator(".proj-plot-head strong")
    assert heads.all_inner_texts() == ["step 10", "step 0"]
    screenshot(page, "projector-compare")


def test_cancel_stops_a_running_projection(page: Any, proj_server: str) -> None:
    _open(page, proj_server, "small")
    _wait_drawn(page, "a", SMALL_N - len(SMALL_NAN))
    page.locator('[data-testid="proj-method-umap"]').click()
    cancel = page.locator('[data-testid="proj-cancel"]')
    cancel.wait_for()  # the progress bar of the queued/running job, with its cancel button
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/api/projector/cancel")
    ) as resp:
        cancel.click()
    assert resp.value.json() == {"cancelled": True}
    wrap = page.locator('[data-testid="proj-plot-wrap"]').first
    page.wait_for_function(
        "() => document.querySelector('[data-testid=proj-plot-wrap]').dataset.state === 'cancelled'"
    )
    page.wait_for_timeout(1500)  # a poll or SSE frame later, it stays cancelled
    assert wrap.get_attribute("data-state") == "cancelled"
    assert page.locator('[data-testid="proj-progress"]').count() == 0
