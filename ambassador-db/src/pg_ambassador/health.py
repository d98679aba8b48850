"""Health checks: each server is probed with asyncpg on a timer, and the last
result is cached. Routing and /readyz read the cache; nothing probes inline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from ssl import SSLContext
from typing import Literal

import asyncpg

from patterns_common.cli import HostPort, read_secret_file
from patterns_common.logsetup import fields

from .config import Health, Route, TlsMode
from .routing import Role, ServerStatus
from .tls import client_context

log = logging.getLogger(__name__)

APPLICATION_NAME = "pg-ambassador health check"

# The server answered but would not let the check's account in: it is up, and
# its role cannot be known (routes with target `any` can still use it).
_LOGIN_REFUSED = (
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidCatalogNameError,
)


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """One server as one route sees it: its account and TLS setting."""

    server: HostPort
    user: str
    database: str
    password_file: Path | None
    tls: TlsMode
    ca_file: Path | None


def check_target(route: Route, server: HostPort, health: Health) -> CheckTarget:
    """A route with its own account is checked with it (on its own database
    when it names one), otherwise with the health section's account."""
    if route.user is not None or route.password_file is not None:
        user = route.user or health.user
        database = route.database or health.database
        password_file = route.password_file
    else:
        user, database, password_file = health.user, health.database, health.password_file
    return CheckTarget(server, user, database, password_file, route.tls, route.ca_file)


async def probe(target: CheckTarget, check_timeout: float) -> ServerStatus:
    """Connect, ask `pg_is_in_recovery()`, disconnect: the server's status now."""
    now = time.time()
    try:
        password = read_secret_file(target.password_file) if target.password_file else None
    except OSError as exc:
        return ServerStatus(
            "down", error=f"cannot read password file: {exc.strerror}", checked_at=now
        )
    ssl: SSLContext | Literal[False, "prefer"] | None = False
    if target.tls == "prefer":
        ssl = "prefer"
    elif target.tls != "disable":
        ssl = client_context(target.tls, target.ca_file)
    try:
        async with asyncio.timeout(check_timeout):
            connection = await asyncpg.connect(
                host=target.server.host,
                port=target.server.port,
                user=target.user,
                database=target.database,
                password=password,
                ssl=ssl,
                timeout=check_timeout,
                server_settings={"application_name": APPLICATION_NAME},
            )
            try:
                in_recovery = await connection.fetchval("SELECT pg_is_in_recovery()")
            finally:
                await connection.close(timeout=check_timeout)
    except _LOGIN_REFUSED as exc:
        return ServerStatus("up", "unknown", f"login refused: {exc}", now)
    except TimeoutError:
        return ServerStatus("down", error=f"no answer within {check_timeout:g}s", checked_at=now)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return ServerStatus("down", error=_error_text(exc), checked_at=now)
    role: Role = "replica" if in_recovery else "primary"
    return ServerStatus("up", role, None, now)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class HealthMonitor:
    """One checking task per CheckTarget; `reconcile` starts and stops them."""

    def __init__(self, health: Health) -> None:
        self._health = health
        self._status: dict[CheckTarget, ServerStatus] = {}
        self._tasks: dict[CheckTarget, asyncio.Task[None]] = {}
        self._wake: dict[CheckTarget, asyncio.Event] = {}
        self._checked: dict[CheckTarget, asyncio.Event] = {}

    def reconcile(self, health: Health, targets: Iterable[CheckTarget]) -> None:
        self._health = health
        wanted = set(targets)
        for target in list(self._tasks):
            if target not in wanted:
                self._tasks.pop(target).cancel()
                self._status.pop(target, None)
                self._wake.pop(target, None)
                self._checked.pop(target, None)
        for target in wanted - self._tasks.keys():
            self._status[target] = ServerStatus()
            self._wake[target] = asyncio.Event()
            self._checked[target] = asyncio.Event()
            self._tasks[target] = asyncio.create_task(self._run(target))

    def status(self, target: CheckTarget) -> ServerStatus:
        return self._status.get(target, ServerStatus())

    async def wait_checked(self, targets: Iterable[CheckTarget], wait_limit: float) -> None:
        """Until each target has been checked once, or `wait_limit` seconds pass."""
        waiters = [self._checked[target].wait() for target in targets if target in self._checked]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_limit):
                await asyncio.gather(*waiters)

    def report_failure(self, target: CheckTarget, error: str) -> None:
        """A session could not reach the server: stop sending new connections
        there now, and check it again at once rather than at the next tick."""
        if target in self._tasks and self._status[target].state == "up":
            self._record(target, ServerStatus("down", error=error, checked_at=time.time()))
        if target in self._wake:
            self._wake[target].set()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, target: CheckTarget) -> None:
        wake = self._wake[target]
        while True:
            wake.clear()
            self._record(target, await probe(target, self._health.timeout))
            self._checked[target].set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health.interval):
                    await wake.wait()

    def _record(self, target: CheckTarget, status: ServerStatus) -> None:
        previous = self._status.get(target, ServerStatus())
        self._status[target] = status
        if (previous.state, previous.role, previous.error) == (
            status.state,
            status.role,
            status.error,
        ):
            return
        common = {"server": str(target.server), "user": target.user, "state": status.state}
        if status.state == "up" and status.error is None:
            log.info("server is up", extra=fields(**common, role=status.role))
        elif status.state == "up":
            log.warning(
                "server is up but refuses the health check's login, so its role is unknown",
                extra=fields(**common, error=status.error),
            )
        else:
            log.warning("server is down", extra=fields(**common, error=status.error))
