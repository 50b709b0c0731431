"""Run groups: one run per rank of a distributed job (``deepscope.init(group="job-42")``).

Every rank of a ``torch.distributed`` job calls ``deepscope.init(..., group="job-42")``. Each
rank writes a run of its own, named ``<group>.rank-<r>`` (``r`` zero-padded to the width of
``world_size - 1`` so the names sort by rank), and records where it stands in the job under
the reserved config key ``"deepscope"``::

    {"deepscope": {"group": "job-42", "rank": 3, "world_size": 4, "local_rank": 3,
                   "host": "node-1"}}

One run per rank (not one run with a rank dimension) keeps the store's rules unchanged: one
writer session per process, a heartbeat and a status per rank (a crashed rank reads
``interrupted`` while the others finish), no step clash between ranks, and every panel
compares ranks as it compares runs. The server lists the group and rank of each run
(``server/listing.py``), and the run list selects a whole group at once. docs/design-notes.md, "Run
groups", says why.

Rank detection: ``torch.distributed`` when it is imported and initialised (torch is never
imported here), else the ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` variables that torchrun,
``torch.distributed.launch`` and most launchers set, else rank 0 of 1.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from typing import Any

from deepscope.store import jsonenc
from deepscope.store.schema import sanitize_run_name

__all__ = ["CONFIG_KEY", "RankInfo", "apply_group", "detect_rank", "rank_config", "rank_run_name"]

CONFIG_KEY = "deepscope"  # reserved config key for a rank's place (server/listing.py reads it)


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands in its job: `rank` of `world_size` (`local_rank` on `host`)."""

    rank: int
    world_size: int
    local_rank: int | None
    host: str
    source: str  # "torch.distributed", "env" or "default"


def _env_int(env: dict[str, str] | os._Environ[str], key: str) -> int | None:
    text = env.get(key)
    if text is None or not text.strip():
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(
            f"{key}={text!r} is not an integer; unset it or set it to the rank"
        ) from None
    if value < 0:
        raise ValueError(f"{key}={value} is negative; ranks and world sizes count from 0")
    return value


def detect_rank(env: dict[str, str] | None = None) -> RankInfo:
    """This process's rank: from ``torch.distributed`` when it is initialised, else from the
    ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` environment variables, else rank 0 of 1."""
    environ = os.environ if env is None else env
    local = _env_int(environ, "LOCAL_RANK")
    host = socket.gethostname()
    dist: Any = sys.modules.get("torch.distributed")  # never import torch just to ask
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist_rank, dist_world = int(dist.get_rank()), int(dist.get_world_size())
        return RankInfo(dist_rank, dist_world, local, host, "torch.distributed")
    rank = _env_int(environ, "RANK")
    env_world = _env_int(environ, "WORLD_SIZE")
    if rank is None and env_world is None:
        return RankInfo(0, 1, local, host, "default")
    if rank is None:
        raise ValueError(
            f"WORLD_SIZE={env_world} is set but RANK is not; set RANK for every process, or call "
            "torch.distributed.init_process_group() before deepscope.init(group=...)"
        )
    world = rank + 1 if env_world is None else env_world
    if rank >= world:
        raise ValueError(f"RANK={rank} is not below WORLD_SIZE={world}")
    return RankInfo(rank, world, local, host, "env")


def rank_run_name(prefix: str, info: RankInfo) -> str:
    """``<prefix>.rank-<r>``, ``r`` zero-padded to the width of ``world_size - 1``."""
    width = len(str(max(info.world_size - 1, 0)))
    suffix = f".rank-{info.rank:0{width}d}"
    return sanitize_run_name(sanitize_run_name(prefix)[: 128 - len(suffix)] + suffix)


def rank_config(config: dict[str, Any], group: str, info: RankInfo) -> dict[str, Any]:
    """`config` plus the reserved ``"deepscope"`` key recording the group and this rank."""
    if CONFIG_KEY in config:
        raise ValueError(
            f"config key {CONFIG_KEY!r} is reserved for the run group (rank, world size, host); "
            "rename that key in your config"
        )
    place: dict[str, Any] = {
        "group": sanitize_run_name(group),
        "rank": info.rank,
        "world_size": info.world_size,
        "host": info.host,
    }
    if info.local_rank is not None:
        place["local_rank"] = info.local_rank
    return {**config, CONFIG_KEY: place}


def apply_group(group: str, name: str | None, config_json: str) -> tuple[str, str]:
    """The run name and config JSON of this rank of `group`: ``<name or group>.rank-<r>``
    (every rank gets a run of its own, also when a `name` is given)."""
    if not isinstance(group, str):
        raise TypeError(f"group must be a string, not {type(group).__name__}")
    info = detect_rank()
    config = rank_config(jsonenc.loads(config_json), group, info)
    return rank_run_name(group if name is None else name, info), jsonenc.dumps(config)
