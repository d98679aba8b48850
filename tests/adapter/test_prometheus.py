"""A real Prometheus scraping the adapter, as in production."""

from __future__ import annotations

from pathlib import Path

from support.apache import ApacheServer
from support.httpd_adapter import ExporterFactory
from support.processes import ProcessGroup
from support.prometheus import PrometheusServer, scrape_job
from support.wait import wait_until


def test_prometheus_sees_the_target_up_and_apache_up(
    exporters: ExporterFactory,
    apache_event: ApacheServer,
    processes: ProcessGroup,
    tmp_path: Path,
) -> None:
    adapter = exporters.start(
        "--scrape-uri",
        f"{apache_event.url}/server-status",
        "--allow-target",
        f"127.0.0.1:{apache_event.port}",
    )
    adapter_address = f"127.0.0.1:{adapter.port}"
    prometheus = PrometheusServer(
        processes,
        tmp_path / "prometheus",
        [
            scrape_job("apache", adapter_address),
            # The multi-target convention: one adapter, the Apache named per job.
            scrape_job("probe", adapter_address, "/probe", target=f"127.0.0.1:{apache_event.port}"),
        ],
    )

    def targets_up() -> list[dict[str, object]] | None:
        targets = prometheus.active_targets()
        healthy = [t for t in targets if t["health"] == "up"]
        return targets if len(targets) == 2 and len(healthy) == 2 else None

    wait_until(targets_up, 30, interval=0.5, message="both scrape targets up in Prometheus")

    def apache_up() -> dict[str, float] | None:
        rows = prometheus.query("apache_up")
        found = {labels["job"]: value for labels, value in rows}
        return found if found == {"apache": 1.0, "probe": 1.0} else None

    wait_until(apache_up, 30, interval=0.5, message="apache_up 1 for both jobs")
    # Counters arrive as counters: rate() over them works.
    wait_until(
        lambda: prometheus.query('rate(apache_accesses_total{job="apache"}[5s]) > 0'),
        30,
        interval=0.5,
        message="a rate of Apache accesses",
    )
    assert prometheus.query('apache_info{job="apache",mpm="event"}')
