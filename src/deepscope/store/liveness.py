"""Is the process that wrote a session still alive? (run status after a crash)

A writer records ``proc_id`` for its session: ``"<boot id>:<pid namespace>:<start time>"``
on Linux (the kernel's boot id, the inode of ``/proc/self/ns/pid`` and field 22 of
``/proc/<pid>/stat``: clock ticks after boot), NULL elsewhere. A reader on the same host,
boot and pid namespace can then tell from ``/proc/<pid>/stat`` alone whether that very
process still runs: a pid reused by another process has another start time, and a killed
process that is not reaped yet (a zombie) counts as gone. Anywhere else (another machine or
container, no ``/proc``) the answer is "unknown" and the heartbeat decides.

Imports the standard library only.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path


def _boot_and_ns() -> str | None:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}:{ns}" if boot else None


@lru_cache(maxsize=1)
def _here() -> str | None:
    return _boot_and_ns()


def start_time(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks after boot) of `pid`; None if there is none."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    rest = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and ")"
    try:
        return rest[0], int(rest[19])
    except (IndexError, ValueError):
        return None


def process_id(pid: int | None = None) -> str | None:
    """The ``proc_id`` of process `pid` (this process by default); None off Linux."""
    here = _here()
    if here is None:
        return None
    st = start_time(os.getpid() if pid is None else pid)
    return None if st is None else f"{here}:{st[1]}"


def hostname() -> str:
    return socket.gethostname()


def alive(host: object, pid: object, proc_id: object) -> bool | None:
    """True/False when the session's process is known to run / to be gone; None when this
    machine cannot tell (another host, container or boot, or no ``proc_id`` recorded)."""
    if not isinstance(proc_id, str) or type(pid) is not int or host != hostname():
        return None
    here = _here()
    prefix, _, ticks = proc_id.rpartition(":")
    if here is None or prefix != here:
        return None
    st = start_time(pid)
    if st is None or st[0] in "ZXx":
        return False
    return str(st[1]) == ticks
