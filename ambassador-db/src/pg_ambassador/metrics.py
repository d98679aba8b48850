"""pg-ambassador's metrics, on a registry of its own.

Events that happen once per connection (opened, refused, connected) update
ordinary counters. Bytes are counted by the relays in plain integers, which
the collector below adds up at scrape time: no metric call per packet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .routing import ServerStatus

DIRECTIONS = ("client_to_server", "server_to_client")
ROLES = ("primary", "replica", "unknown")
SQLSTATES = ("3D000", "08006", "57P03", "53300", "57P01", "08P01", "28000")

_CONNECT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class ServerView:
    route: str
    server: str
    status: ServerStatus


class _LiveCollector(Collector):
    """Families computed from the ambassador's state at each scrape."""

    def __init__(
        self,
        byte_totals: Callable[[], Iterable[tuple[str, str, int]]],
        servers: Callable[[], Iterable[ServerView]],
    ) -> None:
        self._byte_totals = byte_totals
        self._servers = servers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        transferred = CounterMetricFamily(
            "pg_ambassador_bytes",
            "Bytes relayed, by route and direction (client_to_server, server_to_client).",
            labels=["route", "direction"],
        )
        for route, direction, count in self._byte_totals():
            transferred.add_metric([route, direction], count)
        yield transferred
        up = GaugeMetricFamily(
            "pg_ambassador_server_up",
            "1 when the server passed its last health check, as the route checks it.",
            labels=["route", "server"],
        )
        role = GaugeMetricFamily(
            "pg_ambassador_server_role",
            "1 for the role the last health check found (primary, replica, unknown).",
            labels=["route", "server", "role"],
        )
        for view in self._servers():
            up.add_metric([view.route, view.server], 1.0 if view.status.state == "up" else 0.0)
            for name in ROLES:
                current = view.status.state == "up" and view.status.role == name
                role.add_metric([view.route, view.server, name], 1.0 if current else 0.0)
        yield up
        yield role


class Metrics:
    def __init__(self) -> None:
        # `*_created` series double the output and no dashboard uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)
        Info("pg_ambassador_build", "Version of pg-ambassador.", registry=registry).info(
            {"version": version("pg-ambassador")}
        )
        self.active = Gauge(
            "pg_ambassador_client_connections_active",
            "Client connections being relayed (or connecting to a server) now, by route.",
            ["route"],
            registry=registry,
        )
        self.opened = Counter(
            "pg_ambassador_client_connections",
            "Client connections admitted to a route, by route.",
            ["route"],
            registry=registry,
        )
        self.refusals = Counter(
            "pg_ambassador_refusals",
            "Connections refused by pg-ambassador itself, by the SQLSTATE sent to the client.",
            ["sqlstate"],
            registry=registry,
        )
        self.connect_seconds = Histogram(
            "pg_ambassador_server_connect_seconds",
            "Time from dialling a server to its first answer (TCP, TLS, start-up), by server.",
            ["server"],
            buckets=_CONNECT_BUCKETS,
            registry=registry,
        )
        self.connect_failures = Counter(
            "pg_ambassador_server_connect_failures",
            "Dials that failed, by server and reason (refused, timeout, tls, closed, protocol).",
            ["server", "reason"],
            registry=registry,
        )
        self.cancels = Counter(
            "pg_ambassador_cancel_requests",
            "CancelRequests, by result: forwarded to the session's server, unknown key, failed.",
            ["result"],
            registry=registry,
        )
        self.reloads = Counter(
            "pg_ambassador_config_reloads",
            "Config reloads (SIGHUP or a changed file), by result: success or error.",
            ["result"],
            registry=registry,
        )
        self.draining = Gauge(
            "pg_ambassador_draining",
            "1 after SIGTERM, while sessions finish and new connections are refused.",
            registry=registry,
        )
        for sqlstate in SQLSTATES:
            self.refusals.labels(sqlstate)
        for result in ("forwarded", "unknown", "failed"):
            self.cancels.labels(result)
        for result in ("success", "error"):
            self.reloads.labels(result)

    def add_live_collector(
        self,
        byte_totals: Callable[[], Iterable[tuple[str, str, int]]],
        servers: Callable[[], Iterable[ServerView]],
    ) -> None:
        self.registry.register(_LiveCollector(byte_totals, servers))
