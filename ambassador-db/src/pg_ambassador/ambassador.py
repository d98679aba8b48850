"""The service: admits client connections to routes, tracks sessions for
cancel routing and draining, and applies reloaded settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from patterns_common.cli import HostPort
from patterns_common.logsetup import fields

from .config import Route, Settings
from .health import CheckTarget, HealthMonitor, check_target
from .metrics import DIRECTIONS, Metrics, ServerView
from .protocol import CancelRequest, StartupMessage, encode_cancel_request, error_response
from .proxy import Session
from .routing import Selection, select
from .tls import client_context
from .upstream import DialError, ServerClosed, dial

log = logging.getLogger(__name__)

SQLSTATE_NO_ROUTE = "3D000"
SQLSTATE_TOO_MANY_CONNECTIONS = "53300"
SQLSTATE_SHUTTING_DOWN = "57P01"


class Ambassador:
    def __init__(self, settings: Settings, metrics: Metrics, health: HealthMonitor) -> None:
        self.metrics = metrics
        self.health = health
        self.settings = settings
        self.sessions: set[Session] = set()
        self.draining = False
        self._contexts: dict[str, ssl.SSLContext | None] = {}
        self._turns: dict[str, int] = {}
        self._backends: dict[tuple[int, bytes], Session] = {}
        self._closed_bytes: dict[tuple[str, str], int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.apply(settings)
        metrics.add_live_collector(self.byte_totals, self.server_views)

    # -- settings ------------------------------------------------------------

    def apply(self, settings: Settings) -> None:
        """Use `settings` for new connections; sessions in progress keep theirs."""
        self._contexts = {
            name: client_context(route.tls, route.ca_file)
            for name, route in settings.routes.items()
        }
        self.settings = settings
        self.health.reconcile(settings.health, self._check_targets())

    def _check_targets(self) -> Iterator[CheckTarget]:
        for route in self.settings.routes.values():
            for server in route.servers:
                yield self.check_target(route, server)

    def check_target(self, route: Route, server: HostPort) -> CheckTarget:
        return check_target(route, server, self.settings.health)

    def tls_context(self, route: Route) -> ssl.SSLContext | None:
        if route.name in self._contexts and self.settings.routes.get(route.name) == route:
            return self._contexts[route.name]
        return client_context(route.tls, route.ca_file)  # a session from before a reload

    # -- admission -----------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def admit(
        self,
        client: asyncio.Transport,
        client_address: str,
        startup: StartupMessage,
        take_pending: Callable[[], bytes],
    ) -> Session | None:
        """Decide what to do with a client's StartupMessage; refusals are
        sent at once, a session is opened in a task of its own (and returned,
        so that the client's hanging up before the relay starts can end it)."""
        database = startup.database
        refusal_fields = {"client": client_address, "database": database, "user": startup.user}
        if self.draining:
            self.refuse(
                client,
                SQLSTATE_SHUTTING_DOWN,
                f'pg-ambassador is shutting down; connect again for database "{database}"',
                **refusal_fields,
            )
            return None
        route = self.settings.route_for(database)
        if route is None:
            self.refuse(
                client,
                SQLSTATE_NO_ROUTE,
                f'pg-ambassador has no route for database "{database}"',
                hint=f"Routes: {', '.join(sorted(self.settings.routes))}.",
                **refusal_fields,
            )
            return None
        limit = self.settings.limits.max_client_connections
        if len(self.sessions) >= limit:
            self.refuse(
                client,
                SQLSTATE_TOO_MANY_CONNECTIONS,
                f"too many connections to pg-ambassador (limit {limit}); "
                f'cannot open database "{database}"',
                **refusal_fields,
            )
            return None
        session = Session(self, route, startup, client, client_address, take_pending)
        self.sessions.add(session)
        self._idle.clear()
        self.metrics.opened.labels(route.name).inc()
        self.metrics.active.labels(route.name).inc()
        session.opening = self.spawn(self._open(session))
        return session

    async def _open(self, session: Session) -> None:
        route = session.route
        selection = self._select(route, session.startup.database)
        if selection.pending:
            targets = [self.check_target(route, server) for server in route.servers]
            await self.health.wait_checked(targets, self.settings.limits.connect_timeout)
            selection = self._select(route, session.startup.database)
        if selection.refusal is not None:
            refusal = selection.refusal
            self.refuse(
                session.client,
                refusal.sqlstate,
                refusal.message,
                detail=refusal.detail,
                client=session.client_address,
                database=session.startup.database,
            )
            session.close("no server", count=False)
            return
        if session.closed:
            return
        if await session.connect(selection.servers, self.settings.limits.connect_timeout):
            await session.login()

    def _select(self, route: Route, database: str) -> Selection:
        candidates = [
            (server, self.health.status(self.check_target(route, server)))
            for server in route.servers
        ]
        turn = self._turns.get(route.name, 0)
        self._turns[route.name] = turn + 1
        return select(route.target, database, candidates, turn)

    def server_failed(self, route: Route, server: HostPort, error: DialError) -> None:
        self.metrics.connect_failures.labels(str(server), error.reason).inc()
        self.health.report_failure(self.check_target(route, server), str(error))
        log.warning(
            "cannot connect to server",
            extra=fields(
                route=route.name, server=str(server), reason=error.reason, error=str(error)
            ),
        )

    def refuse(
        self,
        transport: asyncio.Transport,
        sqlstate: str,
        message: str,
        *,
        detail: str | None = None,
        hint: str | None = None,
        **context: object,
    ) -> None:
        """Send a FATAL ErrorResponse and close: psql prints the message."""
        self.metrics.refusals.labels(sqlstate).inc()
        log.warning(
            "refused a connection",
            extra=fields(sqlstate=sqlstate, reason=message, **context, detail=detail or ""),
        )
        if not transport.is_closing():
            transport.write(error_response(sqlstate, message, detail=detail, hint=hint))
            transport.close()

    # -- sessions --------------------------------------------------------------

    def remember_backend(self, session: Session) -> None:
        if session.backend_key is not None:
            self._backends[session.backend_key] = session

    def session_closed(self, session: Session, reason: str, *, logged: bool = True) -> None:
        self.sessions.discard(session)
        if not self.sessions:
            self._idle.set()
        if session.backend_key is not None and self._backends.get(session.backend_key) is session:
            del self._backends[session.backend_key]
        route = session.route.name
        self.metrics.active.labels(route).dec()
        for direction, count in zip(
            DIRECTIONS, (session.bytes_from_client, session.bytes_from_server), strict=True
        ):
            key = (route, direction)
            self._closed_bytes[key] = self._closed_bytes.get(key, 0) + count
        if logged:
            log.info(
                "connection closed",
                extra=fields(
                    route=route,
                    server=str(session.server),
                    client=session.client_address,
                    database=session.startup.database,
                    user=session.login_user,
                    duration=time.monotonic() - session.opened,
                    bytes_from_client=session.bytes_from_client,
                    bytes_from_server=session.bytes_from_server,
                    reason=reason,
                ),
            )

    def byte_totals(self) -> Iterator[tuple[str, str, int]]:
        totals = dict(self._closed_bytes)
        for session in self.sessions:
            for direction, count in zip(
                DIRECTIONS, (session.bytes_from_client, session.bytes_from_server), strict=True
            ):
                key = (session.route.name, direction)
                totals[key] = totals.get(key, 0) + count
        for (route, direction), count in sorted(totals.items()):
            yield route, direction, count

    def server_views(self) -> Iterator[ServerView]:
        for route in self.settings.routes.values():
            for server in route.servers:
                status = self.health.status(self.check_target(route, server))
                yield ServerView(route.name, str(server), status)

    # -- cancel ----------------------------------------------------------------

    def cancel(self, client: asyncio.Transport, request: CancelRequest) -> None:
        """Send the request to the server holding that backend; like the
        server, never answer, and close once it is delivered."""
        session = self._backends.get(request.key)
        if session is None or session.server is None:
            self.metrics.cancels.labels("unknown").inc()
            log.info("cancel request for an unknown session", extra=fields(pid=request.pid))
            client.close()
            return
        self.spawn(self._forward_cancel(client, session, request))

    async def _forward_cancel(
        self, client: asyncio.Transport, session: Session, request: CancelRequest
    ) -> None:
        server, route = session.server, session.route
        assert server is not None
        timeout = self.settings.limits.connect_timeout
        transport: asyncio.Transport | None = None
        try:
            async with asyncio.timeout(timeout):
                transport, link = await dial(server, route.tls, self.tls_context(route))
                transport.write(encode_cancel_request(request.pid, request.secret))
                with contextlib.suppress(ServerClosed):
                    await link.read_byte()  # the server answers by closing
        except (DialError, TimeoutError) as exc:
            self.metrics.cancels.labels("failed").inc()
            log.warning(
                "cannot forward a cancel request",
                extra=fields(server=str(server), pid=request.pid, error=str(exc) or "timeout"),
            )
        else:
            self.metrics.cancels.labels("forwarded").inc()
            log.info(
                "forwarded a cancel request",
                extra=fields(route=route.name, server=str(server), pid=request.pid),
            )
        finally:
            if transport is not None:
                transport.close()
            client.close()

    # -- shutdown --------------------------------------------------------------

    async def drain(self, drain_timeout: float) -> None:
        """Refuse new connections; let sessions finish for up to `drain_timeout`,
        then close the rest."""
        self.draining = True
        self.metrics.draining.set(1)
        log.info(
            "draining: new connections are refused",
            extra=fields(sessions=len(self.sessions), drain_timeout=drain_timeout),
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_timeout):
                await self._idle.wait()
        if self.sessions:
            log.warning(
                "drain timeout: closing the sessions still open",
                extra=fields(sessions=len(self.sessions)),
            )
        for session in list(self.sessions):
            session.close("shutdown", abort=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
