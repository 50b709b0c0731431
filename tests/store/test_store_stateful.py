"""A stateful model test of the store: any interleaving of log, flush, a concurrent read,
finish-and-rejoin and blob logging reads back exactly like an in-memory model."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import deepscope
import deepscope.store

TAGS = st.sampled_from(["loss", "acc", "lr/group0", "näme <x>"])
VALUES = st.floats(width=64) | st.sampled_from([math.nan, math.inf, -math.inf, -0.0])


def _key(v: float) -> tuple[str, float]:
    if math.isnan(v):
        return ("nan", 0.0)
    return ("num", math.copysign(1.0, v) if v == 0 else v)


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ds-stateful-"))
        self.run = deepscope.init(logdir=self.dir, name="m", flush_interval=30)
        self.model: dict[str, list[tuple[int, tuple[str, float]]]] = {}
        self.committed: dict[str, int] = {}
        self.blobs: list[bytes] = []
        self.step = 0

    @rule(values=st.dictionaries(TAGS, VALUES, min_size=1, max_size=3), explicit=st.booleans())
    def log(self, values: dict[str, float], explicit: bool) -> None:
        step = self.step + 7 if explicit else None
        self.run.log(values, step=step)
        self.step = self.run.step
        for tag, v in values.items():
            self.model.setdefault(tag, []).append((self.step, _key(v)))

    @rule(data=st.binary(max_size=64))
    def blob(self, data: bytes) -> None:
        self.run.log_blob("raw", "b", data, ext="bin")
        self.blobs.append(data)

    @rule()
    def flush(self) -> None:
        self.run.flush()
        self.committed = {t: len(v) for t, v in self.model.items()}

    @rule()
    def read_while_writing(self) -> None:
        # whatever a reader sees is a prefix of what was logged, and at least what was flushed
        r = deepscope.store.open(self.dir).run("m")
        for t in r.tags():
            if t.kind == "scalar":
                assert self.committed.get(t.tag, 0) <= t.count <= len(self.model[t.tag])

    @precondition(lambda self: self.model)
    @rule()
    def finish_and_rejoin(self) -> None:
        self.run.finish()
        self.committed = {t: len(v) for t, v in self.model.items()}
        self.run = deepscope.init(logdir=self.dir, name="m", flush_interval=30)

    @invariant()
    def flushed_points_are_readable(self) -> None:
        r = deepscope.store.open(self.dir).run("m")
        counts = {t.tag: t.count for t in r.tags() if t.kind == "scalar"}
        for tag, n in self.committed.items():
            assert counts.get(tag, 0) >= n

    def teardown(self) -> None:
        self.run.finish()
        r = deepscope.store.open(self.dir).run("m")
        for tag, expected in self.model.items():
            pts = r.scalars(tag, max_points=10**6)
            got = sorted((p.step, _key(p.value)) for p in pts)
            assert got == sorted(expected)
        stored = sorted(r.read_blob(b) for b in r.blobs("raw"))
        assert stored == sorted(self.blobs)
        assert r.info().status == "finished"
        shutil.rmtree(self.dir, ignore_errors=True)


TestStoreModel = StoreModel.TestCase
TestStoreModel.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
