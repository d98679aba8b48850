"""The `?auto` parser on recorded and hand-made status pages."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from httpd_adapter.status import (
    SCOREBOARD_STATES,
    UNKNOWN_STATE,
    BalancerMember,
    NotStatusPage,
    StatusSnapshot,
    count_scoreboard,
    parse_number,
    parse_status,
)

from .pages import status_body


def test_a_full_event_page_with_a_balancer() -> None:
    snap = parse_status(status_body("status-2.4.71-event-balancer.txt"))
    assert snap.server_version == "Apache/2.4.71 (Debian)"
    assert snap.server_mpm == "event"
    assert snap.version_number == 2.04071
    assert (snap.config_generation, snap.mpm_generation) == (1, 0)
    assert (snap.load1, snap.load5, snap.load15) == (1.08, 0.57, 0.22)
    assert (snap.total_accesses, snap.total_kilobytes, snap.total_duration_ms) == (10, 5, 3)
    assert (snap.cpu_user, snap.cpu_system, snap.cpu_load) == (0, 0, None)
    assert (snap.uptime, snap.server_uptime_seconds) == (9, 9)
    assert (snap.busy_workers, snap.graceful_workers, snap.idle_workers) == (1, 0, 74)
    assert (snap.processes, snap.stopping) == (3, 0)
    assert (snap.conns_total, snap.conns_async_wait_io, snap.conns_async_keep_alive) == (0, 0, 0)
    assert snap.scoreboard is not None
    assert snap.scoreboard["idle"] == 74
    assert snap.scoreboard["reply"] == 1
    assert snap.scoreboard["open_slot"] == 325
    assert UNKNOWN_STATE not in snap.scoreboard
    assert snap.balancer_members == (
        BalancerMember("balancer://mycluster", "http://127.0.0.1:18099", "Init Err", 5, 0, 0, 0),
        BalancerMember("balancer://mycluster", "http://127.0.0.1:18098", "Init Err", 5, 0, 0, 0),
    )
    assert snap.problems == ()


def test_prefork_has_no_process_or_connection_keys() -> None:
    snap = parse_status(status_body("status-2.4.71-prefork.txt"))
    assert snap.server_mpm == "prefork"
    assert snap.processes is None and snap.stopping is None
    assert snap.conns_total is None and snap.conns_async_writing is None
    assert snap.scoreboard is not None and sum(snap.scoreboard.values()) == 256


def test_extended_status_off_keeps_server_uptime_but_drops_the_counters() -> None:
    snap = parse_status(status_body("status-2.4.71-event-extended-off.txt"))
    assert snap.uptime is None and snap.server_uptime_seconds == 9
    assert snap.total_accesses is None and snap.total_kilobytes is None
    assert snap.cpu_user is None and snap.cpu_load is None
    assert snap.busy_workers == 1 and snap.conns_total == 0


def test_the_last_of_duplicated_worker_lines_wins_and_tls_lines_are_ignored() -> None:
    snap = parse_status(status_body("status-2.4.41-event-duplicated-workers.txt"))
    assert (snap.busy_workers, snap.idle_workers) == (1, 49)
    assert snap.graceful_workers is None and snap.conns_async_wait_io is None
    assert (snap.cpu_user, snap.cpu_children_system, snap.cpu_load) == (0.04, 0.02, 0.00412698)
    assert snap.version_number == 2.04041
    assert snap.problems == ()


@pytest.mark.parametrize("name", ["status-2.4.6-prefork.txt", "status-2.2-prefork.txt"])
def test_old_versions_without_the_server_block(name: str) -> None:
    snap = parse_status(status_body(name))
    assert snap.server_version is None and snap.server_mpm is None
    assert snap.version_number is None and snap.load1 is None
    assert snap.total_accesses is not None and snap.cpu_load is not None
    assert snap.cpu_user is None and snap.total_duration_ms is None
    assert snap.uptime is not None and snap.busy_workers is not None
    assert snap.scoreboard is not None and snap.problems == ()


def test_a_malformed_number_skips_that_value_only_and_is_reported() -> None:
    body = status_body("status-2.4.71-prefork.txt").replace("Total kBytes: 4", "Total kBytes: 4x")
    snap = parse_status(body)
    assert snap.total_kilobytes is None
    assert snap.total_accesses == 10 and snap.idle_workers == 4
    assert snap.problems == ("Total kBytes: '4x' is not a number",)


@pytest.mark.parametrize(
    "value", ["nan", "inf", "-inf", "1_000", "0x10", "", "1.2.3", "١٢", "1e400"]
)
def test_numbers_are_plain_finite_decimals(value: str) -> None:
    assert parse_number(value) is None


@pytest.mark.parametrize(
    ("text", "number"), [("0", 0), (".3", 0.3), ("568.889", 568.889), ("1e+06", 1e6), ("-1", -1)]
)
def test_numbers_as_apache_prints_them(text: str, number: float) -> None:
    assert parse_number(text) == number


def test_unknown_scoreboard_characters_are_counted_together() -> None:
    counts = count_scoreboard("__W ?X..")
    assert counts[UNKNOWN_STATE] == 3
    assert counts["idle"] == 2 and counts["reply"] == 1 and counts["open_slot"] == 2
    assert set(counts) == {*SCOREBOARD_STATES.values(), UNKNOWN_STATE}


def test_every_state_is_present_even_when_unused() -> None:
    assert count_scoreboard("") == dict.fromkeys(SCOREBOARD_STATES.values(), 0)


@pytest.mark.parametrize(
    ("version", "number"),
    [
        ("Apache/2.4.71 (Debian)", 2.04071),
        ("Apache/2.4.6 (CentOS)", 2.04006),
        ("Apache/2.2.34", 2.02034),
        ("Apache/2.4.58-dev", 2.04058),
        # Shorter ServerTokens settings: no number, and no crash either.
        ("Apache/2.4", None),
        ("Apache/2", None),
        ("Apache", None),
    ],
)
def test_version_numbers_use_apache_exporters_encoding(version: str, number: float | None) -> None:
    assert StatusSnapshot(server_version=version).version_number == number


def test_absurdly_long_numbers_in_keys_and_versions_do_not_crash() -> None:
    digits = "9" * 5000
    snap = parse_status(
        f"ServerVersion: Apache/{digits}.4.{digits}\nBusyWorkers: {digits}\n"
        f"ProxyBalancer[{digits}]Name: b\nProxyBalancer[0]Worker[{digits}]Name: w\n"
    )
    assert snap.version_number is None and snap.balancer_members == ()
    # Too big for a float: reported like any other value that is not a number.
    assert snap.busy_workers is None and len(snap.problems) == 1


def test_balancer_members_without_names_are_skipped_and_bad_numbers_reported() -> None:
    body = (
        "BusyWorkers: 1\n"
        "ProxyBalancer[0]Name: balancer://a\n"
        "ProxyBalancer[0]Worker[0]Name: http://w0\n"
        "ProxyBalancer[0]Worker[0]Sent: 12K\n"
        "ProxyBalancer[0]Worker[0]Rcvd: lots\n"
        "ProxyBalancer[0]Worker[1]Elected: 3\n"  # no name: cannot be labelled
        "ProxyBalancer[1]Worker[0]Name: http://orphan\n"  # its balancer has no name
    )
    snap = parse_status(body)
    assert snap.balancer_members == (
        BalancerMember("balancer://a", "http://w0", sent_kilobytes=12),
    )
    assert snap.problems == ("ProxyBalancer[0]Worker[0]Rcvd: 'lots' is not a number",)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("", "empty"),
        ("  \n\r\n", "empty"),
        ("<!DOCTYPE HTML PUBLIC>\n<html><body>Scoreboard: W_</body></html>", "HTML"),
        ("Hello: world\nLoad1: 0.5\n", "no mod_status keys"),
    ],
)
def test_bodies_that_are_not_a_status_page(body: str, reason: str) -> None:
    with pytest.raises(NotStatusPage, match=reason):
        parse_status(body)


def test_garbage_is_not_a_status_page() -> None:
    with pytest.raises(NotStatusPage):
        parse_status(status_body("garbage.txt"))


_KEYS = st.sampled_from(
    ["ServerVersion", "BusyWorkers", "Scoreboard", "Total kBytes", "CPULoad", "Uptime",
     "ProxyBalancer[0]Name", "ProxyBalancer[0]Worker[0]Name", "ProxyBalancer[0]Worker[0]Sent",
     "ProxyBalancer[1]Worker[2]Status", "ProxyBalancer[x]Worker[0]Busy", "ConnsTotal"]
)  # fmt: skip
_LINES = st.one_of(
    st.text(),
    st.tuples(_KEYS, st.text()).map(lambda pair: f"{pair[0]}: {pair[1]}"),
    st.tuples(_KEYS, st.from_regex(r"-?\d{0,4}\.?\d{0,3}K?", fullmatch=True)).map(
        lambda pair: f"{pair[0]}: {pair[1]}"
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINES, max_size=30).map("\n".join))
def test_arbitrary_bodies_never_raise_anything_but_not_a_status_page(body: str) -> None:
    try:
        snap = parse_status(body)
    except NotStatusPage:
        return
    assert isinstance(snap.problems, tuple)
    if snap.scoreboard is not None:
        assert set(snap.scoreboard) <= {*SCOREBOARD_STATES.values(), UNKNOWN_STATE}


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_decoded_as_apache_sends_them_never_raise(data: bytes) -> None:
    with contextlib.suppress(NotStatusPage):
        parse_status(data.decode("latin-1"))
