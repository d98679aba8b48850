"""The mapping from a parsed status page to metric families, and its
compatibility with apache_exporter's real output."""

from __future__ import annotations

import re
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from httpd_adapter.exposition import encode, format_value
from httpd_adapter.families import ScrapeCollector, ScrapeOutcome
from httpd_adapter.status import SCOREBOARD_STATES, NotStatusPage, StatusSnapshot, parse_status
from support.exposition import exposed_families, samples, value

from .pages import DATA, status_body

STATUS_PAGES = sorted(path.name for path in DATA.glob("status-*.txt"))
# What promtool says about apache_exporter's own names, kept for compatibility.
EXPORTER_NAME_REMARKS = {
    "apache_cpu_time_ms_total metric names should not contain abbreviated units",
    "apache_duration_ms_total metric names should not contain abbreviated units",
    'apache_sent_kilobytes_total use base unit "bytes" instead of "kilobytes"',
}


def render(snapshot: StatusSnapshot | None, failures: int = 0, duration: float = 0.002) -> str:
    """What the adapter serves for a scrape (its own encoder)."""
    return encode(ScrapeCollector(ScrapeOutcome(snapshot, duration, failures)).collect()).decode()


def render_with_prometheus_client(snapshot: StatusSnapshot | None) -> str:
    registry = CollectorRegistry()
    registry.register(ScrapeCollector(ScrapeOutcome(snapshot, 0.002, 0)))
    return generate_latest(registry).decode()


def render_page(name: str) -> str:
    return render(parse_status(status_body(name)))


def exporter_family_list() -> list[tuple[str, str, set[str]]]:
    """tests/adapter/data/apache_exporter-0.12.0-families.txt: name, type, label names."""
    rows = []
    for line in (DATA / "apache_exporter-0.12.0-families.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, kind, *labels = line.split()
            rows.append((name, kind, set(labels)))
    return rows


def test_the_checked_in_list_is_apache_exporters_real_output() -> None:
    captured = {
        **exposed_families((DATA / "apache_exporter-0.12.0-event.prom").read_text()),
        **exposed_families((DATA / "apache_exporter-0.12.0-404.prom").read_text()),
    }
    del captured["apache_exporter_build_info"]
    assert {(f.name, f.type, frozenset(f.label_names)) for f in captured.values()} == {
        (name, kind, frozenset(labels)) for name, kind, labels in exporter_family_list()
    }


def test_every_apache_exporter_family_is_exported_with_its_type_and_labels() -> None:
    ours = exposed_families(render_page("status-2.4.71-event-balancer.txt"))
    missing = [name for name, _, _ in exporter_family_list() if name not in ours]
    assert missing == [], f"families apache_exporter has and we lack: {missing}"
    for name, kind, labels in exporter_family_list():
        assert (ours[name].type, ours[name].label_names) == (kind, labels), name


def test_label_values_are_apache_exporters() -> None:
    """For the same kind of page (event MPM, ExtendedStatus, a balancer), every
    series apache_exporter had, we have; we add GracefulWorkers and
    ConnsAsyncWaitIO, which it ignores."""
    theirs = exposed_families((DATA / "apache_exporter-0.12.0-event.prom").read_text())
    ours = exposed_families(render_page("status-2.4.71-event-balancer.txt"))
    added = {
        "apache_workers": {(("state", "graceful"),)},
        "apache_connections": {(("state", "wait_io"),)},
    }
    for name in ("apache_generation", "apache_load", "apache_cpu_time_ms_total",
                 "apache_processes", "apache_connections", "apache_scoreboard",
                 "apache_workers"):  # fmt: skip
        assert ours[name].label_values - theirs[name].label_values == added.get(name, set())
        assert theirs[name].label_values <= ours[name].label_values, name
    assert ours["apache_info"].label_values == theirs["apache_info"].label_values
    for name in ("apache_proxy_balancer_status", "apache_proxy_balancer_busy"):
        # Their capture's balancer members listened on other ports.
        assert {len(v) for v in ours[name].label_values} == {
            len(v) for v in theirs[name].label_values
        }


def test_values_of_a_full_event_page() -> None:
    found = samples(render_page("status-2.4.71-event-balancer.txt"))
    expected = {
        ("apache_up", ()): 1,
        ("apache_version", ()): 2.04071,
        ("apache_info", (("mpm", "event"), ("version", "Apache/2.4.71 (Debian)"))): 1,
        ("apache_generation", (("type", "config"),)): 1,
        ("apache_generation", (("type", "mpm"),)): 0,
        ("apache_load", (("interval", "1min"),)): 1.08,
        ("apache_load", (("interval", "15min"),)): 0.22,
        ("apache_accesses_total", ()): 10,
        ("apache_sent_kilobytes_total", ()): 5,
        ("apache_duration_ms_total", ()): 3,
        ("apache_cpu_time_ms_total", (("type", "user"),)): 0,
        ("apache_cpuload", ()): 0,  # no CPULoad line: Apache omits it when it is zero
        ("apache_uptime_seconds_total", ()): 9,
        ("apache_workers", (("state", "busy"),)): 1,
        ("apache_workers", (("state", "idle"),)): 74,
        ("apache_workers", (("state", "graceful"),)): 0,
        ("apache_processes", (("state", "all"),)): 3,
        ("apache_connections", (("state", "wait_io"),)): 0,
        ("apache_scoreboard", (("state", "idle"),)): 74,
        ("apache_scoreboard", (("state", "reply"),)): 1,
        ("apache_scoreboard", (("state", "open_slot"),)): 325,
        ("apache_scoreboard", (("state", "dns"),)): 0,
        (
            "apache_proxy_balancer_accesses_total",
            (("balancer", "balancer://mycluster"), ("worker", "http://127.0.0.1:18099")),
        ): 5,
        (
            "apache_proxy_balancer_status",
            (
                ("balancer", "balancer://mycluster"),
                ("status", "Init Err"),
                ("worker", "http://127.0.0.1:18098"),
            ),
        ): 1,
        ("apache_scrape_duration_seconds", ()): 0.002,
        ("apache_exporter_scrape_failures_total", ()): 0,
    }
    assert {key: found.get(key) for key in expected} == expected
    states = [labels for name, labels in found if name == "apache_scoreboard"]
    assert len(states) == 11
    assert sum(v for (name, _), v in found.items() if name == "apache_scoreboard") == 400


def test_cpu_time_adds_children_and_is_in_milliseconds() -> None:
    found = samples(render_page("status-2.4.41-event-duplicated-workers.txt"))
    assert found[("apache_cpu_time_ms_total", (("type", "user"),))] == pytest.approx(50)
    assert found[("apache_cpu_time_ms_total", (("type", "system"),))] == pytest.approx(90)
    assert found[("apache_cpuload", ())] == 0.00412698
    assert found[("apache_workers", (("state", "busy"),))] == 1
    assert ("apache_workers", (("state", "graceful"),)) not in found


def test_extended_status_off_takes_uptime_from_server_uptime_seconds() -> None:
    text = render_page("status-2.4.71-event-extended-off.txt")
    assert value(text, "apache_uptime_seconds_total") == 9
    families = exposed_families(text)
    for absent in ("apache_accesses_total", "apache_cpuload", "apache_cpu_time_ms_total",
                   "apache_duration_ms_total", "apache_sent_kilobytes_total"):  # fmt: skip
        assert absent not in families
    assert value(text, "apache_connections", state="total") == 0


def test_prefork_omits_the_event_mpm_families() -> None:
    families = exposed_families(render_page("status-2.4.71-prefork.txt"))
    assert "apache_processes" not in families and "apache_connections" not in families
    assert families["apache_info"].label_values == {
        (("mpm", "prefork"), ("version", "Apache/2.4.71 (Debian)"))
    }


@pytest.mark.parametrize("name", ["status-2.4.6-prefork.txt", "status-2.2-prefork.txt"])
def test_old_versions_have_no_info_instead_of_unknown(name: str) -> None:
    text = render_page(name)
    families = exposed_families(text)
    assert "apache_info" not in families and "apache_version" not in families
    assert value(text, "apache_up") == 1
    assert value(text, "apache_cpuload") is not None
    assert value(text, "apache_uptime_seconds_total") is not None


def test_unknown_scoreboard_characters_become_one_unknown_series() -> None:
    body = status_body("status-2.4.71-prefork.txt").replace("W____", "W ?X_")
    families = exposed_families(render(parse_status(body)))
    states = {dict(v)["state"] for v in families["apache_scoreboard"].label_values}
    assert states == {*SCOREBOARD_STATES.values(), "unknown"}
    assert len(states) == 12


def test_a_failed_scrape_shows_only_up_duration_and_failures() -> None:
    text = render(None, failures=3, duration=1.5)
    assert samples(text) == {
        ("apache_up", ()): 0,
        ("apache_scrape_duration_seconds", ()): 1.5,
        ("apache_exporter_scrape_failures_total", ()): 3,
    }


def promtool_remarks(text: str) -> set[str]:
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    remarks = {line.strip() for line in (result.stdout + result.stderr).splitlines()}
    return remarks - {""}


@pytest.mark.parametrize("name", STATUS_PAGES)
def test_our_encoder_says_what_prometheus_clients_says(name: str) -> None:
    snapshot = parse_status(status_body(name))
    ours, reference = render(snapshot), render_with_prometheus_client(snapshot)
    assert samples(ours) == samples(reference)
    assert {(f.name, f.type) for f in exposed_families(ours).values()} == {
        (f.name, f.type) for f in exposed_families(reference).values()
    }


@pytest.mark.parametrize("name", STATUS_PAGES)
def test_promtool_finds_only_apache_exporters_own_naming_remarks(name: str) -> None:
    remarks = promtool_remarks(render_page(name))
    assert remarks <= EXPORTER_NAME_REMARKS, remarks - EXPORTER_NAME_REMARKS


def test_promtool_is_really_checking() -> None:
    """The check above would pass on promtool saying nothing at all."""
    remarks = promtool_remarks(
        "# HELP apache_latency_ms Bad name.\n# TYPE apache_latency_ms gauge\napache_latency_ms 1\n"
    )
    assert any("abbreviated units" in remark for remark in remarks)


_BALANCER_TEXT = st.text(alphabet=st.characters(codec="latin-1"), max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Name", "Worker[0]Name", "Worker[0]Status", "Worker[1]Name"]),
            _BALANCER_TEXT,
        ),
        max_size=8,
    ),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=40),
)
def test_whatever_the_page_holds_the_output_is_valid_exposition(
    balancer_lines: list[tuple[str, str]], server_version: str
) -> None:
    body = "BusyWorkers: 1\nServerVersion: " + re.sub(
        r"[\r\n\x0b\x0c\x1c-\x1e\x85]", "", server_version
    )
    body += "".join(f"\nProxyBalancer[0]{key}: {text}" for key, text in balancer_lines)
    try:
        snapshot = parse_status(body)
    except NotStatusPage:
        return
    # Label values with quotes, backslashes and odd characters are escaped:
    # the text parses back to the same values, as prometheus_client's does.
    found = samples(render(snapshot))
    assert found == samples(render_with_prometheus_client(snapshot))
    assert found[("apache_up", ())] == 1
    if snapshot.server_version:
        info = [labels for name, labels in found if name == "apache_info"]
        assert dict(info[0])["version"] == snapshot.server_version


@pytest.mark.parametrize(
    ("number", "text"),
    [(1, "1"), (1.0, "1"), (-3.0, "-3"), (2.04071, "2.04071"), (1e20, "1e+20"),
     (0.1 + 0.2, "0.30000000000000004"), (float("inf"), "+Inf"), (float("nan"), "NaN")],
)  # fmt: skip
def test_values_are_written_as_go_writes_them_and_read_back_exactly(
    number: float, text: str
) -> None:
    assert format_value(number) == text
    assert float(text) == number or number != number
