"""The run list in Chromium with the ranks of a distributed job (`deepscope.init(group=...)`):
one group row with its ranks under it, in rank order; its checkbox selects every rank, and the
Scalars panel then overlays the ranks' curves, one colour each. The store (a log directory,
and a PostgreSQL database) and the server are this module's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    STATIC_INDEX,
    ServerThread,
    canvas_rgba,
    count_color,
    css_rgb,
    free_port,
    open_tab,
)
from e2e_support import screenshot as save_screenshot

pytestmark = pytest.mark.browser

WORLD = 4
STEPS = 40
GROUP = "job-7"
RANKS = [f"{GROUP}.rank-{r}" for r in range(WORLD)]
CHART = '[data-testid="scalar-chart"][data-tag="loss"]'


class StoreServer(ServerThread):
    """`ServerThread` serving a database store (``Settings.store_url``)."""

    def __init__(self, url: str, cache: Path) -> None:
        import uvicorn

        from deepscope.server.app import create_app
        from deepscope.server.settings import Settings

        self.port = free_port()
        settings = Settings(logdir=cache, store_url=url, bound_host="127.0.0.1", poll_interval=0.25)
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)


def _write_runs(where: dict[str, Any]) -> None:
    import deepscope

    with deepscope.init(name="a-solo-run", **where) as run:
        for step in range(STEPS):
            run.log({"loss": 3.0 - step * 0.01}, step=step)
    for rank in reversed(range(WORLD)):  # written out of order: the list still shows 0, 1, 2, 3
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RANK", str(rank))
            mp.setenv("WORLD_SIZE", str(WORLD))
            mp.setenv("LOCAL_RANK", str(rank))
            with deepscope.init(group=GROUP, config={"lr": 0.1}, **where) as run:
                for step in range(STEPS):  # well-separated curves: rank r sits near r
                    run.log({"loss": rank + 0.5 * (step % 10) / 10}, step=step)
    with deepscope.init(name="zz-other-run", **where) as run:
        run.log({"loss": 1.0}, step=0)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def group_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    root: Path = tmp_path_factory.mktemp("group-logdir")
    if request.param == "sqlite":
        _write_runs({"logdir": root})
        with ServerThread(root) as server:
            yield server.url
        return
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.fresh_database()
    try:
        _write_runs({"store": url})
        with StoreServer(url, root) as server:
            yield server.url
    finally:
        cluster.drop_database(url)


def _rows(page: Any) -> list[list[str | None]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=panel-runs] tbody > tr')]
             .filter((r) => r.dataset.testid === 'run-row' || r.dataset.testid === 'run-group')
             .map((r) => [r.dataset.testid, r.dataset.run ?? r.dataset.group ?? null,
                          r.dataset.rank ?? r.dataset.ranks ?? null])"""
    )


def _checked(page: Any) -> dict[str, bool]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-testid=run-row]')]
             .map((r) => [r.dataset.run, r.querySelector('[data-testid=run-toggle]').checked]))"""
    )


def test_ranks_are_listed_under_their_group_and_selected_together(
    page: Any, group_url: str, page_log: Any
) -> None:
    open_tab(page, group_url, "runs", [])
    page.wait_for_selector('[data-testid="run-group"]')
    assert _rows(page) == [
        ["run-row", "a-solo-run", None],
        ["run-group", GROUP, str(WORLD)],
        *[["run-row", name, str(r)] for r, name in enumerate(RANKS)],
        ["run-row", "zz-other-run", None],
    ]
    group = page.locator(f'[data-testid="run-group"][data-group="{GROUP}"]')
    assert group.locator('[data-testid="group-name"]').text_content() == GROUP
    assert f"{WORLD} ranks" in (group.text_content() or "")
    assert f"{WORLD} finished" in (group.text_content() or "")
    # The rank rows do not repeat the recorded place in their config; the user's config stays.
    rank0 = page.locator(f'[data-testid="run-row"][data-run="{RANKS[0]}"]')
    assert rank0.locator('[data-testid="run-config"] th').all_text_contents() == ["lr"]
    assert "rank 0" in (rank0.text_content() or "")
    assert not any(_checked(page).values())

    group.locator('[data-testid="group-toggle"]').check()
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('[data-testid=run-toggle]')]"
        ".filter((c) => c.checked).length === n",
        arg=WORLD,
    )
    assert _checked(page) == {
        "a-solo-run": False,
        **dict.fromkeys(RANKS, True),
        "zz-other-run": False,
    }
    assert page.evaluate("location.hash") == "#/runs?runs=" + ",".join(RANKS)
    save_screenshot(page, "runs-group")

    # One rank off: the group box reads "some" (indeterminate); clicking it selects all again.
    page.locator(
        f'[data-testid="run-row"][data-run="{RANKS[2]}"] [data-testid="run-toggle"]'
    ).uncheck()
    toggle = group.locator('[data-testid="group-toggle"]')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=group-toggle]').indeterminate === true"
    )
    assert toggle.is_checked() is False
    toggle.click()
    page.wait_for_function(
        "() => { const t = document.querySelector('[data-testid=group-toggle]');"
        " return t.checked && !t.indeterminate; }"
    )
    assert [n for n, on in _checked(page).items() if on] == RANKS
    toggle.click()  # all on -> all off, other runs untouched
    page.wait_for_function("() => location.hash === '#/runs?runs='")

    # The filter matches the group's name and keeps its ranks under it.
    page.fill('[data-testid="run-filter"]', GROUP)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=run-row]').length === 4")
    assert [r[1] for r in _rows(page)] == [GROUP, *RANKS]
    assert page_log.errors == []


def test_selecting_the_group_overlays_its_ranks_in_scalars(
    page: Any, group_url: str, page_log: Any
) -> None:
    open_tab(page, group_url, "runs", [])
    page.locator('[data-testid="group-toggle"]').check()
    page.wait_for_function("(h) => location.hash === h", arg="#/runs?runs=" + ",".join(RANKS))
    page.click('[data-testid="tab-scalars"]')
    page.wait_for_function(
        """([sel, n]) => { const el = document.querySelector(sel);
             return el !== null && Number(el.dataset.points) === n; }""",
        arg=[CHART, WORLD * STEPS],
    )
    page.wait_for_timeout(100)
    legend = page.evaluate(
        """(sel) => [...document.querySelectorAll(sel + ' .u-legend .u-series')].slice(1)
             .map((r) => [r.querySelector('.u-label').textContent,
                          getComputedStyle(r.querySelector('.u-marker')).borderColor])""",
        CHART,
    )
    assert [label for label, _ in legend] == RANKS
    colors = [css_rgb(c) for _, c in legend]
    assert len(set(colors)) == WORLD, colors
    pixels = canvas_rgba(page, CHART + " canvas")
    h = pixels.shape[0]
    rows_of: dict[tuple[int, int, int], float] = {}
    for rgb in colors:
        diff = abs(pixels[..., :3].astype(int) - list(rgb)).max(axis=-1)
        ys = ((diff <= 40) & (pixels[..., 3] > 150)).nonzero()[0]
        assert count_color(pixels, rgb) > 50, f"no line pixels of colour {rgb}"
        rows_of[rgb] = float(ys.mean()) / h
    # Four separate curves, rank 0 lowest on the chart (largest y), rank 3 highest.
    heights = [rows_of[c] for c in colors]
    assert heights == sorted(heights, reverse=True), heights
    save_screenshot(page, "scalars-group-ranks")
    assert page_log.errors == []
