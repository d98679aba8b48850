"""mod_status's machine-readable page (`/server-status?auto`) as a frozen snapshot.

Pure: text in, `StatusSnapshot` out. The page is a first line with the
server's name, then `Key: value` lines whose set depends on the Apache
version, the MPM, `ExtendedStatus` and the modules loaded. A key that is
absent leaves its field None; a value that is not a number leaves its field
None too and is recorded in `problems`, so one bad line costs one metric,
never the whole page. Nothing in the text makes `parse_status` raise anything
but `NotStatusPage`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

# The scoreboard's characters and the `state` label apache_exporter gives
# each; anything else is counted as UNKNOWN_STATE, never as a label of its own.
SCOREBOARD_STATES: Mapping[str, str] = {
    "_": "idle",
    "S": "startup",
    "R": "read",
    "W": "reply",
    "K": "keepalive",
    "D": "dns",
    "C": "closing",
    "L": "logging",
    "G": "graceful_stop",
    "I": "idle_cleanup",
    ".": "open_slot",
}
UNKNOWN_STATE = "unknown"

# Keys every mod_status since 2.2 prints, whatever the MPM and ExtendedStatus:
# a body with none of them is some other page.
_ALWAYS_PRESENT = ("BusyWorkers", "IdleWorkers", "Scoreboard")

# Decimal numbers as Apache prints them with %d, %g and %.3f (`.3`, `568.889`,
# `1e+06`); Python's float() would also take `nan`, `inf` and `1_000`.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_VERSION = re.compile(r"Apache/([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})")
# Bounded, because int() refuses strings of more than 4,300 digits.
_BALANCER_KEY = re.compile(r"ProxyBalancer\[([0-9]{1,9})\](?:Worker\[([0-9]{1,9})\])?([A-Za-z]+)")


class NotStatusPage(ValueError):
    """The body is not a `?auto` status page; the message says what it is."""


@dataclass(frozen=True, slots=True)
class BalancerMember:
    """One worker of a mod_proxy_balancer balancer (`ProxyStatus On`)."""

    balancer: str
    worker: str
    status: str | None = None
    elected: float | None = None
    busy: float | None = None
    sent_kilobytes: float | None = None
    received_kilobytes: float | None = None


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """One reading of the status page. Numbers are as Apache printed them
    (CPU times in seconds, durations in milliseconds, traffic in kB)."""

    server_version: str | None = None
    server_mpm: str | None = None
    config_generation: float | None = None
    mpm_generation: float | None = None
    server_uptime_seconds: float | None = None
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    total_accesses: float | None = None
    total_kilobytes: float | None = None
    total_duration_ms: float | None = None
    cpu_user: float | None = None
    cpu_system: float | None = None
    cpu_children_user: float | None = None
    cpu_children_system: float | None = None
    cpu_load: float | None = None
    uptime: float | None = None
    busy_workers: float | None = None
    graceful_workers: float | None = None
    idle_workers: float | None = None
    processes: float | None = None
    stopping: float | None = None
    conns_total: float | None = None
    conns_async_wait_io: float | None = None
    conns_async_writing: float | None = None
    conns_async_keep_alive: float | None = None
    conns_async_closing: float | None = None
    scoreboard: Mapping[str, int] | None = None
    """Slots per `state` label: all of SCOREBOARD_STATES, plus UNKNOWN_STATE
    when some character was not one of them."""
    balancer_members: tuple[BalancerMember, ...] = ()
    problems: tuple[str, ...] = ()
    """One message per value that could not be read, naming its key."""

    @property
    def version_number(self) -> float | None:
        """`Apache/2.4.71 (Debian)` as 2.04071, apache_exporter's encoding;
        None when the version is not a full x.y.z (`ServerTokens Prod`)."""
        if self.server_version is None:
            return None
        match = _VERSION.match(self.server_version)
        if match is None:
            return None
        major, minor, patch = (int(part) for part in match.groups())
        return float(f"{major}.{minor:02d}{patch:03d}")


# Snapshot field for each numeric `?auto` key.
NUMERIC_KEYS: Mapping[str, str] = {
    "ParentServerConfigGeneration": "config_generation",
    "ParentServerMPMGeneration": "mpm_generation",
    "ServerUptimeSeconds": "server_uptime_seconds",
    "Load1": "load1",
    "Load5": "load5",
    "Load15": "load15",
    "Total Accesses": "total_accesses",
    "Total kBytes": "total_kilobytes",
    "Total Duration": "total_duration_ms",
    "CPUUser": "cpu_user",
    "CPUSystem": "cpu_system",
    "CPUChildrenUser": "cpu_children_user",
    "CPUChildrenSystem": "cpu_children_system",
    "CPULoad": "cpu_load",
    "Uptime": "uptime",
    "BusyWorkers": "busy_workers",
    "GracefulWorkers": "graceful_workers",
    "IdleWorkers": "idle_workers",
    "Processes": "processes",
    "Stopping": "stopping",
    "ConnsTotal": "conns_total",
    "ConnsAsyncWaitIO": "conns_async_wait_io",
    "ConnsAsyncWriting": "conns_async_writing",
    "ConnsAsyncKeepAlive": "conns_async_keep_alive",
    "ConnsAsyncClosing": "conns_async_closing",
}

# Balancer member field for each numeric ProxyBalancer[i]Worker[j]<key>.
_BALANCER_NUMBERS: Mapping[str, str] = {
    "Elected": "elected",
    "Busy": "busy",
    "Sent": "sent_kilobytes",
    "Rcvd": "received_kilobytes",
}


def parse_number(text: str) -> float | None:
    """A finite decimal number, or None."""
    if _NUMBER.fullmatch(text) is None:
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def count_scoreboard(board: str) -> dict[str, int]:
    counts = {state: board.count(char) for char, state in SCOREBOARD_STATES.items()}
    unknown = len(board) - sum(counts.values())
    if unknown:
        counts[UNKNOWN_STATE] = unknown
    return counts


def split_lines(text: str) -> dict[str, str]:
    """`Key: value` pairs, values stripped; for a key given twice (2.4.35 to
    2.4.57 print BusyWorkers and IdleWorkers twice) the last one wins."""
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


def parse_status(text: str) -> StatusSnapshot:
    """Read a `?auto` page. Raises NotStatusPage for an empty body, an HTML
    page (the URL lacks `?auto`) or text without mod_status's keys."""
    stripped = text.lstrip()
    if not stripped:
        raise NotStatusPage("an empty body")
    if stripped.startswith("<"):
        raise NotStatusPage("an HTML page, not the ?auto format")
    pairs = split_lines(text)
    if not any(key in pairs for key in _ALWAYS_PRESENT):
        raise NotStatusPage("no mod_status keys (BusyWorkers, IdleWorkers, Scoreboard)")

    problems: list[str] = []
    values: dict[str, object] = {}
    for key, field_name in NUMERIC_KEYS.items():
        raw = pairs.get(key)
        if raw is None:
            continue
        number = parse_number(raw)
        if number is None:
            problems.append(f"{key}: {_shown(raw)} is not a number")
        else:
            values[field_name] = number
    board = pairs.get("Scoreboard")
    return StatusSnapshot(
        server_version=pairs.get("ServerVersion") or None,
        server_mpm=pairs.get("ServerMPM") or None,
        scoreboard=count_scoreboard(board) if board is not None else None,
        balancer_members=_balancer_members(pairs, problems),
        problems=tuple(problems),
        **values,  # type: ignore[arg-type]
    )


def _balancer_members(pairs: Mapping[str, str], problems: list[str]) -> tuple[BalancerMember, ...]:
    names: dict[int, str] = {}
    members: dict[tuple[int, int], dict[str, object]] = {}
    for key, value in pairs.items():
        if not key.startswith("ProxyBalancer["):
            continue
        match = _BALANCER_KEY.fullmatch(key)
        if match is None:
            continue
        balancer, worker, attribute = match.groups()
        if worker is None:
            if attribute == "Name":
                names[int(balancer)] = value
            continue
        member = members.setdefault((int(balancer), int(worker)), {})
        if attribute in ("Name", "Status"):
            member[attribute.lower()] = value
        elif attribute in _BALANCER_NUMBERS:
            # Sent and Rcvd carry a unit: `0K`.
            number = parse_number(value.removesuffix("K"))
            if number is None:
                problems.append(f"{key}: {_shown(value)} is not a number")
            else:
                member[_BALANCER_NUMBERS[attribute]] = number
    result = []
    for (balancer, _), fields in sorted(members.items()):
        balancer_name = names.get(balancer)
        worker_name = fields.pop("name", None)
        # Without both names the series could not be told apart: skipped.
        if balancer_name and isinstance(worker_name, str) and worker_name:
            result.append(BalancerMember(balancer_name, worker_name, **fields))  # type: ignore[arg-type]
    return tuple(result)


def _shown(value: str, limit: int = 40) -> str:
    """A value quoted for a log line, cut short: the body is untrusted."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
