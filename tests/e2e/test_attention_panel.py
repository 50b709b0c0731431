"""The Attention panel in Chromium over a real store and server: attention captured from a
real `nn.MultiheadAttention` whose weights make token 2 attend to token 5, drawn as the
head view (a line between exactly those two tokens), the matrix heatmap (the stored value
under the pointer), the model view, and a 4,096-token layer kept block-pooled whose
overview draws at once, shows the stored block max/mean on hover and zooms into a block
from the stored top-k keys."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import STATIC_INDEX, ServerThread, screenshot

pytestmark = pytest.mark.browser

EMBED, HEADS, N = 8, 2, 8
LONG, BLOCK = 4096, 16
TOKENS = ["<s>", "the", "cat", "sat", "on", "mat", "today", "</s>"]


def _strong_pair_model(q: int, k: int) -> tuple[Any, Any]:
    """An MHA layer (head 0 reads dims 0-3) and inputs where query `q` meets key `k`: Q is the
    identity, K moves dim 1 into dim 0, x[q] = 6·e0 and x[k] = 6·e1, so q·k = 36 / √4."""
    import torch

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(EMBED, HEADS, batch_first=True)
    with torch.no_grad():
        eye = torch.eye(EMBED)
        wk = eye.clone()
        wk[0] = eye[1]
        wk[1] = 0
        mha.in_proj_weight.copy_(torch.cat([eye, wk, eye]))
        mha.in_proj_bias.zero_()

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = mha

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, x, x, need_weights=False)[0]

    x = torch.randn(1, N, EMBED) * 0.3
    x[0, q] = 6 * eye[0]
    x[0, k] = 6 * eye[1]
    return Net(), x


PROMPT = 5
QUADRANTS = np.zeros((32, 32, 3), dtype=np.uint8)
QUADRANTS[:16, 16:] = (255, 0, 0)
QUADRANTS[16:, :16] = (0, 0, 255)


class _Causal:
    """A decoder step: the same MHA under a causal mask (each token sees itself and before)."""

    def __new__(cls, mha: Any, mask: Any) -> Any:
        import torch

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.attn = mha

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]

        return Net()


@pytest.fixture(scope="module")
def attn_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Any, Any, Any]]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch

    import deepscope

    net, x = _strong_pair_model(2, 5)
    att = deepscope.attention(net, x, tokens=TOKENS)
    assert float(att["attn"][0, 2, 5]) > 0.9  # the pair the panel must show
    torch.manual_seed(1)
    long_net, _ = _strong_pair_model(2, 5)
    long_att = deepscope.attention(
        long_net, torch.randn(1, LONG, EMBED), tokens=[f"t{i}" for i in range(LONG)],
        block=BLOCK, top_k=4,
    )  # fmt: skip
    vit_att = deepscope.attention(net, x[:, :5], patch_grid_size=(2, 2))
    causal = torch.triu(torch.ones(N, N, dtype=torch.bool), diagonal=1)
    gen_att = deepscope.attention(_Causal(net.attn, causal), x, tokens=TOKENS)
    root: Path = tmp_path_factory.mktemp("attention-logdir")
    with deepscope.init(logdir=root, name="mha") as run:
        run.log_attention("attn", att, step=1)
    with deepscope.init(logdir=root, name="long") as run:
        run.log_attention("attn", long_att, step=1)
    with deepscope.init(logdir=root, name="vit") as run:
        run.log_attention("attn", vit_att, image=QUADRANTS)
    with deepscope.init(logdir=root, name="gen") as run:
        run.log_attention("attn", gen_att, prompt_length=PROMPT)
    with ServerThread(root) as server:
        yield server.url, att, long_att, vit_att, gen_att


def _open(page: Any, url: str, fragment: str) -> None:
    page.goto(f"{url}/#/attention?{fragment}")
    page.wait_for_selector('[data-testid="panel-attention"]')


def _rect(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box


def test_head_view_draws_the_strong_pair_between_its_tokens(
    page: Any, attn_run: tuple[str, Any, Any, Any, Any], page_log: Any
) -> None:
    url, att, *_ = attn_run
    _open(page, url, "run=mha&layer=attn&head=0&mode=heads")
    line = page.locator('line[data-q="2"][data-k="5"][data-head="0"]')
    line.wait_for()
    want = float(att["attn"][0, 2, 5])
    assert float(line.get_attribute("data-w")) == pytest.approx(want, rel=1e-6)
    assert float(line.get_attribute("stroke-opacity")) > 0.9
    # its ends sit on query token 2 (left column) and key token 5 (right column)
    q = _rect(page, '[data-testid="attn-query-token"][data-index="2"]')
    k = _rect(page, '[data-testid="attn-key-token"][data-index="5"]')
    ln = _rect(page, 'line[data-q="2"][data-k="5"][data-head="0"]')
    shown = "(e) => e.lastChild.textContent"  # the SVG text (its first child is the <title>)
    assert page.locator('[data-testid="attn-query-token"][data-index="2"]').evaluate(shown) == "cat"
    assert page.locator('[data-testid="attn-key-token"][data-index="5"]').evaluate(shown) == "mat"
    stroke = 4.0
    assert abs(ln["y"] - (q["y"] + q["height"] / 2)) <= stroke
    assert abs(ln["y"] + ln["height"] - (k["y"] + k["height"] / 2)) <= stroke
    assert q["x"] + q["width"] <= ln["x"] + stroke and ln["x"] + ln["width"] <= k["x"] + stroke
    # lines weaker than 0.02 are left out, so every drawn pair is a real weight
    drawn = page.locator("line[data-head='0']").evaluate_all(
        "(els) => els.map((e) => [Number(e.dataset.q), Number(e.dataset.k), Number(e.dataset.w)])"
    )
    w0 = att["attn"][0].numpy()
    assert {(a, b) for a, b, _ in drawn} == {tuple(p) for p in np.argwhere(w0 >= 0.02)}
    screenshot(page, "attention-heads")
    # hovering query 2 keeps only its lines
    page.locator('[data-testid="attn-query-token"][data-index="2"]').hover()
    page.wait_for_function(
        "() => [...document.querySelectorAll('line')].every((l) => l.dataset.q === '2')"
    )
    assert page.locator('line[data-q="2"][data-k="5"]').count() == 1
    assert page_log.errors == []


def test_heatmap_hover_shows_the_stored_value_and_labels_stay_on_screen(
    page: Any, attn_run: tuple[str, Any, Any, Any, Any], page_log: Any
) -> None:
    url, att, *_ = attn_run
    _open(page, url, "run=mha&layer=attn&head=1&mode=matrix")
    canvas = page.locator('[data-testid="attn-heatmap-canvas"][data-painted="8x8"]')
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box["width"] >= 200  # an 8×8 matrix is drawn large
    r, c = 2, 5
    page.mouse.move(
        box["x"] + (c + 0.5) * box["width"] / N, box["y"] + (r + 0.5) * box["height"] / N
    )
    page.wait_for_function(
        "() => document.querySelector('[data-testid=attn-value]').textContent.includes('→ key')"
    )
    text = page.locator('[data-testid="attn-value"]').inner_text()
    assert text.startswith("query 2 “cat” → key 5 “mat”: "), text
    assert float(text.rsplit(": ", 1)[1]) == pytest.approx(float(att["attn"][1, 2, 5]), rel=1e-3)
    # every token label is shown, beside its row / under its column, inside the viewport
    for axis in ("row", "col"):
        labels = page.locator(f'[data-testid="attn-{axis}-labels"] .attn-label')
        assert labels.all_inner_texts() == TOKENS
        for i, lab in enumerate(labels.all()):
            b = lab.bounding_box()
            assert b["x"] >= 0 and b["x"] + b["width"] <= 1280, (axis, i, b)
            center = (b["y"] + b["height"] / 2) if axis == "row" else (b["x"] + b["width"] / 2)
            cell = (box["y"] if axis == "row" else box["x"]) + (i + 0.5) * box["height"] / N
            assert abs(center - cell) <= 3, (axis, i, center, cell)
    screenshot(page, "attention-matrix")
    assert page_log.errors == []


def test_model_view_grid_opens_a_head(
    page: Any, attn_run: tuple[str, Any, Any, Any, Any], page_log: Any
) -> None:
    url, *_ = attn_run
    _open(page, url, "run=mha&mode=model")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=attn-model-tile] canvas[data-painted]').length === 2"
    )
    box = page.locator('[data-testid="attn-model-tile"] canvas').first.bounding_box()
    assert box["width"] >= 60 and box["height"] >= 60
    screenshot(page, "attention-model")
    page.locator('[data-testid="attn-model-tile"][data-head="1"]').click()
    page.locator('[data-testid="attn-heatmap-canvas"][data-painted]').wait_for()
    assert page.locator('[data-testid="attn-item"]').get_attribute("data-head") == "1"
    assert re.search(r"head=1", page.evaluate("() => location.hash"))
    assert page_log.errors == []


FRAME_AFTER = """
() => {
  const canvas = document.querySelector('[data-testid=attn-overview-canvas][data-painted]');
  const loaded = Number(document.querySelector('[data-testid=attn-item]').dataset.loadedAt);
  return { loaded, painted: Number(canvas.dataset.paintedAt), frame: Number(canvas.dataset.frameAt) };
}
"""


def test_4096_token_pooled_overview_draws_at_once_hovers_and_zooms(
    page: Any, attn_run: tuple[str, Any, Any, Any, Any], page_log: Any
) -> None:
    url, _, long_att, *_ = attn_run
    pooled = long_att.pooled["attn"]
    side = LONG // BLOCK
    _open(page, url, "run=long&layer=attn&head=0")
    overview = page.locator(f'[data-testid="attn-overview-canvas"][data-painted="{side}x{side}"]')
    overview.wait_for()
    page.locator('[data-testid="attn-overview-canvas"][data-frame-at]').wait_for()
    t = page.evaluate(FRAME_AFTER)
    # the first frame showing the overview came within 500 ms of its arrays arriving
    # (requestAnimationFrame stamps in the page: canvas ImageData, no DOM per cell)
    assert 0 <= t["frame"] - t["loaded"] < 500, t
    box = overview.bounding_box()
    assert box["width"] >= 500
    r, c = 3, 7
    page.mouse.move(
        box["x"] + (c + 0.5) * box["width"] / side, box["y"] + (r + 0.5) * box["height"] / side
    )
    page.wait_for_function(
        "() => document.querySelector('[data-testid=attn-value]').textContent.includes('max ')"
    )
    text = page.locator('[data-testid="attn-value"]').first.inner_text()
    assert text.startswith(f"queries {r * BLOCK}–{r * BLOCK + BLOCK - 1} × keys {c * BLOCK}–"), text
    got = dict(re.findall(r"(max|mean) ([0-9.e+-]+)", text))
    assert float(got["max"]) == pytest.approx(float(pooled.max[0, r, c]), rel=1e-3)
    assert float(got["mean"]) == pytest.approx(float(pooled.mean[0, r, c]), rel=1e-3)
    screenshot(page, "attention-pooled-4096")
    # click the block holding query q's strongest key: the zoom shows that stored weight
    q = 5 * BLOCK + 3
    key = int(pooled.top_keys[0, q, 0])
    br, bc = q // BLOCK, key // BLOCK
    page.mouse.click(
        box["x"] + (bc + 0.5) * box["width"] / side, box["y"] + (br + 0.5) * box["height"] / side
    )
    zoom = page.locator(f'[data-testid="attn-zoomed-canvas"][data-painted="{BLOCK}x{BLOCK}"]')
    zoom.wait_for()
    assert (
        page.locator('[data-testid="attn-zoom"]').get_attribute("data-rows")
        == f"{br * BLOCK}:{br * BLOCK + BLOCK}"
    )
    zoom.scroll_into_view_if_needed()
    zb = zoom.bounding_box()
    zr, zc = q - br * BLOCK, key - bc * BLOCK
    page.mouse.move(
        zb["x"] + (zc + 0.5) * zb["width"] / BLOCK, zb["y"] + (zr + 0.5) * zb["height"] / BLOCK
    )
    page.wait_for_function(
        f"() => document.querySelector('[data-testid=attn-zoomed] [data-testid=attn-value]').textContent.startsWith('query {q} ')"
    )
    text = page.locator('[data-testid="attn-zoomed"] [data-testid="attn-value"]').inner_text()
    assert float(text.rsplit(": ", 1)[1]) == pytest.approx(
        float(pooled.top_values[0, q, 0]), rel=1e-3
    )
    screenshot(page, "attention-pooled-zoom")
    assert page_log.errors == []


def test_vision_patch_map_over_the_input_image(
    page: Any, attn_run: tuple[str, Any, Any, Any, Any], page_log: Any
) -> None:
    from e2e_support import canvas_rgba

    from deepscope.render.colormap import lut

    url, _, _, vit_att, _ = attn_run
    _open(page, url, "run=vit")
    page.locator('[data-testid="attn-overlay"][data-painted="0"]').wait_for()
    rgba = canvas_rgba(page, '[data-testid="attn-overlay"]')
    assert rgba.shape == (2, 2, 4)
    cls_row = vit_att["attn"].mean(0)[0, 1:].numpy()  # [CLS] over the 2×2 patches
    best = int(cls_row.argmax())
    assert np.abs(rgba[best // 2, best % 2, :3].astype(int) - lut("viridis")[255]).max() <= 5
    img = page.locator('[data-testid="attn-image"] img')
    assert img.evaluate("(e) => e.complete && e.naturalWidth") == 32
    box = img.bounding_box()
    assert box["width"] >= 300 and box["height"] >= 300
    screenshot(page, "attention-image")
    assert page_log.errors == []


def test_generation_view_rows_are_the_generated_tokens(
    page: Any, attn_run: tuple[str, Any, Any, Any, Any], page_log: Any
) -> None:
    url, *_, gen_att = attn_run
    _open(page, url, "run=gen&head=0&mode=generation")
    rows = page.locator('[data-testid="attn-gen-row"]')
    rows.first.wait_for()
    # the generated tokens after the 5-token prompt, each over the prompt and what came before
    assert [int(r.get_attribute("data-token")) for r in rows.all()] == list(range(PROMPT, N))
    w = gen_att["attn"][0].numpy()
    for r in rows.all():
        t = int(r.get_attribute("data-token"))
        chips = r.locator(".attn-chip")
        assert chips.count() == t and r.locator(".attn-gen-token").inner_text() == TOKENS[t]
        got = [
            float(c.rsplit(": ", 1)[1])
            for c in chips.evaluate_all("(es) => es.map((e) => e.title)")
        ]
        np.testing.assert_allclose(got, w[t - 1, :t], rtol=1e-3, atol=1e-6)
    screenshot(page, "attention-generation")
    assert page_log.errors == []


def test_saved_html_draws_the_panel_offline(
    page: Any, attn_run: tuple[str, Any, Any, Any, Any], page_log: Any, tmp_path: Path
) -> None:
    _, att, *_ = attn_run
    path = att.save(tmp_path / "attention.html")  # the same panel, data inlined, no server
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    line = page.locator('line[data-q="2"][data-k="5"][data-head="0"]')
    line.wait_for()
    assert float(line.get_attribute("data-w")) == pytest.approx(float(att["attn"][0, 2, 5]))
    page.locator('[data-testid="attn-mode-matrix"]').click()
    page.locator('[data-testid="attn-heatmap-canvas"][data-painted="8x8"]').wait_for()
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    screenshot(page, "attention-saved-html")
    assert page_log.errors == []
