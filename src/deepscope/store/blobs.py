"""Content-addressed blob files: ``<run>/blobs/<2 hex>/<sha256>.<ext>``, written atomically."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from pathlib import Path

_EXT = re.compile(r"[a-z0-9]{1,10}")


def check_ext(ext: str) -> str:
    """The extension without a leading dot, lower-case; `ValueError` unless ``[a-z0-9]{1,10}``."""
    if not isinstance(ext, str):
        raise TypeError(f"ext must be a string like 'png', not {type(ext).__name__}")
    e = ext.lower().lstrip(".")
    if not _EXT.fullmatch(e):
        raise ValueError(f"blob extension {ext!r} must be 1-10 letters or digits, e.g. 'png'")
    return e


def blob_relpath(data: bytes, ext: str) -> str:
    """``blobs/ab/ab12….ext`` for `data` (sha256 of the bytes)."""
    digest = hashlib.sha256(data).hexdigest()
    return f"blobs/{digest[:2]}/{digest}.{ext}"


def write_blob(run_dir: Path, relpath: str, data: bytes, *, fsync: bool = False) -> None:
    """Write `data` at `run_dir/relpath` unless an identical file is there (tmp + rename)."""
    path = run_dir / relpath
    try:
        if path.stat().st_size == len(data):
            return
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
