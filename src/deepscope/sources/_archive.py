"""Read zip archives (.keras, TorchScript, .pt2) in memory, with member-name checks and caps.

Nothing is ever extracted to disk: members are read into bytes, counting the bytes actually
decompressed (not the sizes the archive declares), so a zip bomb stops at the cap (M6).

Example:
    >>> with open_zip(path) as z:                      # doctest: +SKIP
    ...     config = z.read("config.json")
"""

from __future__ import annotations

import re
import stat
import struct
import zipfile
from pathlib import Path
from types import TracebackType
from typing import IO

from deepscope.errors import ModelFormatError
from deepscope.sources import _limits

_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20


class ArchiveError(ModelFormatError):
    """An archive is corrupt, or lists members deepscope refuses to read."""


class ArchiveMemberNameError(ArchiveError):
    """A member name escapes the archive (`../`, absolute, drive letter, backslash) or repeats."""


class ArchiveBombError(ArchiveError):
    """Members decompress to more bytes than the configured cap."""


ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def is_zip(path: Path) -> bool:
    """True when the file starts with a zip signature (cheap: reads 4 bytes)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in ZIP_MAGICS
    except OSError:
        return False


def check_member_name(name: str) -> None:
    """Raise `ArchiveMemberNameError` unless `name` is a plain relative path inside the archive."""
    problem = ""
    if not name:
        problem = "an empty name"
    elif "\x00" in name:
        problem = "a NUL byte"
    elif "\\" in name:
        problem = "a backslash"
    elif name.startswith("/"):
        problem = "an absolute path"
    elif _DRIVE.match(name):
        problem = "a drive letter"
    elif any(part == ".." for part in name.split("/")):
        problem = "a '..' component"
    if problem:
        raise ArchiveMemberNameError(
            f"archive member {name!r} has {problem}; refusing to read this archive "
            "(it may try to write outside its folder)"
        )


class SafeZip:
    """A zip archive whose member list passed the name checks; members read with caps."""

    def __init__(
        self,
        path: Path | IO[bytes],
        *,
        member_cap: int = _limits.MEMBER_CAP,
        total_cap: int = _limits.ARCHIVE_TOTAL_CAP,
        max_members: int = _limits.ARCHIVE_MAX_MEMBERS,
        name: str = "",
    ) -> None:
        self.path = Path(name or (path if isinstance(path, (str, Path)) else "archive"))
        self.fileobj = None if isinstance(path, (str, Path)) else path
        self.member_cap = member_cap
        self.total_cap = total_cap
        self._read_total = 0
        try:
            self._zip = zipfile.ZipFile(path if self.fileobj is None else self.fileobj)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
            raise ArchiveError(f"{self.path.name}: not a readable zip archive ({e})") from e
        try:
            infos = self._zip.infolist()
            if len(infos) > max_members:
                raise ArchiveError(
                    f"{self.path.name}: {len(infos)} members exceed the limit of {max_members}"
                )
            self._infos: dict[str, zipfile.ZipInfo] = {}
            for info in infos:
                check_member_name(info.filename)
                key = info.filename.rstrip("/")
                if key in self._infos:
                    raise ArchiveMemberNameError(
                        f"{self.path.name}: member {info.filename!r} appears twice; "
                        "refusing an ambiguous archive"
                    )
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ArchiveMemberNameError(
                        f"{self.path.name}: member {info.filename!r} is a symbolic link; "
                        "model archives never need links"
                    )
                self._infos[key] = info
        except BaseException:
            self._zip.close()
            raise

    @property
    def names(self) -> list[str]:
        """Member names in archive order (directories without their trailing slash)."""
        return list(self._infos)

    def info(self, name: str) -> zipfile.ZipInfo:
        """The `ZipInfo` of a member (declared sizes: informative only, never trusted)."""
        try:
            return self._infos[name]
        except KeyError:
            raise ArchiveError(f"{self.path.name}: no member named {name!r}") from None

    def read(self, name: str, cap: int | None = None) -> bytes:
        """Read one member into memory, stopping with `ArchiveBombError` past `cap` bytes."""
        info = self.info(name)
        cap = self.member_cap if cap is None else min(cap, self.member_cap)
        chunks: list[bytes] = []
        got = 0
        try:
            with self._zip.open(info) as f:
                while True:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        break
                    got += len(chunk)
                    self._read_total += len(chunk)
                    if got > cap:
                        raise ArchiveBombError(
                            f"{self.path.name}: member {name!r} decompresses to more than "
                            f"{cap} bytes; refusing it (zip bomb?)"
                        )
                    if self._read_total > self.total_cap:
                        raise ArchiveBombError(
                            f"{self.path.name}: members decompress to more than "
                            f"{self.total_cap} bytes in all; refusing the archive (zip bomb?)"
                        )
                    chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
            raise ArchiveError(f"{self.path.name}: member {name!r} is corrupt ({e})") from e
        except Exception as e:  # zlib.error, lzma.LZMAError, ...: all mean a corrupt member
            if isinstance(e, ArchiveError):
                raise
            raise ArchiveError(f"{self.path.name}: member {name!r} is corrupt ({e})") from e
        return b"".join(chunks)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_zip(path: Path | IO[bytes], *, name: str = "", **caps: int) -> SafeZip:
    """Open `path` (or an open binary file, shown as `name`) as a `SafeZip`; raises
    `ArchiveError` subtypes."""
    return SafeZip(path, name=name, **caps)


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


def member_window(z: SafeZip, name: str) -> tuple[int, int] | None:
    """(offset, size) of a stored (uncompressed, unencrypted) member's bytes in a `SafeZip`
    opened on a file object, so it can be read in place; None when it must be decompressed.
    """
    info = z.info(name)
    if z.fileobj is None or info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1:
        return None
    f = z.fileobj
    f.seek(info.header_offset)
    raw = f.read(_LOCAL_HEADER.size)
    if len(raw) != _LOCAL_HEADER.size or raw[:4] != b"PK\x03\x04":
        raise ArchiveError(f"{z.path.name}: member {name!r} has no valid local header")
    fields = _LOCAL_HEADER.unpack(raw)
    start = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
    end = f.seek(0, 2)
    if info.compress_size != info.file_size or start + info.file_size > end:
        raise ArchiveError(f"{z.path.name}: member {name!r} runs past the end of the archive")
    return start, info.file_size
