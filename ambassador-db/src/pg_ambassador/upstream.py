"""The server side of a session before it is relayed: dial, TLS, messages."""

from __future__ import annotations

import asyncio
import socket
import ssl

from patterns_common.cli import HostPort

from .config import TlsMode
from .protocol import ProtocolViolation, encode_ssl_request, split_message


class DialError(Exception):
    """The server could not be reached or would not speak TLS as asked; the
    connection may be tried on another server. `reason` labels the metric."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ServerClosed(Exception):
    """The server closed the connection during start-up."""


class ServerLink(asyncio.Protocol):
    """Buffers what the server sends during start-up and hands it out whole:
    one byte (the answer to SSLRequest) or one message at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _more(self) -> None:
        if self._closed:
            raise ServerClosed
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read_byte(self) -> int:
        while not self.buffer:
            await self._more()
        value = self.buffer[0]
        del self.buffer[:1]
        return value

    def has_message(self) -> bool:
        try:
            return split_message(self.buffer) is not None
        except ProtocolViolation:
            return True  # let next_message raise it

    async def wait_message(self) -> None:
        while not self.has_message():
            await self._more()

    async def next_message(self) -> tuple[bytes, bytes]:
        """(type byte, the whole message) of the next message."""
        while (found := split_message(self.buffer)) is None:
            await self._more()
        kind, _, end = found
        raw = bytes(self.buffer[:end])
        del self.buffer[:end]
        return kind, raw

    def take_buffer(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


async def dial(
    server: HostPort, tls: TlsMode, context: ssl.SSLContext | None
) -> tuple[asyncio.Transport, ServerLink]:
    """Connect to `server`; unless `tls` is disable, ask for TLS and upgrade.
    Raises DialError; the caller bounds the time it may take."""
    loop = asyncio.get_running_loop()
    try:
        transport, link = await loop.create_connection(ServerLink, server.host, server.port)
    except OSError as exc:
        raise DialError("refused", f"cannot connect to {server}: {exc.strerror or exc}") from None
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    if context is None:
        return transport, link
    try:
        transport.write(encode_ssl_request())
        answer = await link.read_byte()
        if answer == ord("S"):
            if link.buffer:
                # Anything before the handshake would be injected by a man in the middle.
                raise DialError("protocol", f"{server} sent unencrypted data after accepting TLS")
            upgraded = await loop.start_tls(transport, link, context, server_hostname=server.host)
            if upgraded is None:
                raise ServerClosed
            link.transport = upgraded
            return upgraded, link
        if answer != ord("N"):
            raise DialError("protocol", f"{server} answered SSLRequest with {bytes([answer])!r}")
        if tls in ("require", "verify-full"):
            raise DialError("tls", f"{server} does not accept TLS connections (tls: {tls})")
        return transport, link
    except ssl.SSLError as exc:
        transport.abort()
        why = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        raise DialError("tls", f"TLS with {server} failed: {why}") from None
    except ServerClosed:
        transport.abort()
        raise DialError("closed", f"{server} closed the connection during TLS set-up") from None
    except BaseException:
        transport.abort()
        raise
