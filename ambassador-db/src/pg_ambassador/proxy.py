"""The data path: one Session per client connection admitted to a route.

A session dials a server, sends the client's start-up packet (rewritten for
the route), logs in for the client when the route injects credentials, and
forwards the server's start-up messages until ReadyForQuery, noting the
BackendKeyData for cancel routing. Then both sockets get a Relay: each chunk
received is written to the other socket as it is, and a full write buffer on
one side pauses reading on the other. Nothing is parsed after start-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from patterns_common.cli import HostPort, read_secret_file
from patterns_common.logsetup import fields

from .auth import SCRAM_SHA_256, AuthenticationFailed, ScramSha256Client, md5_password
from .config import Route
from .protocol import (
    AUTH_CLEARTEXT,
    AUTH_MD5,
    AUTH_OK,
    AUTH_SASL,
    AUTH_SASL_CONTINUE,
    AUTH_SASL_FINAL,
    ProtocolViolation,
    StartupMessage,
    encode_startup_message,
    parse_authentication,
    parse_backend_key_data,
    parse_error_fields,
    parse_sasl_mechanisms,
    password_message,
    sasl_initial_response,
    sasl_response,
)
from .upstream import DialError, ServerClosed, ServerLink, dial

if TYPE_CHECKING:
    from .ambassador import Ambassador

log = logging.getLogger(__name__)

SQLSTATE_INVALID_AUTHORIZATION = "28000"


class LoginRefused(Exception):
    """The ambassador cannot log in for the client; sent as an ErrorResponse."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class Relay(asyncio.Protocol):
    """Writes what its socket receives to the peer socket, unchanged."""

    __slots__ = ("_peer", "_session", "_side", "_write", "count")

    def __init__(self, session: Session, side: str, peer: asyncio.Transport) -> None:
        self._session = session
        self._side = side
        self._peer = peer
        self._write = peer.write
        self.count = 0

    def data_received(self, data: bytes) -> None:
        self.count += len(data)
        self._write(data)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self._peer.pause_reading()

    def resume_writing(self) -> None:
        self._peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._session.close(f"{self._side} closed")


def server_parameters(startup: StartupMessage, route: Route) -> dict[str, str]:
    """The client's start-up parameters with the route's database and user."""
    parameters = dict(startup.parameters)
    parameters["database"] = route.database or startup.database
    if route.user is not None:
        parameters["user"] = route.user
    return parameters


class Session:
    def __init__(
        self,
        ambassador: Ambassador,
        route: Route,
        startup: StartupMessage,
        client: asyncio.Transport,
        client_address: str,
        take_client_pending: Callable[[], bytes],
    ) -> None:
        self._ambassador = ambassador
        self.route = route
        self.startup = startup
        self.client = client
        self.client_address = client_address
        self._take_client_pending = take_client_pending
        self.server: HostPort | None = None
        self._server_transport: asyncio.Transport | None = None
        self._link: ServerLink | None = None
        self._client_relay: Relay | None = None
        self._server_relay: Relay | None = None
        self.backend_key: tuple[int, bytes] | None = None
        self.opened = time.monotonic()
        self.closed = False
        self.opening: asyncio.Task[None] | None = None
        """The task that connects and logs in, cancelled if the client leaves first."""

    def client_gone(self) -> bool:
        """Closed meanwhile (the client hung up, or a drain ended it)."""
        return self.closed

    @property
    def login_user(self) -> str:
        return self.route.user or self.startup.user

    @property
    def bytes_from_client(self) -> int:
        return self._client_relay.count if self._client_relay else 0

    @property
    def bytes_from_server(self) -> int:
        return self._server_relay.count if self._server_relay else 0

    # -- connecting ----------------------------------------------------------

    async def connect(self, servers: Sequence[HostPort], connect_timeout: float) -> bool:
        """Dial the servers in turn until one answers the start-up packet
        within `connect_timeout`; False (and the client refused) when none does."""
        ambassador, route = self._ambassador, self.route
        packet = encode_startup_message(
            server_parameters(self.startup, route), self.startup.version
        )
        context = ambassador.tls_context(route)
        loop = asyncio.get_running_loop()
        last_error = ""
        for server in servers:
            if self.client_gone():
                return False
            started = loop.time()
            try:
                async with asyncio.timeout(connect_timeout):
                    transport, link = await dial(server, route.tls, context)
                    try:
                        transport.write(packet)
                        await link.wait_message()
                    except BaseException:
                        transport.abort()
                        raise
            except TimeoutError:
                error = DialError("timeout", f"{server} did not answer within {connect_timeout:g}s")
            except ServerClosed:
                error = DialError("closed", f"{server} closed the connection during start-up")
            except DialError as exc:
                error = exc
            else:
                ambassador.metrics.connect_seconds.labels(str(server)).observe(
                    loop.time() - started
                )
                if self.client_gone():
                    transport.abort()
                    return False
                self.server, self._server_transport, self._link = server, transport, link
                return True
            last_error = str(error)
            ambassador.server_failed(route, server, error)
        if self.client_gone():
            return False
        ambassador.refuse(
            self.client,
            "08006",
            f'pg-ambassador cannot connect to a server for database "{self.startup.database}"',
            detail=last_error,
            client=self.client_address,
        )
        self.close("no server", count=False)
        return False

    async def login(self) -> None:
        """Relay the server's start-up messages to the client until
        ReadyForQuery (or an error), logging in for the client when the route
        injects credentials; then switch both sides to relaying."""
        link = self._link
        assert link is not None
        pending = bytearray()
        scram: ScramSha256Client | None = None
        try:
            while True:
                if pending and not link.has_message():
                    self._to_client(pending)
                    pending.clear()
                kind, raw = await link.next_message()
                if kind == b"R" and self.route.injects_credentials:
                    code, data = parse_authentication(raw[5:])
                    if code != AUTH_OK:
                        scram = self._authenticate(code, data, scram)
                        continue
                elif kind == b"K":
                    self.backend_key = parse_backend_key_data(raw[5:])
                    self._ambassador.remember_backend(self)
                elif kind == b"E":
                    self._log_server_refusal(raw)
                pending += raw
                if kind in (b"Z", b"E"):
                    break
        except ServerClosed:
            if pending:
                self._to_client(pending)
            if self._client_relay is None:
                self._refuse("08006", f"server {self.server} closed the connection during start-up")
            self.close("server closed")
            return
        except ProtocolViolation as exc:
            self._refuse("08P01", f"server {self.server} broke the protocol during start-up: {exc}")
            return
        except LoginRefused as exc:
            self._refuse(exc.sqlstate, str(exc))
            return
        self._to_client(pending + link.take_buffer())
        self._start_relaying()

    def _authenticate(
        self, code: int, data: bytes, scram: ScramSha256Client | None
    ) -> ScramSha256Client | None:
        """Answer one authentication request of the server; the SCRAM state
        to keep for the next one."""
        transport = self._server_transport
        assert transport is not None
        if code == AUTH_SASL_FINAL:
            if scram is None:
                raise LoginRefused(
                    "08P01", f"server {self.server} ended a SCRAM exchange never begun"
                )
            try:
                scram.verify_server_final(data)
            except AuthenticationFailed as exc:
                raise LoginRefused(
                    SQLSTATE_INVALID_AUTHORIZATION,
                    f"server {self.server} failed SCRAM verification: {exc}",
                ) from None
            return None
        password = self._password()
        if code == AUTH_CLEARTEXT:
            transport.write(password_message(password.encode()))
        elif code == AUTH_MD5:
            transport.write(password_message(md5_password(self.login_user, password, data[:4])))
        elif code == AUTH_SASL:
            mechanisms = parse_sasl_mechanisms(data)
            if SCRAM_SHA_256 not in mechanisms:
                raise LoginRefused(
                    SQLSTATE_INVALID_AUTHORIZATION,
                    f"server {self.server} offers SASL mechanisms {', '.join(mechanisms)}; "
                    f"pg-ambassador can do {SCRAM_SHA_256}",
                )
            scram = ScramSha256Client(password)
            transport.write(sasl_initial_response(SCRAM_SHA_256, scram.client_first()))
        elif code == AUTH_SASL_CONTINUE and scram is not None:
            try:
                transport.write(sasl_response(scram.client_final(data)))
            except AuthenticationFailed as exc:
                raise LoginRefused(
                    SQLSTATE_INVALID_AUTHORIZATION, f"server {self.server}: {exc}"
                ) from None
        else:
            raise LoginRefused(
                SQLSTATE_INVALID_AUTHORIZATION,
                f"server {self.server} asks for authentication method {code}, which "
                "pg-ambassador cannot perform for the client",
            )
        return scram

    def _password(self) -> str:
        path = self.route.password_file
        if path is None:
            raise LoginRefused(
                SQLSTATE_INVALID_AUTHORIZATION,
                f'server {self.server} asks for a password for user "{self.login_user}", '
                f"and route {self.route.name!r} has no password_file",
            )
        try:
            return read_secret_file(path)
        except OSError as exc:
            raise LoginRefused(
                SQLSTATE_INVALID_AUTHORIZATION,
                f"pg-ambassador cannot read the password file of route {self.route.name!r}: "
                f"{exc.strerror}",
            ) from None

    def _log_server_refusal(self, raw: bytes) -> None:
        error = parse_error_fields(raw[5:])
        log.warning(
            "server refused the login",
            extra=fields(
                route=self.route.name,
                server=str(self.server),
                user=self.login_user,
                sqlstate=error.get("C", "?"),
                error=error.get("M", ""),
            ),
        )

    def _refuse(self, sqlstate: str, message: str) -> None:
        self._ambassador.refuse(
            self.client,
            sqlstate,
            message,
            client=self.client_address,
            database=self.startup.database,
        )
        self.close("refused", count=False)

    def _to_client(self, data: bytes | bytearray) -> None:
        if self._client_relay is None:
            server = self._server_transport
            assert server is not None
            self._client_relay = Relay(self, "client", server)
            self.client.set_protocol(self._client_relay)
            if pending := self._take_client_pending():
                server.write(pending)
        if data:
            self.client.write(bytes(data))

    def _start_relaying(self) -> None:
        server = self._server_transport
        assert server is not None
        if server.is_closing():
            self.close("server closed")
            return
        self._server_relay = Relay(self, "server", self.client)
        server.set_protocol(self._server_relay)

    # -- closing -------------------------------------------------------------

    def close(self, reason: str, *, abort: bool = False, count: bool = True) -> None:
        """Close both sockets (flushing what is queued, unless `abort`)."""
        if self.closed:
            return
        self.closed = True
        for transport in (self.client, self._server_transport):
            if transport is not None:
                transport.abort() if abort else transport.close()
        if self.opening is not None and self.opening is not asyncio.current_task():
            self.opening.cancel()
        self._ambassador.session_closed(self, reason, logged=count)
