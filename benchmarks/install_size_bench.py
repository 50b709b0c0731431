"""Install size of deepscope for viewing (no torch), against TensorBoard.

Builds the wheel from a copy of the working tree (the built dashboard is copied in; the
frontend is built only when it is missing), installs it with its base dependencies into a
fresh virtual environment, and measures what the install added to site-packages (file
sizes, the venv's own pip excluded). Then adds the ``[onnx]`` extra (what ``deepscope view
model.onnx`` needs) and, in another fresh venv, installs ``tensorboard`` for comparison.

Figures (goal: base <= 30 MB, like Netron's 27 MB; TensorBoard is ~150 MB):
- ``base_mb``: ``pip install deepscope`` (click, tqdm, starlette, uvicorn and their deps;
  no numpy, Pillow or torch), bytecode included.
- ``base_pyc_mb``: the part of ``base_mb`` that is bytecode pip compiled at install;
  ``base_no_pyc_mb`` is ``base_mb`` without it (``pip install --no-compile``).
- ``onnx_extra_mb``: what ``deepscope[onnx]`` (onnx + numpy) adds on top.
- ``tensorboard_mb`` / ``tensorboard_no_pyc_mb``: ``pip install tensorboard`` alike (null
  if it cannot be installed).
- ``packages_mb``: the largest distributions of the base install.
- ``torch_installed``, ``numpy_installed``, ``pillow_installed``: must be false;
  ``serves``: the base install runs ``deepscope serve`` on an empty logdir and answers
  ``/api/runs``.

Needs a package index (PyPI or a local mirror/cache as pip is configured). Run alone:
``python benchmarks/install_size_bench.py [--no-tensorboard]`` prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = Path("src/deepscope/server/static/app")
MB = 1024 * 1024


def sh(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    out = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} failed:\n{out.stdout[-2000:]}{out.stderr[-4000:]}"
        )
    return out.stdout


def build_wheel(work: Path) -> Path:
    """A wheel of the working tree (files git does not ignore, as they are now, plus the
    built app)."""
    src = work / "src-copy"
    listing = sh("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for rel in filter(None, listing.split("\0")):
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    env = dict(os.environ)
    if (ROOT / APP / "index.html").exists():
        shutil.copytree(ROOT / APP, src / APP, dirs_exist_ok=True)
        env["DEEPSCOPE_SKIP_FRONTEND"] = "1"  # ship the app built here, don't rebuild it
    out = work / "dist"
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, src, env=env)
    return next(out.glob("deepscope-*.whl"))


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python*/site-packages"))


def sizes(site: Path) -> dict[str, int]:
    """Bytes per top-level entry of site-packages."""
    out: dict[str, int] = {}
    for entry in site.iterdir():
        if entry.is_file():
            out[entry.name] = entry.stat().st_size
        else:
            out[entry.name] = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
    return out


def added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def pyc_bytes(site: Path, delta: dict[str, int]) -> int:
    """Bytes of bytecode under the top-level entries in `delta`."""
    return sum(
        p.stat().st_size for k in delta if (site / k).is_dir() for p in (site / k).rglob("*.pyc")
    )


def serves(bin_: Path, logdir: Path) -> bool:
    """`deepscope serve LOGDIR --port 0` starts and answers ``/api/runs``."""
    code = (
        "import json, re, subprocess, sys, urllib.request\n"
        f"p = subprocess.Popen([{str(bin_ / 'deepscope')!r}, 'serve', {str(logdir)!r}, "
        "'--port', '0'], stdout=subprocess.PIPE, text=True)\n"
        "try:\n"
        "    url = re.search(r'(http://127[.]0[.]0[.]1:[0-9]+)/', p.stdout.readline()).group(1)\n"
        "    print(json.loads(urllib.request.urlopen(url + '/api/runs', timeout=30).read()))\n"
        "finally:\n"
        "    p.terminate()\n"
    )
    try:
        sh(bin_ / "python", "-c", code)
    except RuntimeError as exc:
        print(f"serve failed: {exc}", file=sys.stderr)
        return False
    return True


def fresh_venv(path: Path) -> tuple[Path, dict[str, int]]:
    sh(sys.executable, "-m", "venv", path)
    return path / "bin", sizes(site_packages(path))


def by_distribution(site: Path, delta: dict[str, int]) -> dict[str, float]:
    """MB per installed distribution (top-level names from each RECORD), largest first."""
    owner: dict[str, str] = {}
    for dist in site.glob("*.dist-info"):
        record = dist / "RECORD"
        name = dist.name.split("-")[0]
        if record.exists():
            for line in record.read_text().splitlines():
                top = line.split(",")[0].split("/")[0]
                owner.setdefault(top, name)
    per: dict[str, int] = {}
    for top, n in delta.items():
        per[owner.get(top, top)] = per.get(owner.get(top, top), 0) + n
    ranked = sorted(per.items(), key=lambda kv: -kv[1])
    return {k: round(v / MB, 1) for k, v in ranked[:10]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-tensorboard", action="store_true", help="skip the TensorBoard install")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ds-install-") as tmp:
        work = Path(tmp)
        wheel = build_wheel(work)
        print(f"wheel: {wheel.name} {wheel.stat().st_size / MB:.1f} MB", file=sys.stderr)
        bin_, empty = fresh_venv(work / "venv")
        sh(bin_ / "pip", "install", "-q", wheel)
        site = site_packages(work / "venv")
        base = sizes(site)
        delta = added(empty, base)
        base_mb = sum(delta.values()) / MB
        pyc_mb = pyc_bytes(site, delta) / MB
        installed = {m: (site / m).exists() for m in ("torch", "numpy", "PIL")}
        (work / "logs").mkdir()
        served = serves(bin_, work / "logs")
        sh(bin_ / "python", "-c", "import deepscope, deepscope.server.app")
        version = sh(bin_ / "deepscope", "--version").strip()
        sh(bin_ / "pip", "install", "-q", f"{wheel}[onnx]")
        onnx_mb = sum(added(base, sizes(site)).values()) / MB
        tb_mb: float | None = None
        tb_pyc_mb = 0.0
        if not args.no_tensorboard:
            tb_bin, tb_empty = fresh_venv(work / "venv-tb")
            try:
                sh(tb_bin / "pip", "install", "-q", "tensorboard")
                tb_site = site_packages(work / "venv-tb")
                tb_delta = added(tb_empty, sizes(tb_site))
                tb_mb = sum(tb_delta.values()) / MB
                tb_pyc_mb = pyc_bytes(tb_site, tb_delta) / MB
            except RuntimeError as exc:
                print(f"tensorboard not measured: {exc}", file=sys.stderr)
        result = {
            "bench": "install_size",
            "wheel_mb": round(wheel.stat().st_size / MB, 2),
            "base_mb": round(base_mb, 1),
            "base_pyc_mb": round(pyc_mb, 1),
            "base_no_pyc_mb": round(base_mb - pyc_mb, 1),
            "onnx_extra_mb": round(onnx_mb, 1),
            "tensorboard_mb": None if tb_mb is None else round(tb_mb, 1),
            "tensorboard_no_pyc_mb": None if tb_mb is None else round(tb_mb - tb_pyc_mb, 1),
            "goal_mb": 30,
            "packages_mb": by_distribution(site, delta),
            "torch_installed": installed["torch"],
            "numpy_installed": installed["numpy"],
            "pillow_installed": installed["PIL"],
            "serves": served and bool(version),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
