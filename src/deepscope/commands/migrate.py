"""`deepscope migrate SOURCE DEST`: copy runs from one store into another (a log directory of
SQLite runs into a PostgreSQL database, typically), through the store contract only.

Each run is read with the source's `RunReader` and written with the destination's
`RunWriter` (`deepscope.store.open` / `deepscope.store.open_writer`): scalars, histograms,
blobs (images, text, graphs, ...) and events keep their steps and wall times; the config
goes along, and so does its creation time. Resumable: rows are copied per (kind, tag) in the reader's order (step, then
insertion), and the writer commits batches in the order it was given them, all-or-nothing,
so what a stopped migration left in the destination is a prefix of every tag; a second
run counts what is there and copies only the rest. A run whose counts already match is
skipped without opening a writer. At the end every run's counts (scalars, histograms,
events, blobs, graphs) are read back from the destination and compared.

Example:
    >>> from deepscope.commands.migrate import migrate_runs
    >>> report = migrate_runs("runs", "postgresql://me@db/deepscope")  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import click

__all__ = ["Counts", "MigrationReport", "RunResult", "migrate", "migrate_runs"]

SCALAR_CHUNK = 20_000  # points read per request (a window of steps), bounds the memory held
EVENT_LIMIT = 2**62  # events are read in one request (they are few: diagnostics)
COUNT_KEYS = ("scalars", "histograms", "events", "blobs", "graphs")

Progress = Callable[[int], None]


@dataclass
class Counts:
    """Rows of one run, by what the verification compares."""

    scalars: int = 0
    histograms: int = 0
    events: int = 0
    blobs: int = 0  # every blob kind except graphs (images, text, views, ...)
    graphs: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in COUNT_KEYS}

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


@dataclass
class RunResult:
    """What happened to one run: `action` is ``copied``, ``resumed``, ``skipped`` (already
    complete), ``running`` (left for later) or ``failed`` (`error` says why)."""

    name: str
    action: str
    source: Counts = field(default_factory=Counts)
    dest: Counts = field(default_factory=Counts)
    copied: int = 0
    error: str | None = None

    @property
    def verified(self) -> bool:
        return self.error is None and self.source.as_dict() == self.dest.as_dict()


@dataclass
class MigrationReport:
    """The result of `migrate_runs`: one `RunResult` per run of the source."""

    runs: list[RunResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every run copied (or already there) with equal counts; runs still running and
        left for later do not count against it."""
        return all(r.verified for r in self.runs if r.action != "running")


# ---- counting -------------------------------------------------------------------------------
def _tag_counts(reader: Any) -> dict[tuple[str, str], int]:
    return {(t.kind, t.tag): int(t.count) for t in reader.tags()}


def count_run(reader: Any) -> Counts:
    """A run's `Counts`, from its tags (scalars, histograms, blobs, graphs) and its events."""
    c = Counts()
    for (kind, _tag), n in _tag_counts(reader).items():
        if kind == "scalar":
            c.scalars += n
        elif kind == "histogram":
            c.histograms += n
        elif kind == "graph":
            c.graphs += n
        else:
            c.blobs += n
    c.events = len(reader.events(limit=EVENT_LIMIT))
    return c


# ---- copying --------------------------------------------------------------------------------
def _scalar_windows(reader: Any, tag: str, count: int, first: int, last: int) -> Iterator[Any]:
    """Every point of `tag` in (step, insertion) order, read a window of steps at a time. A
    read asks for up to `count` points, so the reader never downsamples it; the windows
    only bound the memory held (they are sized for ~SCALAR_CHUNK points at even spacing
    and shrink when a window holds more)."""
    if count <= SCALAR_CHUNK:
        yield from reader.scalars(tag, max_points=count + 1)
        return
    span = max(1, last - first + 1)
    width = max(1, span * SCALAR_CHUNK // count)
    lo = first
    while lo <= last:
        hi = min(last, lo + width - 1)
        points = reader.scalars(tag, max_points=count + 1, start_step=lo, end_step=hi)
        yield from points
        if len(points) > 2 * SCALAR_CHUNK and width > 1:
            width = max(1, width // 2)
        elif len(points) < SCALAR_CHUNK // 2:
            width *= 2
        lo = hi + 1


def _histogram_data(p: Any) -> Any:
    import numpy as np

    from deepscope._histdata import HistogramData

    return HistogramData(
        edges=np.asarray(p.edges, dtype=np.float64),
        counts=np.asarray(p.counts, dtype=np.int64),
        count=p.count,
        n_nan=p.n_nan,
        n_posinf=p.n_posinf,
        n_neginf=p.n_neginf,
        min=p.min,
        max=p.max,
        sum=p.sum,
        sum_sq=p.sum_sq,
    )


def _skip(items: Iterator[Any], n: int) -> Iterator[Any]:
    return itertools.islice(items, n, None)


def copy_run(reader: Any, writer: Any, have: dict[tuple[str, str], int], have_events: int,
             progress: Progress) -> int:  # fmt: skip
    """Put every row of `reader` that the destination lacks (`have`: its counts per (kind,
    tag); `have_events`) into `writer`; the number of rows put."""
    from deepscope.store import jsonenc
    from deepscope.store.protocol import BlobRecord, EventRecord, HistogramRecord, ScalarRecord

    put = 0
    for t in reader.tags():
        skip = have.get((t.kind, t.tag), 0)
        if skip >= t.count:
            continue
        done = 0
        if t.kind == "scalar":
            points = _scalar_windows(reader, t.tag, t.count, t.first_step, t.last_step)
            for p in _skip(points, skip):
                writer.put(ScalarRecord("s", p.step, p.wall_time, [(t.tag, float(p.value))]))
                done += 1
                if done % 5000 == 0:
                    progress(5000)
            progress(done % 5000)
        elif t.kind == "histogram":
            for h in _skip(iter(reader.histograms(t.tag, max_points=t.count + 1)), skip):
                writer.put(HistogramRecord("h", t.tag, h.step, h.wall_time, _histogram_data(h)))
                done += 1
            progress(done)
        else:
            for b in _skip(iter(reader.blobs(t.kind, t.tag)), skip):
                data = reader.read_blob(b)
                meta = jsonenc.dumps(dict(b.meta))
                record = BlobRecord("b", b.kind, b.tag, b.step, b.wall_time, b.path, data, meta)
                writer.put(record, len(data))
                done += 1
                progress(1)
        put += done
    events = reader.events(limit=EVENT_LIMIT)
    for e in events[have_events:]:
        writer.put(EventRecord("e", e.step, e.wall_time, e.severity, e.kind, e.layer, e.message))
        put += 1
    progress(max(0, len(events) - have_events))
    return put


def _safe(text: str, dest: str, source: str) -> str:
    """`text` without a password of either store URL."""
    from deepscope.store.postgres.url import is_postgres_url, scrub

    for url in (dest, source):
        if is_postgres_url(url):
            text = scrub(text, url)
    return text


def shown(target: str | os.PathLike[str]) -> str:
    """A store target as it may be printed: a URL's password masked."""
    from deepscope.store.postgres.url import is_postgres_url, mask

    return mask(str(target)) if is_postgres_url(target) else str(target)


def migrate_runs(
    source: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    filter: str = "",
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    flush_interval: float = 1.0,
) -> MigrationReport:
    """Copy every run of `source` whose name contains `filter` into `dest` (see the module
    doc); `on_total` is told the number of rows to copy, `progress` each row copied."""
    import deepscope.store
    from deepscope.errors import DeepscopeError, NotFoundError
    from deepscope.store import jsonenc
    from deepscope.store.postgres.url import is_postgres_url
    from deepscope.store.session import WriterOptions

    src_store = deepscope.store.open(source)
    if not is_postgres_url(dest):
        os.makedirs(dest, exist_ok=True)  # a new log directory
    dst_store = deepscope.store.open(dest)
    step = progress or (lambda n: None)
    report = MigrationReport()
    plan: list[tuple[str, Any, Counts, Counts, dict[tuple[str, str], int], Any]] = []
    for name in src_store.run_names(filter=filter):
        result = RunResult(name, "copied")
        report.runs.append(result)
        try:
            reader = src_store.run(name)
            info = reader.info()
            result.source = count_run(reader)
            if info.status in ("running", "unreadable"):
                result.action = info.status if info.status == "running" else "failed"
                result.error = info.error if info.status == "unreadable" else None
                continue
            try:
                target = dst_store.run(name)
                have = _tag_counts(target)
                result.dest = count_run(target)
            except NotFoundError:
                have = {}
            if result.dest.as_dict() == result.source.as_dict():
                result.action = "skipped"
                continue
            if result.dest.total:
                result.action = "resumed"
            plan.append((name, reader, result.source, result.dest, have, info))
        except DeepscopeError as exc:
            result.action, result.error = "failed", _safe(str(exc), str(dest), str(source))
    if on_total is not None:
        on_total(sum(src.total - dst.total for _, _, src, dst, _, _ in plan))
    results = {r.name: r for r in report.runs}
    for name, reader, _src, dst, have, info in plan:
        result = results[name]
        # the run keeps its creation time (listings sort it as in the source)
        options = WriterOptions(strict=True, flush_interval=flush_interval, created=info.created)
        try:
            writer = deepscope.store.open_writer(
                dest, name, config_json=jsonenc.dumps(info.config), options=options
            )
            state = "interrupted" if info.status == "interrupted" else "finished"
            try:
                result.copied = copy_run(reader, writer, have, dst.events, step)
                writer.flush()
            except BaseException:
                writer.close("interrupted")
                raise
            writer.close(state)
            writer.check()
            result.dest = count_run(dst_store.run(name))
        except DeepscopeError as exc:
            result.action, result.error = "failed", _safe(str(exc), str(dest), str(source))
    return report


# ---- command --------------------------------------------------------------------------------
@click.command("migrate")
@click.argument("source")
@click.argument("dest")
@click.option("--filter", "filter_", default="", help="Only runs whose name contains this text.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print failures only.")
def migrate(source: str, dest: str, filter_: str, quiet: bool) -> None:
    """Copy the runs of SOURCE into DEST (a log directory into PostgreSQL, typically).

    \b
    deepscope migrate runs/ postgresql://me@db.example/deepscope

    SOURCE and DEST are log directories or postgresql:// URLs (the [postgres] extra; a
    password may come from PGPASSWORD or ~/.pgpass instead of the URL, and is never
    printed). Every run keeps its name, creation time, config, steps and wall times:
    scalars, histograms, images, text, graphs and every other blob, and diagnostic events.

    Resumable and idempotent: run it again after an interruption (or after more runs
    finished) and it copies only what DEST lacks; runs already complete are skipped.
    Runs still being written are left out (migrate again when they end). At the end the
    counts of every run are read back from DEST and compared; the command exits with
    status 1 if any run differs or failed.
    """
    from tqdm import tqdm

    bar = tqdm(total=0, unit=" rows", desc="migrate", disable=quiet, unit_scale=True)

    def total(n: int) -> None:
        bar.total = n
        bar.refresh()

    try:
        report = migrate_runs(source, dest, filter=filter_, progress=bar.update, on_total=total)
    except Exception as exc:
        bar.close()
        from deepscope.errors import DeepscopeError

        if isinstance(exc, (DeepscopeError, OSError)):
            raise click.ClickException(_safe(str(exc), dest, source)) from None
        raise
    bar.close()
    _print(report, source, dest, quiet)
    if not report.ok:
        raise SystemExit(1)


def _print(report: MigrationReport, source: str, dest: str, quiet: bool) -> None:
    header = f"{'run':40} {'result':9} " + " ".join(f"{k:>10}" for k in COUNT_KEYS)
    if not quiet:
        click.echo(f"{shown(source)} -> {shown(dest)}")
        click.echo(header)
    for r in report.runs:
        bad = r.action != "running" and not r.verified
        if quiet and not bad:
            continue
        cells = []
        for k in COUNT_KEYS:
            s, d = r.source.as_dict()[k], r.dest.as_dict()[k]
            cells.append(f"{d:>10}" if s == d else f"{f'{d}/{s}':>10}")
        label = "MISMATCH" if bad and r.error is None else r.action
        click.echo(f"{r.name[:40]:40} {label:9} " + " ".join(cells))
        if r.error:
            click.echo(f"  error: {r.error}", err=True)
    done = sum(1 for r in report.runs if r.verified)
    waiting = sum(1 for r in report.runs if r.action == "running")
    failed = len(report.runs) - done - waiting
    summary = f"{done} run(s) verified, {failed} failed or differ"
    if waiting:
        summary += f", {waiting} still running (left for a later migrate)"
    click.echo(summary + ("" if report.ok else "; run the same command again to resume"))
