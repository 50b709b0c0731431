"""Static checks of the frontend sources (no browser needed)."""

from __future__ import annotations

import re

from e2e_support import REPO

FORBIDDEN = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|dangerouslySetInnerHTML|document\.write|\beval\("
)


def test_frontend_sources_never_inject_html() -> None:
    sources = [
        p
        for p in (REPO / "frontend" / "src").rglob("*")
        if p.suffix in {".ts", ".tsx", ".js", ".jsx"}
    ]
    assert len(sources) > 10
    offenders = [
        f"{p.relative_to(REPO)}:{i}"
        for p in sources
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert offenders == []
