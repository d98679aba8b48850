"""Slow, broken and misleading upstreams: every scrape still answers, in time,
with apache_up 0, one log line naming the cause, and nothing stale."""

from __future__ import annotations

import threading
import time

import pytest

from httpd_adapter.handler import scrape_timeout
from support.bad_upstream import BadUpstream
from support.exposition import exposed_families, value
from support.httpd_adapter import Answer, Exporter, ExporterFactory, http_get
from support.net import free_port

from .pages import status_body

TIMEOUT = 2.0
# What a failed scrape may show: up, its duration, the failure counter, and
# the adapter's own process metrics; no apache_* family of the status page.
FAILED_SCRAPE_FAMILIES = {
    "apache_up",
    "apache_scrape_duration_seconds",
    "apache_exporter_scrape_failures_total",
}


def own_families(text: str) -> set[str]:
    return {
        name
        for name in exposed_families(text)
        if name.startswith("apache_") and name not in FAILED_SCRAPE_FAMILIES
    }


def timed_get(
    adapter: Exporter, path: str, headers: dict[str, str] | None = None
) -> tuple[Answer, float]:
    started = time.monotonic()
    answer = adapter.get(path, headers)
    return answer, time.monotonic() - started


@pytest.fixture
def adapter(exporters: ExporterFactory, bad_upstream: BadUpstream) -> Exporter:
    """An adapter whose /probe may scrape any page of the bad upstream."""
    return exporters.start(
        "--scrape-uri",
        bad_upstream.url("/page/status"),
        "--timeout",
        str(TIMEOUT),
        "--allow-target",
        f"127.0.0.1:{bad_upstream.port}",
    )


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/slow", "timeout: no complete answer within 2s"),
        ("/500", "http_status: answered 500"),
        ("/404", "http_status: answered 404"),
        ("/redirect", "redirect: answered 301"),
        ("/huge", "too_large"),
        ("/huge-announced", "too_large"),
        ("/html", "not_status_page: an HTML page"),
        ("/empty", "not_status_page: an empty body"),
        ("/garbage", "not_status_page: no mod_status keys"),
    ],
)
def test_a_misbehaving_upstream_gives_up_0_in_time_and_one_log_line(
    adapter: Exporter, bad_upstream: BadUpstream, path: str, reason: str
) -> None:
    answer, elapsed = timed_get(adapter, f"/probe?target={bad_upstream.url(path)}")
    assert answer.status == 200
    assert elapsed < TIMEOUT + 1.5, f"took {elapsed:.2f}s"
    assert value(answer.text, "apache_up") == 0
    assert value(answer.text, "apache_exporter_scrape_failures_total") == 1
    assert own_families(answer.text) == set()
    failures = [line for line in adapter.output().splitlines() if "scrape failed" in line]
    assert len(failures) == 1 and reason in failures[0], failures
    assert "Traceback" not in adapter.output()
    # The adapter goes on serving everyone else.
    assert value(adapter.metrics(), "apache_up") == 1


def test_a_refused_connection_is_up_0_and_counted(exporters: ExporterFactory) -> None:
    port = free_port()
    adapter = exporters.start("--scrape-uri", f"http://127.0.0.1:{port}/server-status")
    for expected_failures in (1, 2):
        text = adapter.metrics()
        assert value(text, "apache_up") == 0
        assert value(text, "apache_exporter_scrape_failures_total") == expected_failures
    assert f"refused: connection refused by 127.0.0.1:{port}" in adapter.output()
    assert "Traceback" not in adapter.output()


def test_prometheus_scrape_timeout_header_lowers_the_timeout(
    exporters: ExporterFactory, bad_upstream: BadUpstream
) -> None:
    adapter = exporters.start("--scrape-uri", bad_upstream.url("/slow"), "--timeout", "30")
    answer, elapsed = timed_get(adapter, "/metrics", {"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    assert value(answer.text, "apache_up") == 0
    assert elapsed < 3, f"took {elapsed:.2f}s with a 1.5 s scrape timeout"
    assert "no complete answer within 1s" in adapter.output()


def test_slow_scrapes_run_side_by_side_instead_of_piling_up(
    adapter: Exporter, bad_upstream: BadUpstream
) -> None:
    """apache_exporter serialises collections: its third scrape of a slow
    Apache waits for the first two. Here each one ends at its own timeout."""
    answers: list[tuple[Answer, float]] = []

    def scrape() -> None:
        answers.append(timed_get(adapter, f"/probe?target={bad_upstream.url('/slow')}"))

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(answers) == 4
    assert all(value(answer.text, "apache_up") == 0 for answer, _ in answers)
    assert time.monotonic() - started < TIMEOUT + 2


def test_a_malformed_number_skips_one_metric_and_counts_a_failure(
    adapter: Exporter, bad_upstream: BadUpstream
) -> None:
    page = status_body("status-2.4.71-event-balancer.txt")
    bad_upstream.pages["status"] = page.replace("Total kBytes: 5", "Total kBytes: 5,2")
    text = adapter.metrics()
    assert value(text, "apache_up") == 1
    assert "apache_sent_kilobytes_total" not in exposed_families(text)
    assert value(text, "apache_accesses_total") == 10
    assert value(text, "apache_workers", state="idle") == 74
    assert value(text, "apache_exporter_scrape_failures_total") == 1
    assert "Total kBytes: '5,2' is not a number" in adapter.output()


def test_nothing_stale_survives_a_change_of_page(
    adapter: Exporter, bad_upstream: BadUpstream
) -> None:
    first = exposed_families(adapter.metrics())
    assert first["apache_info"].label_values == {
        (("mpm", "event"), ("version", "Apache/2.4.71 (Debian)"))
    }
    assert "apache_proxy_balancer_status" in first
    # Another Apache answers at the same address: version, MPM, no balancer.
    bad_upstream.pages["status"] = status_body("status-2.4.41-event-duplicated-workers.txt")
    second = exposed_families(adapter.metrics())
    assert second["apache_info"].label_values == {
        (("mpm", "event"), ("version", "Apache/2.4.41 (Ubuntu)"))
    }
    assert not any(name.startswith("apache_proxy_balancer") for name in second)
    # And a page that lost its keys takes their series with it.
    bad_upstream.pages["status"] = status_body("status-2.4.71-event-extended-off.txt")
    third = adapter.metrics()
    assert "apache_accesses_total" not in exposed_families(third)
    assert value(third, "apache_uptime_seconds_total") == 9


@pytest.mark.parametrize("version", ["Apache/2.4", "Apache", "Apache/2.4.x (odd)"])
def test_short_version_strings_do_not_crash_it(
    adapter: Exporter, bad_upstream: BadUpstream, version: str
) -> None:
    page = status_body("status-2.4.71-prefork.txt")
    bad_upstream.pages["status"] = page.replace("Apache/2.4.71 (Debian)", version)
    text = adapter.metrics()
    assert value(text, "apache_up") == 1
    assert value(text, "apache_info", version=version, mpm="prefork") == 1
    assert "apache_version" not in exposed_families(text)
    assert adapter.process.running()


def test_unknown_scoreboard_characters_are_one_unknown_series(
    adapter: Exporter, bad_upstream: BadUpstream
) -> None:
    page = status_body("status-2.4.71-prefork.txt")
    bad_upstream.pages["status"] = page.replace("W____", "W ?X_")
    families = exposed_families(adapter.metrics())
    states = {dict(labels)["state"] for labels in families["apache_scoreboard"].label_values}
    assert "unknown" in states and not states & {" ", "?", "X"}
    assert value(adapter.metrics(), "apache_scoreboard", state="unknown") == 3


def test_the_failure_counter_is_there_from_the_start(
    exporters: ExporterFactory, bad_upstream: BadUpstream
) -> None:
    adapter = exporters.start("--scrape-uri", bad_upstream.url("/page/status"))
    assert (
        value(http_get(adapter.url + "/metrics").text, "apache_exporter_scrape_failures_total") == 0
    )


@pytest.mark.parametrize(
    ("configured", "header", "used"),
    [
        (5.0, None, 5.0),
        (5.0, "10", 5.0),  # Prometheus allows more than --timeout: --timeout stays
        (30.0, "10", 9.5),  # less half a second for the answer's way back
        (30.0, "1", 0.5),
        (30.0, "0.6", 0.3),  # short: half of it
        (30.0, "soon", 30.0),
        (30.0, "-1", 30.0),
        (30.0, "inf", 30.0),
        (30.0, "nan", 30.0),
    ],
)
def test_the_scrape_timeout_arithmetic(configured: float, header: str | None, used: float) -> None:
    assert scrape_timeout(configured, header) == pytest.approx(used)
