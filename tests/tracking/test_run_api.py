"""deepscope.init / Run: what log* accepts and refuses, steps, names, config, lifecycle,
blobs, and the cost of run.log in the training thread."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import deepscope
import deepscope.store
from deepscope.errors import StoreError
from deepscope.store.writer import DeviceValue


def _reader(run: deepscope.Run):  # type: ignore[no-untyped-def]
    return deepscope.store.open(run.directory.parent).run(run.name)


def test_log_accepts_numbers_numpy_and_tensors_of_any_dtype(tmp_path: Path) -> None:
    values = {
        "int": 3,
        "bool": True,
        "float": 0.25,
        "np32": np.float32(0.5),
        "np16": np.float16(1.5),
        "np_int": np.int64(7),
        "np_0d": np.array(2.5),
        "np_1": np.array([4.5]),
        "t0d": torch.tensor(0.125),
        "t1": torch.tensor([8.0]),
        "t_fp16": torch.tensor(1.0 / 3.0, dtype=torch.float16),
        "t_bf16": torch.tensor(1.0 / 3.0, dtype=torch.bfloat16),
        "t_int": torch.tensor(9, dtype=torch.int32),
        "t_grad": torch.tensor(2.0, requires_grad=True) * 2,
    }
    with deepscope.init(logdir=tmp_path) as run:
        run.log(values)
    r = _reader(run)
    got = {t.tag: r.scalars(t.tag)[0].value for t in r.tags()}
    assert got["int"] == 3.0 and got["bool"] == 1.0 and got["np_0d"] == 2.5 and got["np_1"] == 4.5
    assert got["t_fp16"] == float(torch.tensor(1.0 / 3.0, dtype=torch.float16).item())
    assert got["t_bf16"] == float(torch.tensor(1.0 / 3.0, dtype=torch.bfloat16).item())
    assert got["t_grad"] == 4.0 and got["t_int"] == 9.0 and got["np16"] == 1.5


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ("0.5", TypeError, "number"),
        (None, TypeError, "number"),
        (torch.zeros(10), ValueError, "1-element"),
        (np.zeros((2, 2)), ValueError, "exactly one"),
        (1 + 2j, TypeError, "complex"),
        (torch.tensor(1 + 2j), TypeError, "complex"),
        (np.array(["a"]), TypeError, "numeric"),
        ([1.0], TypeError, "number"),
        (10**400, ValueError, "too large"),
    ],
)
def test_bad_values_raise_in_the_callers_thread(
    tmp_path: Path, value: object, error: type[Exception], match: str
) -> None:
    with deepscope.init(logdir=tmp_path) as run:
        with pytest.raises(error, match=match):
            run.log({"x": 1.0, "bad": value})
        run.log({"ok": 1.0})
    assert [t.tag for t in _reader(run).tags()] == ["ok"]  # the bad call stored nothing


@pytest.mark.parametrize(
    ("tags", "error"),
    [({1: 1.0}, TypeError), ({"": 1.0}, ValueError), ({"x" * 600: 1.0}, ValueError)],
)
def test_bad_tags_raise(tmp_path: Path, tags: dict, error: type[Exception]) -> None:  # type: ignore[type-arg]
    with deepscope.init(logdir=tmp_path) as run:
        with pytest.raises(error):
            run.log(tags)
        with pytest.raises(TypeError):
            run.log([("x", 1.0)])  # type: ignore[arg-type]


def test_steps_count_log_calls_unless_given(tmp_path: Path) -> None:
    with deepscope.init(logdir=tmp_path) as run:
        run.log({"a": 1.0})
        run.log({"a": 2.0})
        assert run.step == 1
        run.log({"a": 3.0}, step=10)
        assert run.step == 10
        run.log_histogram("h", [1.0])  # takes the current step
        run.log({"a": 4.0})
        run.log({"a": 5.0}, step=np.int64(20))
        run.log({"a": 6.0}, step=torch.tensor(30))
        with pytest.raises(TypeError):
            run.log({"a": 1.0}, step=1.5)  # type: ignore[arg-type]
    r = _reader(run)
    assert [p.step for p in r.scalars("a")] == [0, 1, 10, 11, 20, 30]
    assert r.histograms("h")[0].step == 10


def test_flush_makes_everything_before_it_visible(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path, flush_interval=60.0)
    for i in range(1000):
        run.log({"a": float(i), "b": float(-i)})
    run.flush()
    r = _reader(run)
    assert [t.count for t in r.tags()] == [1000, 1000]
    run.finish()


def test_points_are_committed_within_a_flush_interval_without_flush(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path, flush_interval=0.1)
    run.log({"a": 1.0})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not _reader(run).tags():
        time.sleep(0.05)
    assert _reader(run).tags()[0].count == 1
    run.finish()


def test_names_are_sanitised_distinct_and_joinable(tmp_path: Path) -> None:
    names = {deepscope.init(logdir=tmp_path).name for _ in range(20)}
    assert len(names) == 20
    run = deepscope.init(logdir=tmp_path, name="my run/../x")
    assert run.name == "my-run-..-x" and run.directory == tmp_path / run.name
    run.log({"a": 1.0}, step=0)
    run.finish()
    with deepscope.init(logdir=tmp_path, name="my run/../x") as again:  # joins the same run
        again.log({"a": 2.0}, step=1)
    assert [p.value for p in _reader(again).scalars("a")] == [1.0, 2.0]
    with pytest.raises(ValueError):
        deepscope.init(logdir=tmp_path, name="///")


def test_config_is_stored_as_strict_json(tmp_path: Path) -> None:
    with deepscope.init(
        logdir=tmp_path, config={"lr": np.float32(0.5), "eps": math.inf, "layers": (1, 2)}
    ) as run:
        pass
    cfg = _reader(run).info().config
    assert cfg == {"lr": 0.5, "eps": math.inf, "layers": [1, 2]}
    assert run.config == cfg
    with pytest.raises(TypeError, match="JSON"):
        deepscope.init(logdir=tmp_path, config={"f": object()})
    with pytest.raises(TypeError, match="dict"):
        deepscope.init(logdir=tmp_path, config=[1, 2])


def test_logging_after_finish_is_a_clear_error_and_finish_is_idempotent(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path)
    run.finish()
    run.finish()
    run.flush()
    with pytest.raises(StoreError, match="finished"):
        run.log({"a": 1.0})


def test_images_text_blobs_events_and_graphs(tmp_path: Path) -> None:
    with deepscope.init(logdir=tmp_path) as run:
        run.log({"a": 1.0}, step=5)
        p1 = run.log_image("img", np.zeros((4, 6, 3), dtype=np.uint8), dataformats="HWC")
        p2 = run.log_image("img", np.zeros((4, 6, 3), dtype=np.uint8), step=6, dataformats="HWC")
        assert p1 == p2 and p1.startswith("blobs/") and p1.endswith(".png")  # content-addressed
        run.log_text("notes", "ünïcode <b>")
        path = run.log_blob("overlay", "watch", b'{"a": 1}', ext="json", meta={"k": [1, 2]})
        run.log_event("dead_units", "40% dead", severity="warning", layer="fc1")
        from deepscope.graph.ir import Graph, Node

        run.log_graph(Graph(nodes=[Node(id="n0", op="linear", label="fc", namespace="fc")]))
        with pytest.raises(ValueError):
            run.log_image("img", np.zeros((2, 2, 2, 2, 2)))
        with pytest.raises(ValueError):
            run.log_blob("scalar", "x", b"", ext="json")
        with pytest.raises(ValueError):
            run.log_blob("ok", "x", b"", ext="../png")
        with pytest.raises(ValueError):
            run.log_event("k", "m", severity="fatal")
        with pytest.raises(TypeError):
            run.log_text("t", b"bytes")  # type: ignore[arg-type]
    r = _reader(run)
    imgs = r.blobs("image", "img")
    assert [(b.step, b.meta["width"], b.meta["height"]) for b in imgs] == [(5, 6, 4), (6, 6, 4)]
    assert r.read_blob(imgs[0])[:4] == b"\x89PNG"
    assert (run.directory / p1).is_file()
    assert r.read_blob(r.blobs("text")[0]).decode() == "ünïcode <b>"
    (ov,) = r.blobs("overlay")
    assert ov.path == path and ov.meta == {"k": [1, 2]}
    assert r.events()[0].layer == "fc1"
    (g,) = r.blobs("graph", "model")
    assert b'"schemaVersion"' in r.read_blob(g) and g.meta["nodes"] == 1
    assert not list(run.directory.rglob("*.tmp"))


def test_a_cpu_tensor_changed_in_place_after_logging_keeps_the_logged_value(tmp_path: Path) -> None:
    acc = torch.tensor(1.0)
    with deepscope.init(logdir=tmp_path) as run:
        run.log({"acc": acc})
        acc.zero_()
    assert _reader(run).scalars("acc")[0].value == 1.0


def test_deferred_tensor_values_are_read_in_bulk_by_device_and_dtype() -> None:
    from deepscope.store.writer import read_device_values

    tensors = [
        torch.tensor(1.5, dtype=torch.bfloat16),
        torch.tensor([float("nan")], dtype=torch.float16),
        torch.tensor(7, dtype=torch.int64),
        torch.tensor(True),
        torch.tensor(-0.0, dtype=torch.float64),
        torch.tensor([2.25]),
    ]
    got = read_device_values([DeviceValue(t) for t in tensors])
    assert got[0] == 1.5 and math.isnan(got[1]) and got[2:4] == [7.0, 1.0]
    assert math.copysign(1.0, got[4]) == -1.0 and got[5] == 2.25


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tensors_are_read_in_the_writer_without_a_sync(
    tmp_path: Path,
) -> None:  # pragma: no cover
    acc = torch.tensor(2.0, device="cuda", dtype=torch.bfloat16)
    scale = torch.nn.Parameter(torch.ones(1, device="cuda"))
    side = torch.cuda.Stream()
    with deepscope.init(logdir=tmp_path, flush_interval=60) as run:
        run.log({"acc": acc, "x": torch.ones(1, device="cuda") * 3, "scale": scale})
        item = run._writer._q[-1]
        assert all(type(v) is DeviceValue for _, v in item[3])
        acc.zero_()  # the value logged was cloned on its stream
        with torch.no_grad():
            scale.mul_(5)  # as an optimizer step would
        with torch.cuda.stream(side):  # a value made on a side stream
            big = torch.randn(4096, 4096, device="cuda")
            run.log({"side": (big @ big).abs().sum() * 0 + 4.0})
    r = _reader(run)
    assert r.scalars("acc")[0].value == 2.0 and r.scalars("x")[0].value == 3.0
    assert r.scalars("scale")[0].value == 1.0 and r.scalars("side")[0].value == 4.0


def test_run_log_from_the_training_thread_keeps_every_call(tmp_path: Path) -> None:
    # Its cost per call (a few microseconds) is measured in benchmarks/store_bench.py,
    # not here: tests do not time things.
    run = deepscope.init(logdir=tmp_path, flush_interval=0.5)
    n = 20_000
    for _ in range(5):
        for _ in range(n):
            run.log({"loss": 0.5})
        run.flush()
    run.finish()
    assert _reader(run).tags()[0].count == 5 * n


def test_the_api_docstring_states_the_durability_contract() -> None:
    import deepscope.tracking.run as mod

    doc = " ".join((mod.__doc__ or "").split())
    for phrase in [
        "after kill -9, an OOM kill or a segfault",
        "everything logged before the last returned `flush()` is present",
        "at most one flush interval is lost",
        "batches are all-or-nothing",
        "the run shows as ``interrupted``",
        'with the default ``durability="normal"`` the last batches may roll back',
        '``durability="full"`` makes every returned `flush()` survive',
    ]:
        assert phrase in doc, phrase
