"""Hatch build hook: build the dashboard frontend (Vite) and the weight-statistics kernel
(`_halfstats.c`, see `build_native`) into the package before packaging.

Runs for wheel, editable and sdist builds. It does nothing when the built app is at least
as new as every frontend source (e.g. a wheel built from an sdist that already ships it);
otherwise it runs ``npm ci`` (only when ``node_modules`` is missing or older than
``package-lock.json``) and ``npm run build`` in ``frontend/``. Set
``DEEPSCOPE_SKIP_FRONTEND=1`` to skip it entirely (the dashboard then has no UI).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

APP_DIR = Path("src/deepscope/server/static/app")
NATIVE_SRC = Path("src/deepscope/analysis/weights/_halfstats.c")
NATIVE_LIB = NATIVE_SRC.with_suffix(".so")
# What `npm run build` writes besides index.html: the notebook widget and report entries.
EMBED_OUTPUTS = ("embed/widget.js", "embed/report.js")
SOURCE_FILES = (
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
)


def newest_source_mtime(frontend: Path) -> float:
    """The latest modification time over the frontend's sources (not node_modules)."""
    paths = [frontend / name for name in SOURCE_FILES]
    paths += [p for p in (frontend / "src").rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def needs_build(frontend: Path, index: Path) -> bool:
    if not index.exists() or not all((index.parent / p).exists() for p in EMBED_OUTPUTS):
        return True
    if not (frontend / "src").is_dir():
        return False
    return newest_source_mtime(frontend) > index.stat().st_mtime


def needs_install(frontend: Path) -> bool:
    marker = frontend / "node_modules" / ".package-lock.json"
    lock = frontend / "package-lock.json"
    if not marker.exists():
        return True
    return lock.exists() and lock.stat().st_mtime > marker.stat().st_mtime


def run_npm(npm: str, args: list[str], cwd: Path) -> None:
    print(f"deepscope frontend: npm {' '.join(args)}", file=sys.stderr, flush=True)
    proc = subprocess.run([npm, *args], cwd=cwd, stdout=sys.stderr, stderr=sys.stderr, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"`npm {' '.join(args)}` failed in {cwd} (exit {proc.returncode}); see the output "
            "above. Fix it, or set DEEPSCOPE_SKIP_FRONTEND=1 to install without the dashboard UI."
        )


def build_frontend(root: Path) -> None:
    frontend = root / "frontend"
    index = root / APP_DIR / "index.html"
    if not needs_build(frontend, index):
        return
    if not (frontend / "package.json").exists():
        raise RuntimeError(
            f"The dashboard frontend is not built ({index} is missing) and its sources "
            f"({frontend}) are not here. Build from a git checkout or an sdist."
        )
    npm = shutil.which("npm")
    if npm is None:
        if index.exists():
            print(
                "deepscope frontend: npm not found; keeping the existing, older build",
                file=sys.stderr,
            )
            return
        raise RuntimeError(
            "Building deepscope needs Node.js >= 20 and npm to compile the dashboard "
            "(frontend/). Install them (https://nodejs.org, or `apt-get install nodejs npm`) "
            "and retry, or set DEEPSCOPE_SKIP_FRONTEND=1 to install without the dashboard UI."
        )
    if needs_install(frontend):
        try:
            run_npm(npm, ["ci", "--no-audit", "--no-fund"], frontend)
        except RuntimeError:
            # npm 11 refuses `npm ci` on a lock written with omit-lockfile-registry-resolved
            # (it lists other platforms' optional packages without versions). `npm install`
            # with the same lock installs exactly the locked versions and leaves it unchanged.
            print("deepscope frontend: `npm ci` refused the lock; using `npm install`",
                  file=sys.stderr)  # fmt: skip
            run_npm(npm, ["install", "--no-audit", "--no-fund", "--no-save"], frontend)
    run_npm(npm, ["run", "build"], frontend)
    if not index.exists():
        raise RuntimeError(f"`npm run build` finished but {index} was not produced")


def build_native(root: Path) -> bool:
    """Compile the float16 / bfloat16 statistics kernel into a shared library loaded with
    ctypes (no Python API: any Python version). Optional: with no C compiler, or when it
    fails, say so and go on; deepscope then counts those statistics with numpy (slower).
    Returns whether the library is there. `CC` picks the compiler (default `cc`);
    ``DEEPSCOPE_SKIP_NATIVE=1`` skips it."""
    src, lib = root / NATIVE_SRC, root / NATIVE_LIB
    if os.environ.get("DEEPSCOPE_SKIP_NATIVE", "") not in ("", "0") or not src.exists():
        return lib.exists()
    if lib.exists() and lib.stat().st_mtime >= src.stat().st_mtime:
        return True
    cc = shlex.split(os.environ.get("CC", "cc"))
    tmp = lib.with_suffix(".so.tmp")
    cmd = [*cc, "-O3", "-std=c11", "-shared", "-fPIC", "-o", str(tmp), str(src)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        why = f"`{shlex.join(cmd)}` failed:\n{proc.stderr.strip()}" if proc.returncode else ""
    except OSError as e:
        why = f"no C compiler ({e})"
    if why:
        tmp.unlink(missing_ok=True)
        print(
            f"deepscope kernel: {why}\ndeepscope kernel: not built; float16 / bfloat16 weight "
            "statistics will use numpy (slower). Install a C compiler (e.g. `apt-get install "
            f"gcc`) to build {src.name}.",
            file=sys.stderr,
        )
        return lib.exists() and lib.stat().st_mtime >= src.stat().st_mtime
    tmp.replace(lib)
    return True


class FrontendBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name == "wheel" and build_native(Path(self.root)):
            build_data["pure_python"] = False  # a compiled library inside: a platform tag
            build_data["infer_tag"] = True
        if os.environ.get("DEEPSCOPE_SKIP_FRONTEND", "") not in ("", "0"):
            return
        build_frontend(Path(self.root))
