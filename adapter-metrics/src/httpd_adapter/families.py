"""A scrape's outcome as Prometheus metric families. Pure.

Names, types, label names, label values and HELP texts are apache_exporter's
(0.10 to 1.1), so its dashboards and alerts work unchanged. The families are
built anew for every scrape from that scrape's snapshot alone: a key that
vanished, a balancer member that was removed or an old version label cannot
linger. A key that is absent omits just its own series.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .status import StatusSnapshot


@dataclass(frozen=True, slots=True)
class ScrapeOutcome:
    """What one scrape of a status page gave."""

    snapshot: StatusSnapshot | None
    """None when the page could not be fetched or was not a status page."""
    duration: float
    """Seconds from the start of the request to the parsed snapshot."""
    failures_total: int
    """Failed scrapes of this target so far, this one included."""
    error: str | None = None
    """Why there is no snapshot: `<reason>: <what happened>`."""

    @property
    def up(self) -> bool:
        return self.snapshot is not None


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _labelled(
    family: GaugeMetricFamily | CounterMetricFamily,
    series: Sequence[tuple[str, float | None]],
) -> Iterator[Metric]:
    """`family` with one series per (label value, value) whose value is
    known; nothing when none is."""
    present = [(label, value) for label, value in series if value is not None]
    for label, value in present:
        family.add_metric([label], value)
    if present:
        yield family


def _sum(*values: float | None) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def status_families(snap: StatusSnapshot) -> Iterator[Metric]:
    """The apache_* families one snapshot supports, in apache_exporter's order."""
    version = snap.version_number
    if version is not None:
        yield _gauge("apache_version", "Apache server version", version)
    if snap.server_version is not None or snap.server_mpm is not None:
        info = GaugeMetricFamily(
            "apache_info", "Apache version information", labels=["version", "mpm"]
        )
        info.add_metric([snap.server_version or "UNKNOWN", snap.server_mpm or "UNKNOWN"], 1)
        yield info
    yield from _labelled(
        GaugeMetricFamily("apache_generation", "Apache restart generation", labels=["type"]),
        [("config", snap.config_generation), ("mpm", snap.mpm_generation)],
    )
    yield from _labelled(
        GaugeMetricFamily("apache_load", "Apache server load", labels=["interval"]),
        [("1min", snap.load1), ("5min", snap.load5), ("15min", snap.load15)],
    )
    if snap.total_accesses is not None:
        yield _counter(
            "apache_accesses_total", "Current total apache accesses (*)", snap.total_accesses
        )
    if snap.total_kilobytes is not None:
        yield _counter(
            "apache_sent_kilobytes_total", "Current total kbytes sent (*)", snap.total_kilobytes
        )
    if snap.total_duration_ms is not None:
        yield _counter(
            "apache_duration_ms_total",
            "Total duration of all registered requests in ms",
            snap.total_duration_ms,
        )
    yield from _labelled(
        CounterMetricFamily("apache_cpu_time_ms_total", "Apache CPU time", labels=["type"]),
        [
            ("user", _milliseconds(_sum(snap.cpu_user, snap.cpu_children_user))),
            ("system", _milliseconds(_sum(snap.cpu_system, snap.cpu_children_system))),
        ],
    )
    cpu_load = snap.cpu_load
    if cpu_load is None and snap.cpu_user is not None:
        # Apache prints CPULoad only when the CPU time is not zero.
        cpu_load = 0.0
    if cpu_load is not None:
        yield _gauge(
            "apache_cpuload",
            "The current percentage CPU used by each worker and in total by all workers "
            "combined (*)",
            cpu_load,
        )
    # ExtendedStatus Off drops Uptime; 2.4.13+ still gives ServerUptimeSeconds.
    uptime = snap.uptime if snap.uptime is not None else snap.server_uptime_seconds
    if uptime is not None:
        yield _counter("apache_uptime_seconds_total", "Current uptime in seconds (*)", uptime)
    yield from _labelled(
        GaugeMetricFamily("apache_workers", "Apache worker statuses", labels=["state"]),
        [
            ("busy", snap.busy_workers),
            ("idle", snap.idle_workers),
            ("graceful", snap.graceful_workers),
        ],
    )
    yield from _labelled(
        GaugeMetricFamily("apache_processes", "Apache process count", labels=["state"]),
        [("all", snap.processes), ("stopping", snap.stopping)],
    )
    yield from _labelled(
        GaugeMetricFamily("apache_connections", "Apache connection statuses", labels=["state"]),
        [
            ("total", snap.conns_total),
            ("writing", snap.conns_async_writing),
            ("keepalive", snap.conns_async_keep_alive),
            ("closing", snap.conns_async_closing),
            ("wait_io", snap.conns_async_wait_io),
        ],
    )
    if snap.scoreboard is not None:
        scoreboard = GaugeMetricFamily(
            "apache_scoreboard", "Apache scoreboard statuses", labels=["state"]
        )
        for state, count in snap.scoreboard.items():
            scoreboard.add_metric([state], count)
        yield scoreboard
    if snap.balancer_members:
        yield from _balancer_families(snap)


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _balancer_families(snap: StatusSnapshot) -> Iterator[Metric]:
    labels = ["balancer", "worker"]
    status = GaugeMetricFamily(
        "apache_proxy_balancer_status",
        "Apache Proxy Balancer Statuses",
        labels=["balancer", "worker", "status"],
    )
    accesses = CounterMetricFamily(
        "apache_proxy_balancer_accesses_total",
        "Apache Proxy Balancer Request Count",
        labels=labels,
    )
    busy = GaugeMetricFamily(
        "apache_proxy_balancer_busy", "Apache Proxy Balancer Active Requests", labels=labels
    )
    sent = CounterMetricFamily(
        "apache_proxy_balancer_request_kbytes_total",
        "Apache Proxy Balancer kilobytes sent to the member",
        labels=labels,
    )
    received = CounterMetricFamily(
        "apache_proxy_balancer_response_kbytes_total",
        "Apache Proxy Balancer kilobytes received from the member",
        labels=labels,
    )
    for member in snap.balancer_members:
        names = [member.balancer, member.worker]
        if member.status is not None:
            status.add_metric([*names, member.status], 1)
        for family, value in (
            (accesses, member.elected),
            (busy, member.busy),
            (sent, member.sent_kilobytes),
            (received, member.received_kilobytes),
        ):
            if value is not None:
                family.add_metric(names, value)
    yield from (family for family in (status, accesses, busy, sent, received) if family.samples)


def scrape_families(outcome: ScrapeOutcome) -> Iterator[Metric]:
    """Everything one scrape shows: up, the status families when it worked,
    and the scrape's own duration and failure count."""
    yield _gauge("apache_up", "Could the apache server be reached", 1 if outcome.up else 0)
    if outcome.snapshot is not None:
        yield from status_families(outcome.snapshot)
    yield _gauge(
        "apache_scrape_duration_seconds",
        "Time this scrape of Apache's status page took.",
        outcome.duration,
    )
    yield _counter(
        "apache_exporter_scrape_failures_total",
        "Number of errors while scraping apache.",
        outcome.failures_total,
    )


class ScrapeCollector:
    """A collector over one scrape's outcome: made per request, registered
    nowhere for longer than it takes to encode it."""

    def __init__(self, outcome: ScrapeOutcome) -> None:
        self._outcome = outcome

    def collect(self) -> Iterator[Metric]:
        return scrape_families(self._outcome)
