"""uvicorn's HTTP protocol, writing each response in one piece.

An ASGI app answers in two messages (``http.response.start``, then the body), and uvicorn writes
each to the socket as it comes: two sends, two TCP segments. A client that reads the head alone
wakes up, parses it and waits again for the body, so every answer costs it (and, on a busy
machine, the server it shares a core with) an extra wake-up: about 40 µs a request on loopback
(``bench/serve_lone.py``). :func:`protocol_class` is uvicorn's own protocol with its transport
wrapped in :class:`_Coalescing`, which joins everything written within one turn of the event
loop into one send at the end of that turn. Nothing waits longer than that turn; a close or an
abort comes after what was written before it.
"""

from __future__ import annotations

import asyncio
from typing import Any


class _Coalescing:
    """A transport that sends what is written in one loop turn together, at the turn's end."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:  # everything else: the socket's transport's own
        return getattr(self._transport, name)


def protocol_class() -> type[asyncio.Protocol]:
    """The HTTP protocol uvicorn's ``http="auto"`` picks (httptools when importable, else h11),
    writing each response in one piece (:class:`_Coalescing`)."""
    try:
        import httptools  # noqa: F401  (uvicorn's "auto" test)
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    class Protocol(Base):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.transport = _Coalescing(transport)

    Protocol.__name__ = Protocol.__qualname__ = f"Coalescing{Base.__name__}"
    return Protocol
