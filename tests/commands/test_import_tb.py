"""`deepscope import-tb`: event files written by real TensorBoard writers come back equal."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_file_loader import (  # noqa: E402
    LegacyEventFileLoader,
)
from tensorboard.plugins.histogram.summary_v2 import histogram_pb  # noqa: E402
from tensorboard.plugins.scalar.summary_v2 import scalar_pb  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

import deepscope.store  # noqa: E402
from deepscope.commands.import_tb import import_tb  # noqa: E402
from deepscope.store.tb_import import (  # noqa: E402
    find_runs,
    histogram_from_proto,
    png_meta,
)

SCALARS = [0.5, -1.25, math.nan, math.inf, -math.inf, 3.0e38, 1e-30, 0.0, 7.0]


def _events(tb_dir: Path) -> list[Any]:
    return [
        e
        for f in sorted(tb_dir.glob("events.out.tfevents.*"))
        for e in LegacyEventFileLoader(str(f)).Load()
    ]


@pytest.fixture(scope="module")
def tb_logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tb")
    torch.manual_seed(0)
    with SummaryWriter(str(root / "train")) as w:
        for step, v in enumerate(SCALARS):
            w.add_scalar("loss", v, step * 10)
        w.add_scalar("lr", 0.1, 0)
        for step in range(3):
            w.add_histogram("weights", torch.randn(500) * (step + 1), step, bins=12)
        w.add_histogram("tf_bins", torch.randn(300), 0)  # TensorBoard's exponential buckets
        w.add_image("digit", torch.rand(3, 6, 5), 4)
        w.add_image("grey", torch.rand(1, 4, 4), 5)
        w.add_text("note", "hello <b>world</b>", 2)
        # TF2-style tensor summaries (the plugin metadata only on a tag's first value)
        fw = w._get_file_writer()
        fw.add_summary(scalar_pb("acc", 0.75), 3)
        fw.add_summary(scalar_pb("acc", 0.5), 4)
        fw.add_summary(histogram_pb("acts", np.arange(10.0), buckets=5), 1)
    with SummaryWriter(str(root / "nested" / "eval")) as w:
        w.add_scalar("loss", 2.5, 1)
    return root


def _import(tb: Path, out: Path) -> str:
    result = CliRunner().invoke(import_tb, [str(tb), str(out)])
    assert result.exit_code == 0, result.output
    return result.output


def test_runs_are_found_per_directory_and_named_after_their_path(tb_logdir: Path) -> None:
    assert sorted(find_runs(tb_logdir)) == ["nested-eval", "train"]


def test_scalars_keep_value_class_step_and_wall_time(tb_logdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    output = _import(tb_logdir, out)
    assert "train: " in output and "nested-eval: 1 scalars" in output
    store = deepscope.store.open(out)
    assert sorted(r.name for r in store.runs()) == ["nested-eval", "train"]
    run = store.run("train")
    assert run.info().status == "finished"
    points = run.scalars("loss", max_points=1000)
    want_walls = [
        e.wall_time
        for e in _events(tb_logdir / "train")
        if e.HasField("summary") and e.summary.value[0].tag == "loss"
    ]
    assert [p.step for p in points] == [i * 10 for i in range(len(SCALARS))]
    assert [p.wall_time for p in points] == pytest.approx(want_walls, abs=1e-6)
    for p, v in zip(points, SCALARS, strict=True):
        expected = float(np.float32(v))  # TensorBoard keeps scalars as float32
        if math.isnan(expected):
            assert math.isnan(p.value)
        else:
            assert p.value == expected
    assert [p.value for p in run.scalars("acc")] == [0.75, 0.5]
    assert [(p.step, p.value) for p in store.run("nested-eval").scalars("loss")] == [(1, 2.5)]


def test_histograms_keep_counts_range_and_moments(tb_logdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _import(tb_logdir, out)
    run = deepscope.store.open(out).run("train")
    protos = {
        e.step: e.summary.value[0].histo
        for e in _events(tb_logdir / "train")
        if e.HasField("summary") and e.summary.value[0].tag == "weights"
    }
    hists = run.histograms("weights")
    assert [h.step for h in hists] == [0, 1, 2]
    for h in hists:
        proto = protos[h.step]
        assert h.count == 500 == int(proto.num)
        assert (h.min, h.max) == (proto.min, proto.max)
        assert h.sum == proto.sum and h.sum_sq == proto.sum_squares
        assert h.counts == [int(c) for c in proto.bucket]
        assert h.edges[1:-1] == list(proto.bucket_limit[:-1])
        assert (h.edges[0], h.edges[-1]) == (proto.min, proto.max)
        assert all(a <= b for a, b in zip(h.edges[:-1], h.edges[1:], strict=True))  # monotonic
        assert (h.n_nan, h.n_posinf, h.n_neginf) == (0, 0, 0)
    tf_bins = run.histograms("tf_bins")[0]
    assert tf_bins.count == 300 and tf_bins.edges[0] == tf_bins.min
    assert all(a <= b for a, b in zip(tf_bins.edges[:-1], tf_bins.edges[1:], strict=True))
    acts = run.histograms("acts")[0]  # TF2 [left, right, count] buckets
    assert acts.count == 10 and acts.counts == [2, 2, 2, 2, 2]
    assert acts.edges == pytest.approx([0.0, 1.8, 3.6, 5.4, 7.2, 9.0])


def test_images_and_text_come_back_byte_for_byte(tb_logdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _import(tb_logdir, out)
    run = deepscope.store.open(out).run("train")
    pngs = {
        e.summary.value[0].tag: bytes(e.summary.value[0].image.encoded_image_string)
        for e in _events(tb_logdir / "train")
        if e.HasField("summary") and e.summary.value[0].HasField("image")
    }
    images = {b.tag: b for b in run.blobs("image")}
    assert set(images) == {"digit", "grey"}
    assert images["digit"].step == 4 and images["digit"].meta == {
        "width": 5,
        "height": 6,
        "channels": 3,
    }
    for tag, blob in images.items():
        data = run.blob_path(blob).read_bytes()
        assert data == pngs[tag]
        img = Image.open(io.BytesIO(data))
        assert img.size == (blob.meta["width"], blob.meta["height"])
        assert len(img.getbands()) == blob.meta["channels"]
    (text,) = run.blobs("text")
    assert text.tag == "note" and text.step == 2
    assert run.blob_path(text).read_text("utf-8") == "hello <b>world</b>"


def test_png_meta_rejects_non_png_and_bombs() -> None:
    assert png_meta(b"GIF89a" + b"\0" * 40) is None
    buf = io.BytesIO()
    Image.new("RGBA", (3, 2)).save(buf, format="PNG")
    assert png_meta(buf.getvalue()) == {"width": 3, "height": 2, "channels": 4}
    header = bytearray(buf.getvalue())
    header[16:24] = (100_000).to_bytes(4, "big") * 2  # claims 10^10 pixels
    assert png_meta(bytes(header)) is None


def test_tensorflow_dbl_max_outer_limits_are_clipped_to_the_data_range() -> None:
    from tensorboard.compat.proto.summary_pb2 import HistogramProto

    proto = HistogramProto(
        min=-2.0,
        max=3.0,
        num=4,
        sum=1.0,
        sum_squares=14.0,
        bucket_limit=[-1.0, 0.0, 1.7976931348623157e308],
        bucket=[1.0, 1.0, 2.0],
    )
    h = histogram_from_proto(proto)
    assert list(h.edges) == [-2.0, -1.0, 0.0, 3.0]
    assert list(h.counts) == [1, 1, 2] and h.count == 4
    empty = histogram_from_proto(HistogramProto(min=1.7e308, max=-1.7e308))
    assert empty.count == 0 and empty.min is None


def test_a_directory_without_event_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(import_tb, [str(tmp_path / "empty"), str(tmp_path / "ds")])
    assert result.exit_code != 0
    assert "no TensorBoard event files" in result.output


def test_importing_twice_into_a_new_logdir_is_repeatable(tb_logdir: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _import(tb_logdir, a)
    _import(tb_logdir, b)
    ra, rb = deepscope.store.open(a).run("train"), deepscope.store.open(b).run("train")
    assert [t.tag for t in ra.tags()] == [t.tag for t in rb.tags()]
    assert [h.counts for h in ra.histograms("weights")] == [
        h.counts for h in rb.histograms("weights")
    ]
