"""The wire schemas are the single source: the checked-in TypeScript is generated from
them, every route of the app has one, and the package imports without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from starlette.routing import Route

from deepscope.server.app import Settings, create_app
from deepscope.views import registry, wire
from deepscope.views.tsgen import generate

REPO = Path(__file__).resolve().parents[2]
TYPES_TS = REPO / "frontend" / "src" / "wire" / "types.ts"


def test_checked_in_typescript_is_generated_from_the_schemas() -> None:
    assert TYPES_TS.read_text(encoding="utf-8") == generate(), (
        "frontend/src/wire/types.ts is stale: run "
        "`python -m deepscope.views.tsgen > frontend/src/wire/types.ts`"
    )


def test_every_api_route_has_a_wire_schema(tmp_path: Path) -> None:
    app = create_app(Settings(logdir=tmp_path))
    paths = [r.path for r in app.routes if isinstance(r, Route) and r.path.startswith("/api")]
    assert len(paths) >= 16
    known = set(wire.json_routes()) | set(wire.BINARY_ROUTES) | set(wire.STREAM_ROUTES)
    for path in paths:
        if path == "/api/views/{kind}":
            for kind in registry.kinds():
                assert f"/api/views/{kind.name}" in known
            continue
        assert path in known, f"{path} has no wire schema in deepscope/views/wire.py"


def test_every_schema_is_in_the_generated_typescript() -> None:
    ts = generate()
    for schema in wire.json_routes().values():
        assert f"export interface {schema.__name__} {{" in ts
    names = " | ".join(f"'{k.name}'" for k in registry.kinds())
    assert "'attribution'" in names and f"export type ViewKindName = {names};" in ts


def test_views_import_and_generate_without_torch() -> None:
    code = (
        "import sys\nsys.modules['torch'] = None\n"
        "from deepscope.views import registry, envelope\n"
        "from deepscope.views.tsgen import generate\n"
        "import numpy as np\n"
        "assert registry.get('attribution').panel == 'attribution'\n"
        "assert 'AttributionView' in generate()\n"
        "assert envelope.decode(envelope.encode(np.ones((2, 2)))).sum() == 4\n"
        "assert sys.modules['torch'] is None\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
