"""`protocol_class(header_timeout)`: uvicorn's h11 protocol with a request-head deadline.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but not one that sent a
partial request line: receiving any byte cancels its keep-alive timer, and nothing re-arms
it until a whole request arrives. A slowloris client (docs/threats.md D6, D8) could hold a
connection forever. Here every connection, and every new request on a kept-alive one, has
`header_timeout` seconds to deliver a complete request head; past that it is closed. The
deadline is absolute (trickling one byte a second does not extend it).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeadTimeoutH11Protocol", "protocol_class"]


class HeadTimeoutH11Protocol(H11Protocol):
    """`H11Protocol` that closes a connection whose request head is late."""

    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        waiting_for_head = self.conn.their_state is h11.IDLE and (
            self.cycle is None or self.cycle.response_complete
        )
        if waiting_for_head and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a whole head arrived: the app has it now
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the next request on this connection gets its own deadline


def protocol_class(header_timeout: float) -> type[HeadTimeoutH11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with this request-head deadline."""
    return type(
        "DeepscopeH11Protocol", (HeadTimeoutH11Protocol,), {"header_timeout": header_timeout}
    )
