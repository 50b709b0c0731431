"""``run.log_embedding``: chunked float16/float32 envelopes, columns, the sprite atlas, and
refusals at log time (nothing is stored for a bad call)."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepscope
import deepscope.store
from deepscope.errors import DeepscopeError
from deepscope.tracking import _log_embedding
from deepscope.views import envelope
from deepscope.views.kinds import embedding


def _read(logdir: Path, kind: str) -> list[tuple[dict, bytes]]:
    reader = deepscope.store.open(logdir).run("r")
    return [(b.meta, reader.read_blob(b)) for b in reader.blobs(kind)]


def test_matrix_is_stored_in_chunks_as_float16_when_lossless_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding, "CHUNK_BYTES", 10 * 8 * 2)  # 10 rows of 8 float16 per chunk
    x = torch.linspace(-1, 1, 25 * 8).reshape(25, 8)
    x[7, 2] = float("nan")
    with deepscope.init(logdir=tmp_path, name="r") as run:
        run.log_embedding("emb", x, step=3)
    ((meta, doc),) = _read(tmp_path, "embedding")
    assert meta["n"] == 25 and meta["dim"] == 8 and meta["dtype"] == "float16"
    assert meta["chunks"] == 3 and meta["nonfinite"] == 1 and meta["sprite"] is None
    assert json.loads(doc) == {"columns": []}
    chunks = sorted(_read(tmp_path, "embedding_vectors"), key=lambda c: c[0]["chunk"])
    assert [c[0]["rows"] for c in chunks] == [10, 10, 5]
    back = np.concatenate([envelope.decode(c[1]) for c in chunks])
    assert back.dtype == np.float16
    np.testing.assert_allclose(back.astype(np.float32), x.numpy(), atol=1e-3)
    assert np.isnan(back[7, 2])  # NaN rows are kept in storage


def test_float32_when_float16_would_lose_too_much(tmp_path: Path) -> None:
    x = np.full((4, 3), 1000.0, np.float32) + np.arange(12, dtype=np.float32).reshape(4, 3) * 1e-3
    big = np.array([[1e6, 1.0]], np.float32)
    with deepscope.init(logdir=tmp_path, name="r") as run:
        run.log_embedding("fine", x)
        run.log_embedding("big", big)
    dtypes = {json.dumps(m["n"]): m["dtype"] for m, _ in _read(tmp_path, "embedding")}
    assert dtypes == {"4": "float32", "1": "float32"}


def test_columns_are_typed(tmp_path: Path) -> None:
    n = 30
    meta_cols = {
        "split": ["train"] * 20 + ["test"] * 10,
        "loss": np.linspace(0, 1, n).tolist()[:-1] + [float("nan")],
        "caption": [f"image number {i}" for i in range(n)],
        "epoch": torch.tensor([1] * 15 + [2] * 15),
    }
    with deepscope.init(logdir=tmp_path, name="r") as run:
        run.log_embedding(
            "emb", np.zeros((n, 2)), labels=[i % 3 for i in range(n)], metadata=meta_cols
        )
    ((meta, doc),) = _read(tmp_path, "embedding")
    cols = {c["name"]: c for c in json.loads(doc)["columns"]}
    assert [c["type"] for c in meta["columns"]] == [
        "category",
        "category",
        "number",
        "text",
        "category",
    ]
    assert cols["label"]["categories"] == ["0", "1", "2"] and cols["label"]["codes"][:4] == [
        0,
        1,
        2,
        0,
    ]
    assert cols["split"]["categories"] == ["test", "train"] and cols["split"]["codes"][0] == 1
    assert cols["loss"]["values"][-1] is None and cols["loss"]["values"][1] == pytest.approx(1 / 29)
    assert cols["caption"]["values"][3] == "image number 3"
    assert cols["epoch"]["categories"] == ["1", "2"]


def test_wrong_lengths_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    with deepscope.init(logdir=tmp_path, name="r") as run:
        with pytest.raises(DeepscopeError, match="column 'label' has 9 values for 10 points"):
            run.log_embedding("emb", np.zeros((10, 4)), labels=list(range(9)))
        with pytest.raises(DeepscopeError, match="column 'split' has 11 values for 10 points"):
            run.log_embedding("emb", np.zeros((10, 4)), metadata={"split": ["a"] * 11})
        with pytest.raises(DeepscopeError, match="images has 3 images for 10 points"):
            run.log_embedding("emb", np.zeros((10, 4)), images=np.zeros((3, 8, 8)))
        with pytest.raises(DeepscopeError, match="N x D"):
            run.log_embedding("emb", np.zeros((10, 4, 2)))
    assert _read(tmp_path, "embedding") == [] and _read(tmp_path, "embedding_vectors") == []


def test_sprite_atlas_places_tile_i_at_row_i_div_cols(tmp_path: Path) -> None:
    n = 10
    images = np.zeros((n, 3, 64, 48), np.uint8)  # larger than 32: scaled to 32 x 24
    for i in range(n):
        images[i, 0] = i * 20
        images[i, 2] = 255 - i * 20
    with deepscope.init(logdir=tmp_path, name="r") as run:
        run.log_embedding("emb", np.zeros((n, 2)), images=images)
    ((meta, _),) = _read(tmp_path, "embedding")
    ((smeta, png),) = _read(tmp_path, "embedding_sprite")
    sprite = meta["sprite"]
    assert sprite == smeta == {"tile": [24, 32], "cols": 4, "count": 10}
    atlas = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert atlas.shape == (3 * 32, 4 * 24, 3)
    for i in range(n):
        r, c = divmod(i, sprite["cols"])
        centre = atlas[r * 32 + 16, c * 24 + 12]
        assert tuple(centre) == (i * 20, 0, 255 - i * 20)


def test_a_full_atlas_shrinks_tiles_then_says_how_many_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_log_embedding, "MAX_ATLAS", 64)
    images = np.random.default_rng(0).random((40, 28, 28)).astype(np.float32)
    _png, layout = _log_embedding.sprite_atlas(images, 40)
    assert layout["tile"][0] < 28 and layout["count"] == 40  # shrunk until all fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _png, layout = _log_embedding.sprite_atlas(np.zeros((200, 28, 28)), 200)
    assert layout["tile"] == [8, 8] and layout["count"] == 64
    assert "holds 64 of 200 thumbnails" in str(caught[0].message)
