"""File-serving confinement (THREATS D4): the traversal list against `confine`, every
file-serving route, the static route and the `run` parameter."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from server_support import BASE, Logged, strict_loads
from starlette.testclient import TestClient

from deepscope.errors import NotFoundError
from deepscope.server.app import Settings, create_app
from deepscope.server.paths import UnsafePathError, confine

SECRET = "root:x:0:0:SECRET-OUTSIDE"

# (raw text as stored or received, description)
TRAVERSALS = [
    "../secret.txt",
    "../../etc/passwd",
    "%2e%2e%2fsecret.txt",
    "%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e%252fsecret.txt",
    "%25252e%25252e%25252fsecret.txt",
    "..%5csecret.txt",
    "..\\secret.txt",
    "/etc/passwd",
    "//proc/self/root/etc/passwd",
    "C:\\Windows\\win.ini",
    "c:/windows/win.ini",
    "file:///etc/passwd",
    "a#/../../secret.txt",
    "blobs/\x00.png",
    "blobs/%00.png",
    "%c0%ae%c0%ae/secret.txt",
    "blobs/../../secret.txt",
    "./../secret.txt",
]


@pytest.fixture()
def jail(tmp_path: Path) -> Path:
    """`tmp/root` with a file inside and a symlink pointing out; `tmp/secret.txt` outside."""
    root = tmp_path / "root"
    (root / "blobs").mkdir(parents=True)
    (root / "blobs" / "ok.png").write_bytes(b"fine")
    (tmp_path / "secret.txt").write_text(SECRET)
    (root / "blobs" / "link.png").symlink_to(tmp_path / "secret.txt")
    (root / "blobs" / "dirlink").symlink_to(tmp_path)
    return root


@pytest.mark.parametrize("payload", TRAVERSALS)
def test_confine_refuses_every_traversal(jail: Path, payload: str) -> None:
    with pytest.raises((UnsafePathError, NotFoundError)):
        confine(jail, payload)


@pytest.mark.parametrize("payload", ["blobs/link.png", "blobs/dirlink/secret.txt", "nope.png"])
def test_confine_refuses_symlinks_out_and_missing_files(jail: Path, payload: str) -> None:
    with pytest.raises(NotFoundError):
        confine(jail, payload)


def test_confine_accepts_a_plain_relative_path(jail: Path) -> None:
    assert confine(jail, "blobs/ok.png") == (jail / "blobs" / "ok.png").resolve()
    assert confine(jail, "blobs%2fok.png") == (jail / "blobs" / "ok.png").resolve()


def _no_leak(status: int, text: str) -> None:
    assert status in (400, 404), (status, text[:200])
    assert "root:" not in text and "SECRET" not in text
    strict_loads(text)


@pytest.fixture()
def crafted(logged: Logged, tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """A copy of the logdir whose blob rows can be rewritten to hostile paths."""
    logdir = tmp_path / "logdir"
    shutil.copytree(logged.logdir, logdir, symlinks=True)
    (tmp_path / "secret.txt").write_text(SECRET)
    (logdir / "alpha" / "blobs" / "evil.png").symlink_to(tmp_path / "secret.txt")
    (logdir / "alpha" / "blobs" / "evil.txt").symlink_to(tmp_path / "secret.txt")
    (logdir / "alpha" / "blobs" / "evil.json").symlink_to(tmp_path / "secret.txt")
    app = create_app(Settings(logdir=logdir))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        yield client, logdir / "alpha" / "run.db"


def _set_paths(db: Path, path: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE blob SET path = ?", (path,))


STORED = [p.replace("secret.txt", "secret.png") for p in TRAVERSALS] + [
    "../../secret.txt",
    "blobs/evil.png",
    "blobs/evil.txt",
    "blobs/evil.json",
]


@pytest.mark.parametrize("stored", STORED)
def test_hostile_blob_paths_in_the_store_never_leave_the_run(
    crafted: tuple[TestClient, Path], stored: str
) -> None:
    client, db = crafted
    images = strict_loads(client.get("/api/images?run=alpha&tag=sample").text)["images"]
    _set_paths(db, stored)
    for url in (
        images[0]["url"],
        "/api/text?run=alpha&tag=notes",
        "/api/graph?run=alpha",
        "/api/graph/level?run=alpha",
    ):
        response = client.get(url)
        _no_leak(response.status_code, response.text)


RUN_NAMES = ["../../etc", "..", ".", "../alpha", "alpha/../beta", "/etc", "..%2f..%2fetc",
             "%2e%2e", "alpha\x00", "..\\..\\etc", "C:\\x", "//proc/self/root/etc"]  # fmt: skip
RUN_ROUTES = ["/api/scalars?tag=loss&run=", "/api/histograms?tag=w&run=", "/api/images?tag=s&run=",
              "/api/blob?id=1&run=", "/api/text?tag=notes&run=", "/api/graph?run=",
              "/api/graphs?run=", "/api/graph/level?run=", "/api/graph/search?q=a&run=",
              "/api/events?run=", "/api/attributions?run=", "/api/tags?run=",
              "/api/stream?run="]  # fmt: skip


@pytest.mark.parametrize("name", RUN_NAMES)
def test_run_parameter_cannot_traverse(client: TestClient, name: str) -> None:
    for route in RUN_ROUTES:
        response = client.get(route + quote(name, safe=""))
        _no_leak(response.status_code, response.text)


@pytest.fixture()
def static_client(tmp_path: Path, logged: Logged) -> Iterator[TestClient]:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>app</title>")
    (static / "assets" / "app.js").write_text("console.log(1)")
    (static / "assets" / "page.html5").write_text("not an allowed type")
    (tmp_path / "secret.txt").write_text(SECRET)
    (static / "assets" / "leak.js").symlink_to(tmp_path / "secret.txt")
    app = create_app(Settings(logdir=logged.logdir, static_dir=static))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        yield client


def test_static_serves_index_assets_and_spa_paths(static_client: TestClient) -> None:
    assert "<title>app</title>" in static_client.get("/").text
    js = static_client.get("/assets/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "<title>app</title>" in static_client.get("/scalars").text
    assert static_client.get("/assets/missing.js").status_code == 404
    assert static_client.get("/assets/page.html5").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/assets/leak.js", "/%2e%2e%2fsecret.txt", "/%252e%252e%252fsecret.txt",
     "/..%5csecret.txt", "/assets/%2e%2e/%2e%2e/secret.txt", "/%c0%ae%c0%ae/secret.txt",
     "/%00", "/assets/%00.js", "/C:%5cWindows%5cwin.ini", "/file:%2f%2f%2fetc%2fpasswd",
     "/a%23/../../secret.txt"],
)  # fmt: skip
def test_static_route_refuses_traversal(static_client: TestClient, path: str) -> None:
    response = static_client.get(path)
    assert "root:" not in response.text and "SECRET" not in response.text
    assert response.status_code in (400, 404) or "<title>app</title>" in response.text


def test_missing_frontend_build_gives_a_plain_hint(tmp_path: Path, logged: Logged) -> None:
    app = create_app(Settings(logdir=logged.logdir, static_dir=tmp_path / "none"))
    with TestClient(app, base_url=BASE) as client:
        response = client.get("/")
    assert response.status_code == 200 and "frontend not built" in response.text
    assert "npm ci &amp;&amp; npm run build" in response.text
