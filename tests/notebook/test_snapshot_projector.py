"""The Projector's sprite atlas and vectors in a snapshot (`deepscope.notebook.snapshot`):
inlined when within `Limits.max_sprite_bytes` / `max_vector_bytes` and the blob budget,
byte for byte what the server serves; left out, noted, and the listing's ``sprite`` nulled
(so the page asks for no thumbnails) when over."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

from deepscope.notebook.snapshot import (
    Limits,
    snapshot_logdir,
    sprite_blob_id,
    vectors_blob_id,
)
from deepscope.views import envelope
from deepscope.views.embed import blob_key, request_key

RUN = "emb"


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import deepscope

    root = tmp_path_factory.mktemp("snap-projector")
    rng = np.random.default_rng(3)
    run = deepscope.init(root, name=RUN)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    imgs = rng.integers(0, 256, (40, 8, 8, 3)).astype(np.uint8)
    run.log_embedding("feats", x, labels=[str(i % 2) for i in range(40)], images=imgs, step=3)
    run.finish()
    return root


def _decode(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


def test_sprite_and_vectors_are_inlined_as_served(logdir: Path) -> None:
    from PIL import Image

    rec = snapshot_logdir(logdir)
    listing = rec.snapshot["answers"][request_key("projector/embeddings", [("run", RUN)])]
    (row,) = listing["embeddings"]
    assert row["sprite"] is not None
    sprite = _decode(rec.snapshot["blobs"][blob_key(RUN, sprite_blob_id("feats", 3))])
    atlas = np.asarray(Image.open(io.BytesIO(sprite)).convert("RGB"))
    tw, th = row["sprite"]["tile"]
    assert atlas.shape[1] == row["sprite"]["cols"] * tw and (tw, th) == (8, 8)
    vectors = envelope.decode(
        _decode(rec.snapshot["blobs"][blob_key(RUN, vectors_blob_id("feats", 3))])
    )
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    assert vectors.shape == (40, 6)
    np.testing.assert_allclose(vectors.astype(np.float64), x, atol=1e-2 * x.std(axis=0).max())
    assert not any("thumbnails" in n or "vectors" in n for n in rec.notes), rec.notes


def test_over_the_bounds_they_are_left_out_and_noted(logdir: Path) -> None:
    rec = snapshot_logdir(logdir, limits=Limits(max_sprite_bytes=100, max_vector_bytes=100))
    listing = rec.snapshot["answers"][request_key("projector/embeddings", [("run", RUN)])]
    (row,) = listing["embeddings"]
    assert row["sprite"] is None  # the page asks for no thumbnails
    blobs = rec.snapshot["blobs"]
    assert blob_key(RUN, sprite_blob_id("feats", 3)) not in blobs
    assert blob_key(RUN, vectors_blob_id("feats", 3)) not in blobs
    assert any("its thumbnails" in n and "over 100" in n for n in rec.notes), rec.notes
    assert any("its vectors" in n and "over 100" in n for n in rec.notes), rec.notes
    # the PCA itself is still there
    where = [("run", RUN), ("step", "3"), ("tag", "feats"), ("dims", "2"), ("method", "pca")]
    assert request_key("projector/project", where) in rec.snapshot["answers"]


def test_the_blob_budget_bounds_them_too(logdir: Path) -> None:
    full = snapshot_logdir(logdir)
    base = (
        full.blob_bytes
        - len(_decode(full.snapshot["blobs"][blob_key(RUN, sprite_blob_id("feats", 3))]))
        - len(_decode(full.snapshot["blobs"][blob_key(RUN, vectors_blob_id("feats", 3))]))
    )
    rec = snapshot_logdir(logdir, limits=Limits(max_blob_bytes=base + 10))
    assert blob_key(RUN, sprite_blob_id("feats", 3)) not in rec.snapshot["blobs"]
    assert rec.blob_bytes <= base + 10
    assert any("blobs left out" in n for n in rec.notes), rec.notes
