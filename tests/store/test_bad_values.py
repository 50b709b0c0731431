"""THREATS.md S11: one bad value (a lone-surrogate tag or event kind, a step beyond int64)
never costs the valid points around it, is refused in the caller's thread with a clear
error, and the spill file can hold anything the queue can hold."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest

import deepscope
import deepscope.store
from deepscope.store import jsonenc
from deepscope.store.spill import append_spill
from deepscope.store.writer import RunWriter, WriterOptions

BAD_TAG = "loss\udcff"  # what os.fsdecode makes of a non-UTF-8 byte
BAD_KIND = "nan\ud800"


def test_S11_bad_values_are_refused_in_the_caller_and_every_valid_point_is_stored(
    tmp_path: Path,
) -> None:
    run = deepscope.init(logdir=tmp_path, name="r", flush_interval=60.0)  # one batch
    refused = 0
    for i in range(110):
        run.log({"loss": float(i)}, step=i)
        bad: list[Any] = [
            lambda: run.log({BAD_TAG: 1.0}, step=7),
            lambda: run.log({"ok": 1.0, BAD_TAG: 2.0}, step=7),
            lambda: run.log({"loss": 1.0}, step=2**63),
            lambda: run.log({"loss": 1.0}, step=-(2**63) - 1),
            lambda: run.log_event(BAD_KIND, "message", step=7),
            lambda: run.log_histogram(BAD_TAG, [1.0, 2.0], step=7),
            lambda: run.log_histogram("h", [1.0, 2.0], step=2**64),
            lambda: run.log_text(BAD_TAG, "text", step=7),
            lambda: run.log_event("nan", "message", step=2**63),
        ]
        for call in bad if i % 10 == 0 else []:
            with pytest.raises(ValueError, match="surrogate|64 bits"):
                call()
            refused += 1
    # free text is kept, its lone surrogate escaped
    run.log_event("nan", "bad file name: x\udcff.pt", layer="fc\udcff", step=5)
    run.flush()
    assert refused == 11 * 9 and run.dropped == 0 and run.spill_path is None
    reader = deepscope.store.open(tmp_path).run("r")
    points = reader.scalars("loss", max_points=1000)
    assert [p.step for p in points] == list(range(110))
    assert [p.value for p in points] == [float(i) for i in range(110)]
    assert {t.tag for t in reader.tags()} == {"loss"}
    (event,) = reader.events()
    assert event.message == "bad file name: x\\udcff.pt" and event.layer == "fc\\udcff"
    run.finish()


def test_S11_automatic_step_cannot_pass_int64(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path, name="r")
    run.log({"loss": 1.0}, step=2**63 - 1)
    with pytest.raises(ValueError, match="64 bits"):
        run.log({"loss": 2.0})  # the next automatic step would be 2**63
    run.finish()
    points = deepscope.store.open(tmp_path).run("r").scalars("loss")
    assert [(p.step, p.value) for p in points] == [(2**63 - 1, 1.0)]


def test_S11_writer_stores_every_valid_point_of_a_batch_holding_bad_items(
    tmp_path: Path,
) -> None:
    """The backstop behind the caller's checks (RunWriter is also fed by tb_import)."""
    w = RunWriter(tmp_path / "r", "r", options=WriterOptions(flush_interval=60.0))
    for i in range(110):
        w.put(("s", i, 1.0, (("loss", float(i)),)))
        if i == 50:
            w.put(("s", 2**63, 1.0, (("loss", 1.0),)))
            w.put(("s", i, 1.0, (("acc", 0.5), (BAD_TAG, 2.0))))  # one good, one bad pair
            w.put(("e", i, 1.0, "warning", BAD_KIND, None, "m"))
            w.put(("b", "text", "t", 2**64, 1.0, "blobs/aa/x.txt", b"hi", "{}"))
    with pytest.warns(UserWarning, match="store cannot keep"):  # shown in the caller
        w.flush()
    assert w.dropped == 4
    w.close()
    reader = deepscope.store.open(tmp_path).run("r")
    assert [p.step for p in reader.scalars("loss", max_points=1000)] == list(range(110))
    assert [(p.step, p.value) for p in reader.scalars("acc")] == [(50, 0.5)]
    assert reader.events() == [] and reader.blobs("text") == []
    records = [jsonenc.loads(line) for line in Path(str(w.spill_path)).read_text().splitlines()]
    assert {(r["type"], r.get("tag"), r["step"]) for r in records} == {
        ("scalar", "loss", 2**63),
        ("scalar", BAD_TAG, 50),
        ("event", None, 50),
        ("blob", "t", 2**64),
    }
    assert [r["kind"] for r in records if r["type"] == "event"] == [BAD_KIND]


def test_S11_spill_round_trips_surrogates_and_huge_ints(tmp_path: Path) -> None:
    items: list[Any] = [
        ("s", 2**70, 1.5, ((BAD_TAG, math.nan), ("ok", -0.0))),
        ("e", -(2**80), 2.0, "error", BAD_KIND, "l\udc80", "msg\ud83d"),
        ("b", "text", "t\udcff", 3, 4.0, "blobs/ab/c.txt", b"\x00\xff", '{"k":"v\\udcff"}'),
    ]
    path = append_spill([tmp_path / "missing-dir" / "x.jsonl", tmp_path / "s.jsonl"], items)
    assert path == tmp_path / "s.jsonl"
    raw = path.read_bytes()
    raw.decode("utf-8")  # valid UTF-8 whatever the strings held
    got = [json.loads(line) for line in raw.splitlines()]
    assert got[0]["tag"] == BAD_TAG and got[0]["step"] == 2**70
    assert got[0]["value"] == {"nonfinite": "nan"}
    assert math.copysign(1.0, jsonenc.loads(raw.splitlines()[1])["value"]) == -1.0
    assert got[2] == {
        "type": "event", "step": -(2**80), "wallTime": 2.0, "severity": "error",
        "kind": BAD_KIND, "layer": "l\udc80", "message": "msg\ud83d",
    }  # fmt: skip
    assert got[3]["tag"] == "t\udcff" and got[3]["meta"] == {"k": "v\udcff"}
    assert base64.b64decode(got[3]["data"]) == b"\x00\xff"


def test_S11_json_with_lone_surrogates_is_valid_utf8_and_reads_back() -> None:
    value = {"a\udcff": ["x\ud800", 2**65, "é"], "n": math.inf}
    text = jsonenc.dumps(value)
    text.encode("utf-8")
    assert jsonenc.loads(text) == value
    assert jsonenc.dumps({"é": 1}) == '{"é":1}'  # valid text keeps ensure_ascii=False
