"""The adapter's HTTP endpoints, process lifecycle and request details,
against a small real upstream serving recorded status pages."""

from __future__ import annotations

import base64
import signal
import socket
from pathlib import Path

from support.bad_upstream import BadUpstream
from support.exposition import exposed_families, value
from support.httpd_adapter import ExporterFactory

from .pages import status_body


def test_metrics_shows_the_scrape_uris_status_and_its_own_process(
    exporters: ExporterFactory, bad_upstream: BadUpstream
) -> None:
    adapter = exporters.start("--scrape-uri", bad_upstream.url("/page/status"))
    answer = adapter.get("/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = answer.text
    assert value(text, "apache_up") == 1
    assert value(text, "apache_accesses_total") == 10
    assert value(text, "apache_exporter_scrape_failures_total") == 0
    resident = value(text, "process_resident_memory_bytes")
    assert resident is not None and resident > 1e6
    assert value(text, "httpd_adapter_build_info", version="0.1.0") == 1
    # Every scrape is a fresh request to Apache, with ?auto added.
    adapter.get("/metrics")
    assert bad_upstream.requests["/page/status"] == 2


def test_probe_answers_403_without_an_allow_list(
    exporters: ExporterFactory, bad_upstream: BadUpstream
) -> None:
    adapter = exporters.start("--scrape-uri", bad_upstream.url("/page/status"))
    answer = adapter.get(f"/probe?target={bad_upstream.url('/page/status')}")
    assert answer.status == 403
    assert "--allow-target" in answer.text
    assert bad_upstream.requests["/page/status"] == 0


def test_probe_refuses_a_target_outside_the_allow_list(
    exporters: ExporterFactory, bad_upstream: BadUpstream
) -> None:
    adapter = exporters.start("--allow-target", "apache-*.web.svc:80")
    answer = adapter.get(f"/probe?target={bad_upstream.url('/page/status')}")
    assert answer.status == 403
    assert "does not match any --allow-target" in answer.text
    assert bad_upstream.requests["/page/status"] == 0
    assert "probe refused" in adapter.output()


def test_probe_scrapes_each_allowed_target_for_that_request_only(
    exporters: ExporterFactory, bad_upstream: BadUpstream
) -> None:
    bad_upstream.pages["prefork"] = status_body("status-2.4.71-prefork.txt")
    adapter = exporters.start(
        "--scrape-uri", bad_upstream.url("/page/status"), "--allow-target", "127.0.0.1:*/page/*"
    )
    event = adapter.get(f"/probe?target={bad_upstream.url('/page/status')}")
    prefork = adapter.get(f"/probe?target=127.0.0.1:{bad_upstream.port}/page/prefork")
    assert (event.status, prefork.status) == (200, 200)
    assert value(event.text, "apache_info", version="Apache/2.4.71 (Debian)", mpm="event") == 1
    assert value(prefork.text, "apache_info", version="Apache/2.4.71 (Debian)", mpm="prefork") == 1
    assert value(prefork.text, "apache_up") == 1
    # A probe shows that target's metrics, not the adapter's own.
    assert "process_resident_memory_bytes" not in exposed_families(prefork.text)
    assert bad_upstream.requests["/page/prefork"] == 1
    assert bad_upstream.requests["/page/status"] == 1
    # A failing probe target counts its own failures, not the default target's.
    missing = adapter.get(f"/probe?target={bad_upstream.url('/page/missing')}")
    assert value(missing.text, "apache_up") == 0
    assert value(missing.text, "apache_exporter_scrape_failures_total") == 1
    assert value(adapter.metrics(), "apache_exporter_scrape_failures_total") == 0


def test_probe_needs_a_valid_target_without_credentials(exporters: ExporterFactory) -> None:
    adapter = exporters.start("--allow-target", "*")
    assert adapter.get("/probe").status == 400
    assert adapter.get("/probe?target=ftp://x/y").status == 400
    answer = adapter.get("/probe?target=http://user:pw@host/server-status")
    assert answer.status == 400
    assert "credentials" in answer.text


def test_healthz_and_the_index_page(exporters: ExporterFactory, bad_upstream: BadUpstream) -> None:
    adapter = exporters.start(
        "--scrape-uri", bad_upstream.url("/500"), "--allow-target", "<web>.example"
    )
    health = adapter.get("/healthz")
    assert health.status == 200
    adapter.get("/metrics")
    health = adapter.get("/healthz")
    assert '"up": false' in health.text
    assert "http_status: answered 500" in health.text
    assert adapter.get("/readyz").status == 200
    index = adapter.get("/")
    assert index.status == 200 and index.headers["Content-Type"].startswith("text/html")
    assert 'href="/metrics"' in index.text and 'href="/healthz"' in index.text
    assert "&lt;web&gt;.example" in index.text and "<web>" not in index.text


def test_apache_exporters_flags_and_variables_work_end_to_end(
    exporters: ExporterFactory, bad_upstream: BadUpstream
) -> None:
    adapter = exporters.start(
        "--telemetry.endpoint=/apache-metrics",
        "--host_override=www.example.test",
        env={"SCRAPE_URI": bad_upstream.url("/page/status")},
    )
    assert adapter.get("/metrics").status == 404
    assert value(adapter.get("/apache-metrics").text, "apache_up") == 1
    request = bad_upstream.headers[-1]
    assert request["Host"] == "www.example.test"
    assert request["User-Agent"] == "httpd-adapter/0.1.0"


def test_headers_and_basic_auth_from_a_file_reach_apache_and_stay_out_of_logs(
    exporters: ExporterFactory, bad_upstream: BadUpstream, tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("Secret-Pa55word-0c7d\n")
    adapter = exporters.start(
        "--scrape-uri",
        bad_upstream.url("/page/status"),
        "--header",
        "X-Scraped-By: adapter",
        "--username",
        "monitor",
        "--password-file",
        str(password_file),
        "--log-level",
        "debug",
    )
    assert value(adapter.metrics(), "apache_up") == 1
    request = bad_upstream.headers[-1]
    assert request["X-Scraped-By"] == "adapter"
    expected = base64.b64encode(b"monitor:Secret-Pa55word-0c7d").decode()
    assert request["Authorization"] == f"Basic {expected}"
    # Rotated: the next scrape sends the new password.
    password_file.write_text("Rotated-Pa55word-91ab\n")
    adapter.metrics()
    expected = base64.b64encode(b"monitor:Rotated-Pa55word-91ab").decode()
    assert bad_upstream.headers[-1]["Authorization"] == f"Basic {expected}"
    assert "Pa55word" not in adapter.output() + adapter.metrics()
    assert "Pa55word" not in " ".join(adapter.process.argv)


def test_a_password_in_the_url_is_used_but_never_shown(
    exporters: ExporterFactory, bad_upstream: BadUpstream
) -> None:
    url = bad_upstream.url("/page/status").replace("http://", "http://monitor:Url-Pa55word@")
    adapter = exporters.start(env={"SCRAPE_URI": url})
    text = adapter.metrics()
    expected = base64.b64encode(b"monitor:Url-Pa55word").decode()
    assert bad_upstream.headers[-1]["Authorization"] == f"Basic {expected}"
    assert "Pa55word" not in adapter.output() + text + adapter.get("/healthz").text


def test_sigterm_stops_it_with_exit_code_0(exporters: ExporterFactory) -> None:
    adapter = exporters.start()
    adapter.process.signal(signal.SIGTERM)
    assert adapter.process.wait(10) == 0
    assert "stopped" in adapter.output()


def test_a_taken_port_is_exit_code_3_with_one_clear_line(exporters: ExporterFactory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, output = exporters.run(["--listen", f"127.0.0.1:{port}"])
    assert code == 3
    assert "cannot listen" in output and "Traceback" not in output


def test_unusable_tls_files_are_exit_code_2(exporters: ExporterFactory, tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    code, output = exporters.run(["--ca-file", str(not_pem), "--listen", "127.0.0.1:0"])
    assert code == 2
    assert "cannot load the TLS files" in output and "Traceback" not in output
