"""The one validator every untrusted path goes through before a file is opened (docs/threats.md D4).

`confine(root, untrusted)` URL-decodes to a fixed point, rejects NUL, backslashes, absolute
paths, drive letters, URL schemes and ``..`` components, then resolves symlinks and checks
that the result stays inside `root`. Every file the server reads (blobs, graph JSON, text,
static assets) is opened through it.

Example:
    >>> confine(Path("/tmp"), "a/b.png")  # doctest: +SKIP
    PosixPath('/tmp/a/b.png')
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from deepscope.errors import DeepscopeError, NotFoundError

__all__ = ["UnsafePathError", "confine", "decode_fixed_point"]

_DRIVE = re.compile(r"^[A-Za-z]:")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_MAX_ROUNDS = 8
_MAX_LEN = 4096


class UnsafePathError(DeepscopeError):
    """A path that tries to leave its root (``..``, absolute, encoded tricks, NUL)."""

    http_status = 400


def decode_fixed_point(text: str) -> str:
    """Percent-decode `text` until it stops changing (``%252e`` -> ``%2e`` -> ``.``)."""
    for _ in range(_MAX_ROUNDS):
        decoded = unquote(text, errors="strict")
        if decoded == text:
            return text
        text = decoded
    raise UnsafePathError("path is encoded too many times; pass a plain relative path")


def _check_text(path: str) -> list[str]:
    if not path or len(path) > _MAX_LEN:
        raise UnsafePathError("path is empty or too long")
    if "\x00" in path or "\\" in path:
        raise UnsafePathError("path contains a NUL byte or a backslash")
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise UnsafePathError("path contains control characters")
    if path.startswith("/") or _DRIVE.match(path) or _SCHEME.match(path):
        raise UnsafePathError("path must be relative (no leading '/', drive letter or scheme)")
    if "#" in path or "?" in path:
        raise UnsafePathError("path contains '#' or '?'")
    parts = path.split("/")
    if any(p in ("..", ".") for p in parts):
        raise UnsafePathError("path contains '.' or '..' components")
    return [p for p in parts if p]


def confine(root: Path, untrusted: str) -> Path:
    """The absolute, symlink-resolved path of `untrusted` under `root`, or an error.

    Raises `UnsafePathError` (HTTP 400) for a path that tries to escape and
    `NotFoundError` (404) for one that resolves outside `root` (a symlink pointing out)
    or does not exist.
    """
    try:
        text = decode_fixed_point(untrusted)
    except UnicodeDecodeError as exc:  # overlong UTF-8 such as %c0%ae
        raise UnsafePathError("path is not valid UTF-8 after decoding") from exc
    parts = _check_text(text)
    if not parts:
        raise UnsafePathError("path names no file")
    base = root.resolve()
    try:
        target = base.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise NotFoundError("no such file") from exc
    if not target.is_relative_to(base) or target == base:
        raise NotFoundError("no such file")
    return target
