"""Against a real Apache httpd with mod_status, under the event and the
prefork MPM: real status pages, real traffic, apache_exporter beside us."""

from __future__ import annotations

import http.client
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.apache import ApacheServer, shared_directory
from support.exposition import exposed_families, samples, value
from support.git_http import htpasswd_line
from support.httpd_adapter import ExporterFactory, http_get, mod_status_server
from support.processes import ProcessGroup
from support.tls import make_certificates
from support.wait import wait_until

REQUESTS = 25


def send_traffic(apache: ApacheServer, count: int) -> None:
    before = len(apache.access_log_lines())
    for _ in range(count):
        assert http_get(apache.url + "/index.html").status == 200
    # Apache logs (and counts) a request just after answering it.
    wait_until(lambda: len(apache.access_log_lines()) >= before + count, 10, message="log lines")


def test_real_status_pages_become_metrics(exporters: ExporterFactory, apache: ApacheServer) -> None:
    adapter = exporters.start("--scrape-uri", f"{apache.url}/server-status")
    text = adapter.metrics()
    families = exposed_families(text)
    assert value(text, "apache_up") == 1
    [info] = families["apache_info"].label_values
    assert dict(info)["mpm"] == apache.mpm and dict(info)["version"].startswith("Apache/2.4.")
    version = value(text, "apache_version")
    assert version is not None and 2.04 < version < 2.05
    busy = value(text, "apache_workers", state="busy")
    assert busy is not None and busy >= 1  # this very request
    assert len(families["apache_scoreboard"].label_values) == 11
    slots = sum(v for (name, _), v in samples(text).items() if name == "apache_scoreboard")
    page = http_get(f"{apache.url}/server-status?auto").text
    [board] = [line for line in page.splitlines() if line.startswith("Scoreboard: ")]
    assert slots == len(board) - len("Scoreboard: ")  # one series per slot state, none lost
    assert value(text, "apache_generation", type="config") == 1
    assert value(text, "apache_uptime_seconds_total") is not None
    # Only the event MPM has processes and asynchronous connections.
    event_only = {"apache_processes", "apache_connections"}
    assert event_only & families.keys() == (event_only if apache.mpm == "event" else set())


def test_traffic_moves_the_counters(exporters: ExporterFactory, apache: ApacheServer) -> None:
    adapter = exporters.start("--scrape-uri", f"{apache.url}/server-status")
    before = samples(adapter.metrics())
    accesses = before[("apache_accesses_total", ())]
    send_traffic(apache, REQUESTS)
    scrapes = 0

    def counted() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        nonlocal scrapes
        scrapes += 1
        now = samples(adapter.metrics())
        return now if now[("apache_accesses_total", ())] >= accesses + REQUESTS + 1 else None

    after = wait_until(counted, 10, interval=0.1, message="the requests to be counted")
    # Our requests, the first scrape, and the scrapes made while waiting.
    assert after[("apache_accesses_total", ())] <= accesses + REQUESTS + scrapes
    sent = after[("apache_sent_kilobytes_total", ())] - before[("apache_sent_kilobytes_total", ())]
    assert sent >= REQUESTS * 3000 / 1024 - 1  # each answer is 3 kB of page and its headers
    assert after[("apache_duration_ms_total", ())] >= before[("apache_duration_ms_total", ())]
    assert after[("apache_uptime_seconds_total", ())] >= before[("apache_uptime_seconds_total", ())]


def test_idle_keepalive_connections_hold_workers_under_prefork_only(
    exporters: ExporterFactory, apache: ApacheServer
) -> None:
    """prefork keeps a worker per idle keep-alive connection (K on the
    scoreboard); event parks such connections outside its workers."""
    adapter = exporters.start("--scrape-uri", f"{apache.url}/server-status")
    connections = [http.client.HTTPConnection("127.0.0.1", apache.port) for _ in range(3)]
    try:
        for connection in connections:
            connection.request("GET", "/index.html")
            connection.getresponse().read()
        assert all(connection.sock is not None for connection in connections)  # kept alive
        expected = 3 if apache.mpm == "prefork" else 0
        wait_until(
            lambda: value(adapter.metrics(), "apache_scoreboard", state="keepalive") == expected,
            5,
            interval=0.1,
            message=f"{expected} keep-alive slots",
        )
    finally:
        for connection in connections:
            connection.close()


def test_the_same_families_and_labels_as_apache_exporter_on_the_same_apache(
    exporters: ExporterFactory, apache: ApacheServer
) -> None:
    adapter = exporters.start("--scrape-uri", f"{apache.url}/server-status")
    reference = exporters.reference(f"{apache.url}/server-status?auto")
    theirs = exposed_families(reference.metrics())
    ours = exposed_families(adapter.metrics())
    del theirs["apache_exporter_build_info"]
    for name, family in theirs.items():
        if not name.startswith("apache_"):
            continue
        assert name in ours, f"{name} is missing"
        assert (ours[name].type, ours[name].label_names) == (family.type, family.label_names)
        if name in ("apache_load", "apache_info", "apache_generation", "apache_scoreboard",
                    "apache_cpu_time_ms_total", "apache_processes", "apache_workers"):  # fmt: skip
            assert family.label_values <= ours[name].label_values, name
    # Values that do not move between two scrapes are equal.
    ours_now, theirs_now = samples(adapter.metrics()), samples(reference.metrics())
    for key, theirs_value in theirs_now.items():
        if key[0] in ("apache_version", "apache_info", "apache_generation"):
            assert ours_now[key] == theirs_value, key


def test_extended_status_off_still_has_uptime(
    exporters: ExporterFactory, processes: ProcessGroup, tmp_path: Path
) -> None:
    apache = mod_status_server(processes, tmp_path / "apache", extended_status=False)
    try:
        adapter = exporters.start("--scrape-uri", f"{apache.url}/server-status")
        reference = exporters.reference(f"{apache.url}/server-status?auto")
        ours, theirs = adapter.metrics(), reference.metrics()
        assert value(ours, "apache_up") == 1
        assert "apache_accesses_total" not in exposed_families(ours)
        # apache_exporter loses uptime here (it reads only Uptime).
        assert "apache_uptime_seconds_total" not in exposed_families(theirs)
        assert value(ours, "apache_uptime_seconds_total") is not None
    finally:
        apache.stop()


def test_a_graceful_restart_shows_the_new_generation_and_a_stopped_apache_up_0(
    exporters: ExporterFactory, apache_event: ApacheServer
) -> None:
    adapter = exporters.start("--scrape-uri", f"{apache_event.url}/server-status")
    assert value(adapter.metrics(), "apache_generation", type="config") == 1
    apache_event.process.signal(signal.SIGUSR1)  # apachectl graceful
    wait_until(
        lambda: value(adapter.metrics(), "apache_generation", type="config") == 2,
        15,
        interval=0.2,
        message="generation 2",
    )
    apache_event.stop()
    text = adapter.metrics()
    assert value(text, "apache_up") == 0
    assert (
        not {"apache_info", "apache_generation", "apache_scoreboard"}
        & exposed_families(text).keys()
    )
    assert "refused" in adapter.output()


@pytest.fixture
def apache_with_basic_auth(processes: ProcessGroup, tmp_path: Path) -> Iterator[ApacheServer]:
    auth_dir = shared_directory("adapter-auth-")
    htpasswd = auth_dir / "htpasswd"
    htpasswd.write_text(htpasswd_line("monitor", "Status-Pa55word-4e2a"))
    htpasswd.chmod(0o644)
    config = f"""\
<Location /server-status>
    AuthType Basic
    AuthName "status"
    AuthBasicProvider file
    AuthUserFile {htpasswd}
    Require valid-user
</Location>
"""
    server = mod_status_server(
        processes,
        tmp_path / "apache",
        config=config,
        modules=("auth_basic", "authn_core", "authn_file", "authz_user"),
    )
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(auth_dir, ignore_errors=True)


def test_basic_auth_from_a_password_file(
    exporters: ExporterFactory, apache_with_basic_auth: ApacheServer, tmp_path: Path
) -> None:
    url = f"{apache_with_basic_auth.url}/server-status"
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("Status-Pa55word-4e2a\n")
    bad.write_text("wrong\n")
    adapter = exporters.start(
        "--scrape-uri", url, "--username", "monitor", "--password-file", str(good)
    )
    assert value(adapter.metrics(), "apache_up") == 1
    refused = exporters.start(
        "--scrape-uri", url, "--username", "monitor", "--password-file", str(bad)
    )
    assert value(refused.metrics(), "apache_up") == 0
    assert "http_status: answered 401 Unauthorized" in refused.output()
    assert "Pa55word" not in adapter.output() + refused.output()


# -- TLS ---------------------------------------------------------------------


@pytest.fixture
def tls_apache(
    processes: ProcessGroup, tmp_path: Path
) -> Iterator[tuple[ApacheServer, dict[str, Path]]]:
    """Apache over https that wants a client certificate signed by the test CA."""
    certificates = make_certificates(tmp_path)
    config = f"""\
SSLEngine on
SSLCertificateFile {certificates["server"]}
SSLCertificateKeyFile {certificates["server-key"]}
SSLCACertificateFile {certificates["ca"]}
SSLVerifyClient require
"""
    server = mod_status_server(
        processes, tmp_path / "apache", config=config, modules=("ssl", "socache_shmcb")
    )
    try:
        yield server, certificates
    finally:
        server.stop()


def test_https_with_a_ca_file_and_a_client_certificate(
    exporters: ExporterFactory, tls_apache: tuple[ApacheServer, dict[str, Path]]
) -> None:
    apache, certificates = tls_apache
    url = f"https://127.0.0.1:{apache.port}/server-status"
    client = [
        "--client-cert",
        str(certificates["client"]),
        "--client-key",
        str(certificates["client-key"]),
    ]
    verified = exporters.start("--scrape-uri", url, "--ca-file", str(certificates["ca"]), *client)
    assert value(verified.metrics(), "apache_up") == 1
    insecure = exporters.start("--scrape-uri", url, "--insecure", *client)
    assert value(insecure.metrics(), "apache_up") == 1
    untrusted = exporters.start("--scrape-uri", url, *client)
    assert value(untrusted.metrics(), "apache_up") == 0
    assert "tls: certificate not accepted" in untrusted.output()
    anonymous = exporters.start("--scrape-uri", url, "--ca-file", str(certificates["ca"]))
    assert value(anonymous.metrics(), "apache_up") == 0
    assert "Traceback" not in anonymous.output() + untrusted.output()
