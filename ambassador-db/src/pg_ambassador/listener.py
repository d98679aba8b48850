"""Accepting clients: TCP and Unix listeners, and each client's start-up phase
up to its StartupMessage or CancelRequest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path

from patterns_common.logsetup import fields

from .ambassador import Ambassador
from .config import ListenAddress, TcpListen, UnixListen
from .protocol import (
    MAX_STARTUP_PACKET,
    CancelRequest,
    GSSENCRequest,
    ProtocolViolation,
    SSLRequest,
    StartupMessage,
    split_startup_packet,
)
from .proxy import Session

log = logging.getLogger(__name__)

SQLSTATE_PROTOCOL_VIOLATION = "08P01"
BACKLOG = 4096
MAX_ENCRYPTION_REQUESTS = 2  # one SSLRequest and one GSSENCRequest, as PostgreSQL allows


class ClientStartup(asyncio.Protocol):
    """Answers SSLRequest and GSSENCRequest with `N` (the app speaks plaintext
    to the ambassador next to it), then hands the StartupMessage or the
    CancelRequest to the Ambassador. A client that sends nothing whole within
    the start-up timeout, or something malformed, gets an 08P01 error.

    It keeps reading while the session dials (a paused socket would not
    notice the client hanging up), until the session's relay takes over."""

    def __init__(self, ambassador: Ambassador, clients: set[ClientStartup]) -> None:
        self._ambassador = ambassador
        self._clients = clients
        self._buffer = bytearray()
        self._encryption_requests = 0
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._session: Session | None = None
        self._dispatched = False
        self.address = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.address = describe_peer(transport)
        self._clients.add(self)
        timeout = self._ambassador.settings.limits.startup_timeout
        self._timer = asyncio.get_running_loop().call_later(timeout, self._timed_out, timeout)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._dispatched:
            # Held for the session's relay, which takes it over once the
            # server answers; a client should send nothing meanwhile.
            if len(self._buffer) > MAX_STARTUP_PACKET:
                self._transport_or_fail().abort()
            return
        try:
            while (found := split_startup_packet(self._buffer)) is not None:
                packet, length = found
                del self._buffer[:length]
                if isinstance(packet, SSLRequest | GSSENCRequest):
                    self._decline_encryption()
                    continue
                self._done()
                if isinstance(packet, CancelRequest):
                    self._ambassador.cancel(self._transport_or_fail(), packet)
                else:
                    self._start(packet)
                return
        except ProtocolViolation as exc:
            self._refuse(f"invalid start-up packet: {exc}")

    def _decline_encryption(self) -> None:
        self._encryption_requests += 1
        if self._encryption_requests > MAX_ENCRYPTION_REQUESTS:
            raise ProtocolViolation("too many encryption requests")
        self._transport_or_fail().write(b"N")

    def _start(self, startup: StartupMessage) -> None:
        self._session = self._ambassador.admit(
            self._transport_or_fail(), self.address, startup, self.take_pending
        )

    def take_pending(self) -> bytes:
        """What the client sent after its StartupMessage, for the relay."""
        pending, self._buffer = bytes(self._buffer), bytearray()
        return pending

    def _transport_or_fail(self) -> asyncio.Transport:
        assert self._transport is not None
        return self._transport

    def _timed_out(self, timeout: float) -> None:
        self._refuse(f"no complete start-up packet within {timeout:g}s")

    def _refuse(self, message: str) -> None:
        self._done()
        self._ambassador.refuse(
            self._transport_or_fail(), SQLSTATE_PROTOCOL_VIOLATION, message, client=self.address
        )

    def _done(self) -> None:
        """The start-up phase is over (the connection may live on in a session)."""
        self._dispatched = True
        if self._timer is not None:
            self._timer.cancel()
        self._clients.discard(self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Until the session's relay takes this connection over, a client
        that hangs up ends its session here (the server connection too)."""
        self._done()
        if self._session is not None:
            self._session.close("client closed")

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def describe_peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "unix"


class Listeners:
    """Every listening socket, and the clients still in their start-up phase."""

    def __init__(self, ambassador: Ambassador) -> None:
        self._ambassador = ambassador
        self._servers: list[asyncio.Server] = []
        self._socket_files: list[Path] = []
        self.clients: set[ClientStartup] = set()

    def _factory(self) -> ClientStartup:
        return ClientStartup(self._ambassador, self.clients)

    async def open(self, addresses: tuple[ListenAddress, ...]) -> None:
        """Listen on every address; OSError names the one that failed."""
        loop = asyncio.get_running_loop()
        for address in addresses:
            try:
                if isinstance(address, TcpListen):
                    server = await loop.create_server(
                        self._factory,
                        address.address.host or None,
                        address.address.port,
                        backlog=BACKLOG,
                        reuse_address=True,
                    )
                else:
                    server = await self._open_unix(loop, address)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {address}: {exc.strerror}") from None
            self._servers.append(server)
            log.info("listening", extra=fields(address=str(address)))

    async def _open_unix(
        self, loop: asyncio.AbstractEventLoop, address: UnixListen
    ) -> asyncio.Server:
        path = address.path
        address.directory.mkdir(parents=True, exist_ok=True)
        if path.is_socket() and not _socket_answers(path):
            path.unlink()  # left behind by a process that was killed
        server = await loop.create_unix_server(self._factory, str(path), backlog=BACKLOG)
        # The app often runs as another user than the ambassador; the
        # directory (an emptyDir shared by the two) is the access control.
        os.chmod(path, 0o777)  # noqa: S103
        self._socket_files.append(path)
        return server

    @property
    def listening(self) -> bool:
        return any(server.is_serving() for server in self._servers)

    def close(self) -> None:
        for server in self._servers:
            server.close()
        for client in list(self.clients):
            client.abort()
        for path in self._socket_files:
            with contextlib.suppress(OSError):
                path.unlink()


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
