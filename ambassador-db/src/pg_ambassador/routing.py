"""Choosing the server for a new connection, from the last health checks. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from patterns_common.cli import HostPort

from .config import Target

ServerState = Literal["unknown", "up", "down"]
Role = Literal["primary", "replica", "unknown"]

SQLSTATE_CONNECTION_FAILURE = "08006"
SQLSTATE_CANNOT_CONNECT_NOW = "57P03"


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """The result of a server's last health check. `up` with role `unknown`
    means it answered but refused the check's login, so its role is unknown."""

    state: ServerState = "unknown"
    role: Role = "unknown"
    error: str | None = None
    checked_at: float | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    sqlstate: str
    message: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """Servers to try in order; empty with `refusal` set when there are none,
    and `pending` while some candidates have not been checked yet."""

    servers: tuple[HostPort, ...] = ()
    refusal: Refusal | None = None
    pending: bool = False


def eligible(target: Target, status: ServerStatus) -> bool:
    if status.state != "up":
        return False
    return target == "any" or status.role == target


def select(
    target: Target,
    database: str,
    candidates: Sequence[tuple[HostPort, ServerStatus]],
    turn: int,
) -> Selection:
    """The healthy servers of the wanted role. A primary is taken in the
    configured order (there should be one); replicas and `any` take turns,
    starting at `turn`. A server that failed its last check is never chosen.
    When no server is known to have the role but some answered the check
    without letting its account in (role unknown), those are tried: the
    server's own login error then tells the client what is wrong."""
    chosen = [server for server, status in candidates if eligible(target, status)]
    if not chosen:
        chosen = [
            server
            for server, status in candidates
            if status.state == "up" and status.role == "unknown"
        ]
    if chosen:
        if target != "primary":
            start = turn % len(chosen)
            chosen = chosen[start:] + chosen[:start]
        return Selection(servers=tuple(chosen))
    if any(status.state == "unknown" for _, status in candidates):
        return Selection(
            refusal=Refusal(
                SQLSTATE_CONNECTION_FAILURE,
                f'no server for database "{database}" has passed a health check yet',
            ),
            pending=True,
        )
    detail = "; ".join(f"{server}: {_describe(status)}" for server, status in candidates)
    if any(status.state == "up" for _, status in candidates):
        return Selection(
            refusal=Refusal(
                SQLSTATE_CANNOT_CONNECT_NOW,
                f'no {target} server is available for database "{database}"',
                detail,
            )
        )
    return Selection(
        refusal=Refusal(
            SQLSTATE_CONNECTION_FAILURE,
            f'no healthy server for database "{database}"',
            detail,
        )
    )


def _describe(status: ServerStatus) -> str:
    if status.state == "up":
        return f"up, {status.role}" if status.error is None else f"up ({status.error})"
    return f"{status.state}" + (f" ({status.error})" if status.error else "")
