"""NaN, ±Inf, -0.0, extremes, subnormals, fp16/bf16 and 0-d tensors: logged, stored, read,
served as strict JSON, decoded, and still the same class of value (N1)."""

from __future__ import annotations

import itertools
import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepscope
import deepscope.store
from deepscope.store import jsonenc

PAYLOAD_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF4_0000_DEAD_BEEF))[0]


def _strict(s: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} literal in served JSON")

    return json.loads(s, parse_constant=refuse)


def _served(run: deepscope.Run, tag: str) -> list[float]:
    """What the dashboard would get: points → strict JSON text → parsed → decoded."""
    pts = deepscope.store.open(run.directory.parent).run(run.name).scalars(tag, max_points=10**6)
    text = jsonenc.dumps({"points": [[p.step, p.wall_time, p.value] for p in pts]})
    _strict(text)
    return [row[2] for row in jsonenc.loads(text)["points"]]


def _same(a: float, b: float) -> bool:
    if math.isnan(a):
        return math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[deepscope.Run]:
    r = deepscope.init(logdir=tmp_path_factory.mktemp("runs"), name="n1", flush_interval=0.05)
    yield r
    r.finish()


_counter = itertools.count()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.floats(width=64) | st.floats(width=32) | st.floats(width=16), min_size=1, max_size=30
    )
)
def test_any_float_round_trips_by_class(run: deepscope.Run, values: list[float]) -> None:
    tag = f"h{next(_counter)}"
    for i, v in enumerate(values):
        run.log({tag: v}, step=i)
    run.flush()
    got = _served(run, tag)
    assert len(got) == len(values)
    assert all(_same(a, b) for a, b in zip(values, got, strict=True))


SPECIALS = [
    math.nan, PAYLOAD_NAN, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -5e-324,
    2.2250738585072014e-308, 1e308, -1e308, 1.7976931348623157e308,
]  # fmt: skip


def test_special_python_floats(run: deepscope.Run) -> None:
    for i, v in enumerate(SPECIALS):
        run.log({"special": v}, step=i)
    run.flush()
    assert all(_same(a, b) for a, b in zip(SPECIALS, _served(run, "special"), strict=True))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_low_precision_and_0d_tensors(run: deepscope.Run, dtype: torch.dtype) -> None:
    raw = [math.nan, math.inf, -math.inf, -0.0, 70000.0, 1e-8, 1.0 / 3.0]
    tensors = [torch.tensor(v, dtype=dtype) for v in raw]  # 0-d; 70000 → inf in fp16
    tag = f"t_{dtype}"
    for i, t in enumerate(tensors):
        run.log({tag: t if i % 2 else t.reshape(1)}, step=i)
    run.flush()
    expected = [float(t.item()) for t in tensors]
    got = _served(run, tag)
    assert all(_same(a, b) for a, b in zip(expected, got, strict=True)), (expected, got)


def test_numpy_scalars_of_every_float_width(run: deepscope.Run) -> None:
    vals = [
        np.float16("nan"),
        np.float32("-inf"),
        np.float64(-0.0),
        np.float16(65504),
        np.longdouble(1.5),
    ]
    for i, v in enumerate(vals):
        run.log({"np": v}, step=i)
    run.flush()
    assert all(_same(float(a), b) for a, b in zip(vals, _served(run, "np"), strict=True))


def test_duplicate_and_out_of_order_steps_are_all_kept(run: deepscope.Run) -> None:
    for step, v in [(5, 1.0), (3, math.nan), (5, 2.0), (1, math.inf)]:
        run.log({"order": v}, step=step)
    run.flush()
    pts = deepscope.store.open(run.directory.parent).run(run.name).scalars("order")
    assert [p.step for p in pts] == [1, 3, 5, 5]
    assert [pts[0].value, pts[2].value, pts[3].value] == [math.inf, 1.0, 2.0]
    assert math.isnan(pts[1].value)
