"""The ``attention`` view kind: `run.log_attention` writes what `deepscope.attention`
captured, and `/api/views/attention` serves back the exact arrays (whole weights, the
block-pooled view with the top-k keys, the rollout), windows of them for zooming, and the
same items inline for `.show()` / `.save("x.html")`."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient
from torch import nn

import deepscope
from deepscope.analysis.attention import show
from deepscope.analysis.attention.pooling import Pooler
from deepscope.errors import DeepscopeError
from deepscope.server.app import Settings, create_app
from deepscope.views import envelope
from deepscope.views.kinds.attention import AttentionView
from deepscope.views.schema import validate


class _Encoder(nn.Module):
    def __init__(self, layers: int = 2, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for mha in self.blocks:
            x = x + mha(x, x, x, need_weights=False)[0]
        return x


def _view(logdir: Path, run: str) -> tuple[TestClient, dict[str, Any]]:
    client = TestClient(create_app(Settings(logdir=logdir)), base_url="http://127.0.0.1:6100")
    resp = client.get(f"/api/views/attention?run={run}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    validate(body, AttentionView)
    return client, body


def _with(url: str, query: dict[str, Any]) -> str:
    return url + "".join(f"&{k}={v}" for k, v in query.items())


def _array(client: TestClient, ref: dict[str, Any], **query: Any) -> np.ndarray:
    resp = client.get(_with(ref["url"], query))
    assert resp.status_code == 200, resp.text
    return envelope.decode(resp.content)


def test_weights_tokens_and_rollout_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _Encoder()
    x = torch.randn(1, 6, 8)
    tokens = ["<s>", "the", "cat", "sat", "down", "</s>"]
    att = deepscope.attention(model, x, tokens=tokens)
    with deepscope.init(logdir=tmp_path, name="enc") as run:
        run.log_attention("attn", att, step=3)
    client, body = _view(tmp_path, "enc")
    items = {i["meta"]["layer"]: i for i in body["items"]}
    assert list(items) == ["blocks.0", "blocks.1", "rollout"]
    for name in att.layers:
        item = items[name]
        meta = item["meta"]
        assert (meta["view"], meta["heads"], meta["nHeads"]) == ("layer", [0, 1], 2)
        assert meta["shape"] == [2, 6, 6] and meta["pooled"] is False and meta["path"] == "mha"
        assert item["step"] == 3 and item["tag"] == "attn"
        got = _array(client, item["parts"]["weights"])
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, att[name].numpy())
        assert item["parts"]["pooled_max"] is None and item["parts"]["image"] is None
        assert client.get(item["url"]).json() == {"tokens": tokens}
    roll = items["rollout"]
    assert roll["meta"]["view"] == "rollout" and roll["meta"]["shape"] == [1, 6, 6]
    got = _array(client, roll["parts"]["weights"])
    np.testing.assert_allclose(got[0], att.rollout().numpy(), rtol=1e-6)


def test_a_window_of_an_array_is_the_same_slice(tmp_path: Path) -> None:
    torch.manual_seed(1)
    att = deepscope.attention(_Encoder(layers=1, heads=4), torch.randn(1, 12, 8))
    with deepscope.init(logdir=tmp_path, name="w") as run:
        run.log_attention("attn", att, rollout=False)
    client, body = _view(tmp_path, "w")
    ref = body["items"][0]["parts"]["weights"]
    full = att["blocks.0"].numpy()
    got = _array(client, ref, index=2, rows="3:7", cols="5:12")
    np.testing.assert_array_equal(got, full[2, 3:7, 5:12])
    np.testing.assert_array_equal(_array(client, ref, rows="0:2"), full[:, 0:2])
    for bad in ({"rows": "7:3"}, {"cols": "0:13"}, {"index": 4}, {"rows": "a:b"}):
        assert client.get(_with(ref["url"], bad)).status_code == 400, bad


def test_pooled_layers_store_block_max_mean_and_top_k(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = _Encoder(layers=1, heads=2)
    x = torch.randn(1, 40, 8)
    att = deepscope.attention(model, x, block=8, top_k=3)
    with deepscope.init(logdir=tmp_path, name="long") as run:
        run.log_attention("attn", att)
    client, body = _view(tmp_path, "long")
    assert [i["meta"]["layer"] for i in body["items"]] == ["blocks.0"]  # no rollout of pooled
    item = body["items"][0]
    meta, parts = item["meta"], item["parts"]
    assert (meta["pooled"], meta["block"], meta["topK"], meta["shape"]) == (True, 8, 3, [2, 40, 40])
    assert parts["weights"] is None
    p = att.pooled["blocks.0"]
    np.testing.assert_array_equal(_array(client, parts["pooled_max"]), p.max.numpy())
    np.testing.assert_array_equal(_array(client, parts["pooled_mean"]), p.mean.numpy())
    np.testing.assert_array_equal(_array(client, parts["top_values"]), p.top_values.numpy())
    keys = _array(client, parts["top_keys"])
    assert keys.dtype == np.int32
    np.testing.assert_array_equal(keys, p.top_keys.numpy())
    # a zoomed block's rows of the top-k, never averaged (maxSize is ignored for positions)
    np.testing.assert_array_equal(
        _array(client, parts["top_keys"], index=1, rows="8:16", maxSize=2),
        p.top_keys[1, 8:16].numpy(),
    )


def test_weights_too_large_to_keep_whole_are_pooled_when_logged(tmp_path: Path) -> None:
    torch.manual_seed(3)
    att = deepscope.attention(_Encoder(layers=1), torch.randn(1, 30, 8))
    w = att["blocks.0"]
    with deepscope.init(logdir=tmp_path, name="auto") as run:
        run.log_attention("attn", att, rollout=False, max_values=w.numel() - 1)
    client, body = _view(tmp_path, "auto")
    meta, parts = body["items"][0]["meta"], body["items"][0]["parts"]
    assert meta["pooled"] is True and parts["weights"] is None
    pooler = Pooler(2, 30, 30, meta["block"], show.AUTO_TOP_K)
    pooler.feed_all(w)
    np.testing.assert_array_equal(_array(client, parts["pooled_max"]), pooler.max.numpy())
    top = w.topk(show.AUTO_TOP_K, dim=-1)
    np.testing.assert_array_equal(_array(client, parts["top_values"]), top.values.numpy())


def test_vision_items_carry_the_patch_grid_and_the_input_image(tmp_path: Path) -> None:
    torch.manual_seed(4)
    att = deepscope.attention(_Encoder(layers=1), torch.randn(1, 5, 8), patch_grid_size=(2, 2))
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[:8, :8] = (255, 0, 0)
    with deepscope.init(logdir=tmp_path, name="vit") as run:
        run.log_attention("attn", att, image=image)
    client, body = _view(tmp_path, "vit")
    item = body["items"][0]
    assert item["meta"]["patchGrid"] == [2, 2]
    assert client.get(item["url"]).json()["tokens"] == ["[CLS]", "0,0", "0,1", "1,0", "1,1"]
    png = client.get(item["parts"]["image"]["url"])
    from io import BytesIO

    from PIL import Image

    got = np.asarray(Image.open(BytesIO(png.content)).convert("RGB"))
    np.testing.assert_array_equal(got, image)


def test_generation_marks_the_prompt(tmp_path: Path) -> None:
    torch.manual_seed(5)
    att = deepscope.attention(_Encoder(layers=1), torch.randn(1, 5, 8))
    att.meta.update({"generation": True, "prompt_length": 3})
    with deepscope.init(logdir=tmp_path, name="gen") as run:
        run.log_attention("attn", att, rollout=False)
    _, body = _view(tmp_path, "gen")
    meta = body["items"][0]["meta"]
    assert meta["promptLength"] == 3 and meta["generation"] is True


def test_log_attention_refuses_other_results(tmp_path: Path) -> None:
    with deepscope.init(logdir=tmp_path, name="bad") as run, pytest.raises(DeepscopeError):
        run.log_attention("attn", {"weights": 1})


def test_snapshot_inlines_the_arrays_and_html_and_png_save(tmp_path: Path) -> None:
    torch.manual_seed(6)
    att = deepscope.attention(_Encoder(), torch.randn(1, 4, 8), tokens=list("abcd"))
    snap = show.snapshot(att)
    assert snap["panel"] == "attention"
    (view,) = [v for k, v in snap["answers"].items() if k.startswith('["views/attention"')]
    items = {i["meta"]["layer"]: i for i in view["items"]}
    ref = items["blocks.1"]["parts"]["weights"]
    url = snap["blobs"][show.embed.blob_key("attention", ref["id"])]
    prefix = "data:application/x-deepscope-array;base64,"
    assert url.startswith(prefix)
    got = envelope.decode(base64.b64decode(url[len(prefix) :]))
    np.testing.assert_array_equal(got, att["blocks.1"].numpy())
    doc = snap["blobs"][show.embed.blob_key("attention", items["blocks.1"]["id"])]
    assert json.loads(base64.b64decode(doc.split(",", 1)[1])) == {"tokens": list("abcd")}
    if not (show.embed.APP_DIR / "embed" / "report.js").is_file():
        pytest.skip("the frontend is not built")
    page = att.save(tmp_path / "a.html")
    text = page.read_text()
    assert 'id="deepscope-data"' in text and '"panel":"attention"' in text
    png = att.save(tmp_path / "a.png", layer=1, head=0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<iframe srcdoc=" in att._repr_html_()


def test_snapshots_keep_the_top_k_whole_and_average_big_weights() -> None:
    torch.manual_seed(7)
    long_att = deepscope.attention(_Encoder(layers=1), torch.randn(1, 600, 8), block=4, top_k=3)
    big_att = deepscope.attention(_Encoder(layers=1), torch.randn(1, 300, 8))
    pooled = long_att.pooled["blocks.0"]
    cases = [
        (long_att, "top_keys", pooled.top_keys.numpy()),
        (long_att, "top_values", pooled.top_values.numpy()),
        (big_att, "weights", None),
    ]
    for att, part, want in cases:
        snap = show.snapshot(att, rollout=False)
        (view,) = [v for k, v in snap["answers"].items() if k.startswith('["views/attention"')]
        ref = view["items"][0]["parts"][part]
        url = snap["blobs"][show.embed.blob_key("attention", ref["id"])]
        got = envelope.decode(base64.b64decode(url.split(",", 1)[1]))
        if want is not None:  # a query's top-k is never averaged with its neighbours'
            np.testing.assert_array_equal(got, want)
        else:  # 300 > 256 a side: block means of 2×2 cells
            w = att["blocks.0"].numpy()
            np.testing.assert_allclose(got, w.reshape(2, 150, 2, 150, 2).mean((2, 4)), rtol=1e-5)
