"""graph/, store/, views/ and server/ import without torch (DESIGN §1): the dashboard reads a store
on a machine that has no torch. Each import runs in a fresh interpreter with torch blocked."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MODULES = [
    "deepscope.graph",
    "deepscope.graph.ir",
    "deepscope.store",
    "deepscope.store.protocol",
    "deepscope.store.jsonenc",
    "deepscope.store.reader",
    "deepscope.store.writer",
    "deepscope.store.downsample",
    "deepscope.store.schema",
    "deepscope.store.rows",
    "deepscope.store.device",
    "deepscope.store.spill",
    "deepscope.store.process",
    "deepscope.store.blobs",
    "deepscope.views",
    "deepscope.views.schema",
    "deepscope.views.envelope",
    "deepscope.views.registry",
    "deepscope.views.wire",
    "deepscope.views.tsgen",
    "deepscope.views.kinds.attribution",
]
for optional in ["deepscope.graph.serialize", "deepscope.server", "deepscope.server.app"]:
    try:
        if importlib.util.find_spec(optional) is not None:
            MODULES.append(optional)
    except ModuleNotFoundError:
        pass


def _blocker(modules: tuple[str, ...]) -> str:
    """Python lines after which any import of `modules` fails (as if not installed)."""
    return "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)


def _run_blocked(
    code: str, blocked: tuple[str, ...] = ("torch",)
) -> subprocess.CompletedProcess[str]:
    prelude = _blocker(blocked)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_with_torch_blocked(module: str) -> None:
    out = _run_blocked(f"import {module}\nassert sys.modules['torch'] is None\n")
    assert out.returncode == 0, out.stderr


def test_a_store_written_and_read_without_torch(tmp_path: Path) -> None:
    out = _run_blocked(
        f"""
        import deepscope, deepscope.store
        with deepscope.init(logdir={str(tmp_path)!r}, name="r") as run:
            run.log({{"loss": 0.5}})
            run.log_histogram("w", [1.0, 2.0, float("nan")])
        r = deepscope.store.open({str(tmp_path)!r}).run("r")
        assert r.scalars("loss")[0].value == 0.5 and r.histograms("w")[0].n_nan == 1
        assert sys.modules["torch"] is None
        """
    )
    assert out.returncode == 0, out.stderr


# ---- PyTorch is optional (`deepscope[torch]`): viewing works without it, and every entry
# that needs it says what to install.

HINT = "pip install 'deepscope[torch]'"
CLI = "import sys\nsys.modules['torch'] = None\nfrom deepscope.cli import main\nmain()\n"


def _onnx_model(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "fc.weight")
    b = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "fc.bias")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "fc.weight"], ["h"], name="fc/MatMul"),
            helper.make_node("Add", ["h", "fc.bias"], ["y"], name="fc/Add"),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


@contextlib.contextmanager
def _serving(
    args: list[str], blocked: tuple[str, ...] = ("torch",)
) -> Iterator[Callable[[str], bytes]]:
    """Start `deepscope ARGS --port 0` with `blocked` modules unimportable; yield a GET of a
    route on the URL it prints (the body bytes; an HTTP error raises)."""
    cli = _blocker(blocked) + "from deepscope.cli import main\nmain()\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", cli, *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""  # the URL, or EOF on failure
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert match, line + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")

        def get(route: str) -> bytes:
            with urllib.request.urlopen(match.group(1) + route, timeout=30) as resp:
                assert resp.status == 200
                body: bytes = resp.read()
            assert proc.poll() is None, "the server is still up"
            return body

        yield get
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _serve_and_get(args: list[str], route: str) -> dict[str, Any]:
    """Start `deepscope ARGS --port 0` with torch blocked, GET `route` from the URL it prints."""
    with _serving(args) as get:
        data: dict[str, Any] = json.loads(get(route))
    return data


def test_serve_runs_without_torch(tmp_path: Path) -> None:
    made = _run_blocked(
        f"""
        import deepscope
        with deepscope.init(logdir={str(tmp_path)!r}, name="r1") as run:
            run.log({{"loss": 0.5}})
        """
    )
    assert made.returncode == 0, made.stderr
    data = _serve_and_get(["serve", str(tmp_path)], "/api/runs")
    assert "r1" in json.dumps(data)


def test_view_and_summary_of_an_onnx_file_run_without_torch(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path / "tiny.onnx")
    out = _cli("summary", str(path))
    assert out.returncode == 0, out.stderr
    assert "Total params: 15" in out.stdout
    graph = _serve_and_get(["view", str(path)], "/api/graph?model=1")
    assert {"fc/MatMul", "fc/Add"} <= {n["label"] for n in graph["nodes"]} | {
        n["id"] for n in graph["nodes"]
    }


def test_every_torch_entry_says_what_to_install(tmp_path: Path) -> None:
    out = _run_blocked(
        f"""
        import deepscope
        from deepscope.errors import DeepscopeError
        HINT = {HINT!r}

        def hint_of(call):
            try:
                call()
            except DeepscopeError as exc:
                assert HINT in str(exc), repr(exc)
                return
            raise AssertionError("no error")

        run = deepscope.init(logdir={str(tmp_path)!r}, name="w")
        hint_of(lambda: run.watch(object()))
        run.finish()
        hint_of(lambda: deepscope.attribute)
        hint_of(lambda: deepscope.smooth)
        hint_of(lambda: deepscope.graph(object(), None))
        hint_of(lambda: deepscope.summary(object(), None))
        hint_of(lambda: deepscope.load_model(object()))
        from deepscope.sources import torch_module
        hint_of(lambda: torch_module.graph(object(), None))
        hint_of(lambda: torch_module.load(object()))
        assert sys.modules["torch"] is None
        """
    )
    assert out.returncode == 0, out.stderr
    (tmp_path / "tinymodel.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Linear(2, 2)\n"
    )
    for args in (
        ["demo", "--no-serve", "--logdir", str(tmp_path / "d")],
        ["summary", "tinymodel:make", "--input-shape", "1,2"],
        ["view", "tinymodel:make", "--input-shape", "1,2", "--port", "0"],
    ):
        cli = _cli(*args, cwd=tmp_path)
        assert cli.returncode != 0 and HINT in cli.stderr, cli.stderr
        assert "Traceback" not in cli.stderr, cli.stderr


# ---- The base install (`pip install deepscope`) has no numpy, no Pillow and no torch:
# `deepscope serve` shows a logdir written by a full install.

LEAN = ("torch", "numpy", "PIL")


def _full_logdir(logdir: Path) -> dict[str, Any]:
    """A run with every kind of record, written here (numpy, Pillow and torch present)."""
    torch = pytest.importorskip("torch")
    import numpy as np

    import deepscope
    from deepscope.analysis.attribution.result import AttributionResult

    values = np.concatenate([np.linspace(-3.0, 5.0, 997), [np.nan, np.inf, -np.inf]])
    heat = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3, 5) / 7.0
    with deepscope.init(logdir=logdir, name="full") as run:
        for step in range(3):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
            run.log_histogram("w", values * (step + 1), step=step, bins=16)
        run.log_image("img", np.full((5, 6, 3), 200, dtype=np.uint8), step=1)
        run.log_event("nan", "NaN in fc", layer="fc", step=2)
        run.log_graph(torch.nn.Sequential(torch.nn.Linear(3, 2)), torch.zeros(1, 3))
        AttributionResult(heat, method="saliency", target=[0, 1]).log(run, "sal", step=2)
    return {"heat": heat.numpy()}


def test_serve_shows_a_full_logdir_without_numpy_pil_or_torch(tmp_path: Path) -> None:
    import sqlite3

    import numpy as np

    from deepscope.store import open as open_store
    from deepscope.views import envelope

    made = _full_logdir(tmp_path)
    reader = open_store(tmp_path).run("full")
    db = next(tmp_path.rglob("*.db"))
    with contextlib.closing(sqlite3.connect(db)) as conn:
        raw = conn.execute("SELECT edges, counts FROM histogram ORDER BY step").fetchall()
    with _serving(["serve", str(tmp_path)], blocked=LEAN) as get:
        assert get("/api/health")
        runs = json.loads(get("/api/runs"))
        assert "full" in json.dumps(runs)
        scalars = json.loads(get("/api/scalars?run=full&tag=loss"))
        got = [(p[0], p[2]) for p in scalars["points"]]
        assert (
            got
            == [(s.step, s.value) for s in reader.scalars("loss")]
            == [
                (0, 1.0),
                (1, 0.5),
                (2, 1.0 / 3),
            ]
        )
        hists = json.loads(get("/api/histograms?run=full&tag=w"))["histograms"]
        want = reader.histograms("w")
        assert len(hists) == len(want) == len(raw) == 3
        for h, w, (edges, counts) in zip(hists, want, raw, strict=True):
            # the served bins are the stored float64/int64 bytes, decoded by numpy here
            assert h["edges"] == np.frombuffer(edges, "<f8").tolist() == w.edges
            assert h["counts"] == np.frombuffer(counts, "<i8").tolist() == w.counts
            assert len(h["edges"]) == 17 and sum(h["counts"]) == h["count"] == 997
            assert (h["nNan"], h["nPosinf"], h["nNeginf"]) == (1, 1, 1)
            assert h["edges"][0] == h["min"] and h["edges"][-1] == h["max"]
        assert hists[2]["max"] == 15.0 and hists[0]["edges"][0] == -3.0
        images = json.loads(get("/api/images?run=full&tag=img"))
        (image,) = images["images"]
        assert get(image["url"])[:8] == b"\x89PNG\r\n\x1a\n"
        graph = json.loads(get("/api/graph?run=full"))
        assert any("Linear" in json.dumps(n) for n in graph["nodes"]), graph
        events = json.loads(get("/api/events?run=full"))
        assert "NaN in fc" in json.dumps(events)
        views = json.loads(get("/api/views/attribution?run=full&tag=sal"))
        assert [i["meta"]["input_index"] for i in views["items"]] == [0, 1]
        for item in views["items"]:
            blob = get(item["parts"]["heat"]["url"])  # served as stored: no numpy needed
            np.testing.assert_array_equal(
                envelope.decode(blob), made["heat"][item["meta"]["input_index"]]
            )
        # downsampling an array is the one view step that needs numpy: it says so
        with pytest.raises(urllib.error.HTTPError) as err:
            get(views["items"][0]["parts"]["heat"]["url"] + "&maxSize=2")
        assert "pip install 'deepscope[arrays]'" in err.value.read().decode()


def test_logging_arrays_and_reading_models_without_numpy_say_what_to_install(
    tmp_path: Path,
) -> None:
    (tmp_path / "m.onnx").write_bytes(b"")
    out = _run_blocked(
        f"""
        import deepscope, deepscope.store
        from deepscope.errors import DeepscopeError
        run = deepscope.init(logdir={str(tmp_path)!r}, name="lean")
        run.log({{"loss": 0.5}})
        for call, extra in [
            (lambda: run.log_histogram("w", [1.0, 2.0]), "arrays"),
            (lambda: run.log_image("i", [[0, 1]]), "arrays"),
            (lambda: deepscope.load_model({str(tmp_path / "m.onnx")!r}), "onnx"),
        ]:
            try:
                call()
            except DeepscopeError as exc:
                assert f"pip install 'deepscope[{{extra}}]'" in str(exc), exc
            else:
                raise AssertionError("no error")
        run.finish()
        r = deepscope.store.open({str(tmp_path)!r}).run("lean")
        assert [p.value for p in r.scalars("loss")] == [0.5]
        """,
        blocked=LEAN,
    )
    assert out.returncode == 0, out.stderr


def test_histogram_bytes_pack_without_numpy_as_numpy_packs_them() -> None:
    import numpy as np

    edges, counts = [-1.5, 0.0, 2.25, 1e300], [3, 0, 2**40]
    want = (np.asarray(edges, "<f8").tobytes(), np.asarray(counts, "<i8").tobytes())
    out = _run_blocked(
        f"""
        from deepscope.store.rows import pack_le, unpack_le
        packed = (pack_le({edges!r}, "d"), pack_le({counts!r}, "q"))
        assert packed == {want!r}, packed
        assert unpack_le(packed[0], "d") == {edges!r}
        assert unpack_le(packed[1], "q") == {counts!r}
        """,
        blocked=LEAN,
    )
    assert out.returncode == 0, out.stderr


def test_cli_commands_that_need_numpy_say_what_to_install(tmp_path: Path) -> None:
    cli = _blocker((*LEAN, "tensorboard")) + "from deepscope.cli import main\nmain()\n"
    (tmp_path / "m.safetensors").write_bytes(b"")
    for args, hint in (
        (["import-tb", str(tmp_path), str(tmp_path / "out")], "deepscope[tensorboard]"),
        (["summary", str(tmp_path / "m.safetensors")], "deepscope[onnx]"),
    ):
        out = subprocess.run(
            [sys.executable, "-c", cli, *args], capture_output=True, text=True, timeout=120
        )
        assert out.returncode != 0 and hint in out.stderr, out.stderr
        assert "Traceback" not in out.stderr, out.stderr


# ---- The one direction of imports (DESIGN §1), read from the source: shared records and
# codecs sit below every layer that uses them, so no layer imports another sideways or up.

SRC = Path(__file__).resolve().parents[1] / "src" / "deepscope"
NEUTRAL = {"deepscope.errors", "deepscope._jsonstrict", "deepscope._histdata"}
LAYER_MAY_IMPORT: dict[str, set[str]] = {
    # package: the deepscope packages/modules it may import (besides itself and NEUTRAL)
    "graph": set(),
    "store": set(),
    "capture": {"deepscope.sources"},  # the module tree walker (nn and Keras layers)
}


def _runtime_imports(path: Path) -> set[str]:
    """Modules `path` imports at run time (``if TYPE_CHECKING:`` blocks left out)."""
    import ast

    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for c in child.orelse:
                    visit(c)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.add(child.module)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _allowed(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


@pytest.mark.parametrize("package", sorted(LAYER_MAY_IMPORT))
def test_layers_import_only_what_design_allows(package: str) -> None:
    own = {f"deepscope.{package}"} | NEUTRAL | LAYER_MAY_IMPORT[package]
    wrong = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in sorted((SRC / package).rglob("*.py"))
        for name in _runtime_imports(path)
        if name.startswith("deepscope") and not _allowed(name, own)
    }
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("module", ["_jsonstrict", "_histdata", "graph/namespace"])
def test_shared_records_and_codecs_import_the_standard_library_only(module: str) -> None:
    imports = _runtime_imports(SRC / f"{module}.py")
    outside = {m for m in imports if m.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= {"deepscope.graph.ir"}, outside
    name = "deepscope." + module.replace("/", ".")
    out = _run_blocked(f"import {name}\n", blocked=("torch", "numpy"))
    assert out.returncode == 0, out.stderr
