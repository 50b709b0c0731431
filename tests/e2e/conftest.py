"""Fixtures for the browser tests: a real store, a real server on loopback, real Chromium.

`logdir` is written with the public logging API (`deepscope.init`); `server_url` serves it
with `create_app` under uvicorn on a free loopback port; `page` is a fresh headless Chromium
page that records console messages, page errors and dialogs into `page_log`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    CSP_PROBE,
    STATIC_INDEX,
    PageLog,
    ServerThread,
    write_logdir,
)

SLOW_FRAMES = """
(() => {
  const raf = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (cb) => raf((t) => setTimeout(() => cb(t), DELAY));
})();
"""


@pytest.fixture(scope="session")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e-logdir")
    write_logdir(root)
    return root


@pytest.fixture(scope="session")
def server_url(logdir: Path) -> Iterator[str]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    with ServerThread(logdir) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser: Any, page_log: PageLog) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.add_init_script(CSP_PROBE)
    p.on("console", lambda m: page_log.console.append(f"{m.type}: {m.text}"))
    p.on("pageerror", lambda e: page_log.errors.append(str(e)))

    def on_dialog(d: Any) -> None:
        page_log.dialogs.append(d.message)
        d.dismiss()

    p.on("dialog", on_dialog)
    # DEEPSCOPE_E2E_SLOW=N runs the page's scripts N times slower (Chromium's CPU throttle)
    # while the test runs at full speed: a read that does not wait for what it reads shows.
    slow = float(os.environ.get("DEEPSCOPE_E2E_SLOW", "1") or 1)
    if slow > 1:
        context.new_cdp_session(p).send("Emulation.setCPUThrottlingRate", {"rate": slow})
        # and every animation frame comes late, so work deferred to a frame (Preact runs
        # effects after one) lands well after the action that caused it
        p.add_init_script(SLOW_FRAMES.replace("DELAY", str(int(10 * slow))))
    p.set_default_timeout(10_000 * max(1.0, slow))
    try:
        yield p
    finally:
        context.close()
