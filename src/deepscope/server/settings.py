"""`Settings`: everything `create_app` needs, in one object (no globals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from deepscope.graph.ir import Graph

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
STATIC_DIR = Path(__file__).resolve().parent / "static" / "app"


class WeightsSource(Protocol):
    """The tensor values behind ``deepscope view MODEL`` / ``deepscope diff A B --serve``
    (`deepscope.views.kinds.weights.ModelWeightsSource`, `...weights_diff.DiffWeightsSource`):
    made by the command, read by ``/api/model/weights`` (numpy arrays, never torch)."""

    mode: Any
    labels: list[str]

    def tensors(self, names: list[str]) -> tuple[list[dict[str, Any]], list[str]]: ...

    def table(self, compute: bool = True) -> dict[str, Any]: ...

    def array(self, name: str, part: str) -> Any: ...


@dataclass
class Settings:
    """Configuration of one dashboard server.

    Attributes:
        logdir: the directory of runs to serve (None when only a model is shown); with
            `store_url`, the local folder blobs fetched from the database are cached in.
        store_url: a database store (``postgresql://…``) served instead of a log directory.
        token: when set, every request needs it (Bearer header or the cookie).
        allowed_hosts: extra names accepted in the ``Host`` header, besides loopback
            names and `bound_host`.
        bound_host: the address the server listens on (added to the allowed hosts).
        model_graph: the model shown by ``deepscope view`` (``model=1`` in graph routes).
        model_weights: the tensor values of that model (or of a diff), for
            ``/api/model/weights``; None when the view has none.
        static_dir: the built frontend (``index.html`` and assets).
        max_body: the largest request body accepted, in bytes (413 above).
        max_query: the longest query string accepted, in bytes (414 above).
        poll_interval: seconds between store version polls in ``/api/stream``.
        ping_interval: seconds between SSE keep-alive comments.
        graph_cache_size: parsed graphs (and their level indexes) kept in memory.
        reads_per_run: reads of one run running at once; more wait (see `ReadGate`).
        read_wait: seconds a read waits for a slot of its run before a 503.
        read_deadline: seconds one SQL read of a run may take: the store interrupts it
            then (a progress handler) and answers 503.
        request_deadline: seconds after which the server gives up on any gated request
            (a backstop for work that is not SQL, such as parsing a huge graph) with a 503;
            the thread still holds its run's slot until it ends.
        read_threads: worker threads for run reads (apart from other sync routes).
        header_timeout: seconds a connection has to send a whole request head (slowloris).
        body_timeout: seconds a request has, from its first read, to deliver its whole
            body (408 after; a slow body would otherwise hold a handler).
        keep_alive: seconds an idle keep-alive connection stays open.
        max_connections: open connections (and tasks) past which uvicorn answers 503.
    """

    logdir: Path | None = None
    store_url: str | None = field(default=None, repr=False)  # may hold a password
    token: str | None = None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    bound_host: str = "127.0.0.1"
    model_graph: Graph | None = None
    model_weights: WeightsSource | None = None
    static_dir: Path = STATIC_DIR
    max_body: int = 1024 * 1024
    max_query: int = 8 * 1024
    poll_interval: float = 0.5
    ping_interval: float = 15.0
    graph_cache_size: int = 4
    reads_per_run: int = 4
    read_wait: float = 10.0
    read_deadline: float = 5.0
    request_deadline: float = 60.0
    read_threads: int = 32
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keep_alive: float = 5.0
    max_connections: int = 512

    def hosts(self) -> frozenset[str]:
        """Every host name accepted in the ``Host`` header (lower case)."""
        names = set(LOOPBACK_HOSTS) | {self.bound_host} | set(self.allowed_hosts)
        return frozenset(h.lower().strip("[]") for h in names if h)
