"""Threat IDs cited in the code name rows of docs/threats.md, a file in this repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "deepscope"
DOC = ROOT / "docs" / "threats.md"

_CITE = re.compile(r"threats(?:\.md)?\b[^\n]{0,40}", re.IGNORECASE)
_ID = re.compile(r"\b([MSDN])(\d{1,2})(?:-\1?(\d{1,2}))?\b")


def _cited() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for cite in _CITE.finditer(text):
            for letter, lo, hi in _ID.findall(cite.group(0)):
                for n in range(int(lo), int(hi or lo) + 1):
                    out.setdefault(f"{letter}{n}", set()).add(str(path.relative_to(ROOT)))
    return out


def test_no_module_cites_a_threats_file_that_is_not_in_the_repo() -> None:
    bad = [
        str(p.relative_to(ROOT))
        for p in SRC.rglob("*.py")
        if "THREATS.md" in p.read_text(encoding="utf-8")
    ]
    assert bad == [], f"cite docs/threats.md instead of THREATS.md in {bad}"


def test_every_cited_threat_id_is_a_row_of_docs_threats_md() -> None:
    rows = set(re.findall(r"^\| ([MSDN]\d{1,2}) \|", DOC.read_text(encoding="utf-8"), re.M))
    cited = _cited()
    assert {"M1", "S10", "D4", "N2"} <= set(cited), sorted(cited)  # the scan finds citations
    missing = {k: sorted(v) for k, v in cited.items() if k not in rows}
    assert missing == {}, missing
