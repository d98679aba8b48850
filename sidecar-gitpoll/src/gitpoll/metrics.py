"""gitpoll's metrics, on a registry of its own."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.process_collector import ProcessCollector

from . import __version__

SYNC_RESULTS = ("success", "noop", "error")

_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        # `*_created` series double the output and no dashboard uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)
        Info("gitpoll_build", "Version of gitpoll.", registry=registry).info(
            {"version": __version__}
        )
        self.syncs = Counter(
            "gitpoll_syncs",
            "Syncs by result: success (a new commit published), noop, error.",
            ["result"],
            registry=registry,
        )
        self.sync_errors = Counter(
            "gitpoll_sync_errors",
            "Failed syncs by cause (unreachable, auth, not_found, ref_not_found, timeout, "
            "volume_full, volume_read_only, ...).",
            ["reason"],
            registry=registry,
        )
        self.sync_duration = Histogram(
            "gitpoll_sync_duration_seconds",
            "Time one sync took, by result.",
            ["result"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "gitpoll_last_success_timestamp_seconds",
            "Unix time of the last sync that succeeded (a noop included).",
            registry=registry,
        )
        self.last_publish = Gauge(
            "gitpoll_last_publish_timestamp_seconds",
            "Unix time a new commit was last published.",
            registry=registry,
        )
        self.consecutive_failures = Gauge(
            "gitpoll_consecutive_failures",
            "Failed syncs since the last successful one.",
            registry=registry,
        )
        self.commit = Info("gitpoll_commit", "The published commit.", ["ref"], registry=registry)
        self.hook_runs = Counter(
            "gitpoll_hook_runs",
            "Runs of --exec-on-sync (hook=exec) and --notify-url (hook=notify), by result.",
            ["hook", "result"],
            registry=registry,
        )
        self.webhook_requests = Counter(
            "gitpoll_webhook_requests",
            "POST /sync requests: accepted (a sync was queued) or rejected.",
            ["result"],
            registry=registry,
        )
        self.checkouts_removed = Counter(
            "gitpoll_checkouts_removed",
            "Retired checkouts deleted after their grace period.",
            registry=registry,
        )
        for result in SYNC_RESULTS:
            self.syncs.labels(result)
            self.sync_duration.labels(result)
        for result in ("accepted", "rejected"):
            self.webhook_requests.labels(result)
