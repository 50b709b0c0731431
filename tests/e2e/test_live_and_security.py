"""Live updates while the page is open, and stored-XSS / CSP checks (THREATS D5)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pytest
from e2e_support import XSS_PAYLOADS, PageLog, open_tab

pytestmark = pytest.mark.browser


def test_a_point_logged_while_the_page_is_open_appears_within_2s(
    page: Any, server_url: str, logdir: Path
) -> None:
    import deepscope

    with deepscope.init(logdir=logdir, name="live", flush_interval=0.2) as run:
        for step in range(5):
            run.log({"live_metric": math.cos(step)}, step=step)
        run.flush()
        open_tab(page, server_url, "scalars", ["live"])
        chart = '[data-testid="scalar-chart"][data-tag="live_metric"]'
        page.wait_for_selector(chart + '[data-points="5"]')
        run.log({"live_metric": 0.5}, step=5)
        run.log({"live_metric": float("nan")}, step=6)
        run.flush()
        page.wait_for_selector(chart + '[data-points="7"]', timeout=2000)
        note = page.locator(chart + ' [data-testid="nonfinite-note"]')
        assert "1 NaN" in (note.text_content() or "")


def all_tabs_with_every_run(page: Any, server_url: str) -> None:
    for tab in ("runs", "scalars", "histograms", "images", "events", "attribution", "graph"):
        page.click(f'[data-testid="tab-{tab}"]')
        page.wait_for_selector(f'[data-testid="panel-{tab}"]')
        page.wait_for_timeout(300)


def test_stored_xss_payloads_render_as_literal_text(
    page: Any, page_log: PageLog, server_url: str
) -> None:
    open_tab(page, server_url, "runs")
    xss_row = (
        page.locator('[data-testid="run-row"]')
        .filter(has=page.locator('[data-testid="run-config"]'))
        .filter(has_text="onerror")
    )
    xss_row.first.wait_for()
    keys = xss_row.first.locator('[data-testid="run-config"] th').all_text_contents()
    values = xss_row.first.locator('[data-testid="run-config"] td').all_text_contents()
    assert sorted(keys) == sorted(XSS_PAYLOADS) and sorted(values) == sorted(XSS_PAYLOADS)

    page.click('[data-testid="tab-scalars"]')
    for p in XSS_PAYLOADS:
        chart = page.locator('[data-testid="scalar-chart"]').filter(
            has=page.get_by_text(p, exact=True)
        )
        chart.wait_for()
        assert chart.get_attribute("data-tag") == p
    page.click('[data-testid="tab-events"]')
    page.wait_for_selector('[data-testid="event-row"][data-severity="info"]')
    messages = page.locator('[data-testid="event-row"][data-severity="info"] td.message')
    assert sorted(messages.all_text_contents()) == sorted(XSS_PAYLOADS)
    for p in XSS_PAYLOADS:
        page.locator("pre.text-body").filter(has_text=p).first.wait_for()

    all_tabs_with_every_run(page, server_url)
    assert page.evaluate("typeof window.__x") == "undefined"
    assert page_log.dialogs == []
    assert page.locator("svg[onload], img[onerror]").count() == 0
    hrefs = page.evaluate(
        "Array.from(document.querySelectorAll('[href]')).map(e => e.getAttribute('href'))"
    )
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")]


def test_csp_header_present_and_never_violated(
    page: Any, page_log: PageLog, server_url: str
) -> None:
    with urlopen(server_url + "/") as resp:  # noqa: S310 (loopback test server)
        csp = resp.headers["content-security-policy"]
        assert resp.headers["x-content-type-options"] == "nosniff"
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    open_tab(page, server_url, "scalars")
    page.wait_for_selector('[data-testid="scalar-chart"][data-points]')
    all_tabs_with_every_run(page, server_url)
    assert page.evaluate("window.__cspViolations") == []
    assert page_log.csp_messages() == []
    assert page_log.errors == []
    inline = page.evaluate(
        "Array.from(document.scripts).filter(s => !s.src && s.textContent.trim()).length"
    )
    assert inline == 0
