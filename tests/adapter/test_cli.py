"""Flags, their environment twins, apache_exporter's spellings, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from httpd_adapter.app import own_metrics
from httpd_adapter.cli import build_parser, load_config
from httpd_adapter.families import ScrapeCollector, ScrapeOutcome
from httpd_adapter.status import parse_status
from patterns_common.cli import HostPort
from support.docs import readme, undocumented_families, undocumented_options
from support.httpd_adapter import HTTPD_ADAPTER
from support.processes import run_command

from .pages import status_body


def test_defaults_are_apache_exporters() -> None:
    config = load_config([], {})
    assert str(config.scrape_url) == "http://localhost/server-status?auto"
    assert config.listen == HostPort("", 9117)
    assert config.telemetry_path == "/metrics"
    assert config.timeout == 5.0
    assert config.host_override is None and not config.client.insecure
    assert config.allow_targets == ()
    assert (config.log_format, config.log_level) == ("text", "info")


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("http://web/server-status", "http://web/server-status?auto"),
        ("http://web/server-status/?auto", "http://web/server-status/?auto"),
        ("http://web/status?refresh=5", "http://web/status?refresh=5&auto"),
        ("https://web:8443/server-status?auto#top", "https://web:8443/server-status?auto"),
        ("web:8080", "http://web:8080/server-status?auto"),
    ],
)
def test_auto_is_added_to_the_scrape_uri_when_missing(given: str, used: str) -> None:
    assert str(load_config(["--scrape-uri", given], {}).scrape_url) == used


def test_apache_exporters_flag_spellings_work() -> None:
    config = load_config(
        [
            "--scrape_uri=http://apache:8080/server-status/?auto",
            "--telemetry.address=127.0.0.1:9200",
            "--telemetry.endpoint=/apache-metrics",
            "--host_override=www.example.com",
            "--insecure",
            "--log.level=warn",
            "--log.format=logfmt",
        ],
        {},
    )
    assert str(config.scrape_url) == "http://apache:8080/server-status/?auto"
    assert config.listen == HostPort("127.0.0.1", 9200)
    assert config.telemetry_path == "/apache-metrics"
    assert config.host_override == "www.example.com"
    assert config.client.insecure
    assert (config.log_level, config.log_format) == ("warning", "text")
    # apache_exporter 1.x's spellings too.
    config = load_config(["--web.listen-address=:9300", "--custom_headers", "X-Token=abc"], {})
    assert config.listen == HostPort("", 9300)
    assert config.client.headers == (("X-Token", "abc"),)


def test_apache_exporters_environment_variables_work() -> None:
    config = load_config(
        [],
        {
            "SCRAPE_URI": "http://apache/server-status",
            "HOST_OVERRIDE": "vhost.example",
            "INSECURE": "true",
            "METRICS_ENDPOINT": "/m",
        },
    )
    assert str(config.scrape_url) == "http://apache/server-status?auto"
    assert config.host_override == "vhost.example"
    assert config.client.insecure
    assert config.telemetry_path == "/m"


def test_own_variables_win_over_apache_exporters_and_flags_win_over_both() -> None:
    environ = {"SCRAPE_URI": "http://old/s", "HTTPD_ADAPTER_SCRAPE_URI": "http://new/s"}
    assert load_config([], environ).scrape_url.host == "new"
    assert load_config(["--scrape-uri", "http://flag/s"], environ).scrape_url.host == "flag"


def test_every_flag_has_an_environment_twin(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("pw\n")
    config = load_config(
        [],
        {
            "HTTPD_ADAPTER_LISTEN": "127.0.0.1:9999",
            "HTTPD_ADAPTER_TIMEOUT": "1500ms",
            "HTTPD_ADAPTER_CA_FILE": str(password),
            "HTTPD_ADAPTER_HEADER": "X-A: 1,X-B=2",
            "HTTPD_ADAPTER_USERNAME": "monitor",
            "HTTPD_ADAPTER_PASSWORD_FILE": str(password),
            "HTTPD_ADAPTER_ALLOW_TARGET": "*.web.svc:80,10.0.0.*",
            "HTTPD_ADAPTER_LOG_FORMAT": "json",
            "HTTPD_ADAPTER_LOG_LEVEL": "debug",
        },
    )
    assert config.listen == HostPort("127.0.0.1", 9999)
    assert config.timeout == 1.5
    assert config.client.ca_file == password
    assert config.client.headers == (("X-A", "1"), ("X-B", "2"))
    assert (config.client.username, config.client.password_file) == ("monitor", password)
    assert [p.text for p in config.allow_targets] == ["*.web.svc:80", "10.0.0.*"]
    assert (config.log_format, config.log_level) == ("json", "debug")


def test_credentials_in_the_url_are_taken_out_of_it_and_never_shown() -> None:
    config = load_config(["--scrape-uri", "http://monitor:s3cret-pw@apache/server-status"], {})
    assert str(config.scrape_url) == "http://apache/server-status?auto"
    assert (config.client.username, config.client.password) == ("monitor", "s3cret-pw")
    assert "s3cret-pw" not in repr(config)
    assert "s3cret-pw" not in repr(config.redacted())


def test_header_values_are_not_logged() -> None:
    config = load_config(["--header", "Authorization: Bearer tok-123"], {})
    assert config.client.headers == (("Authorization", "Bearer tok-123"),)
    assert "tok-123" not in repr(config.redacted())
    assert config.redacted()["headers"] == "Authorization"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--scrape-uri", "ftp://apache/status"], {}, "scheme must be http or https"),
        (["--scrape-uri", "http:///server-status"], {}, "has no host"),
        ([], {"SCRAPE_URI": "gopher://x"}, "environment variable SCRAPE_URI"),
        (["--listen", "9117"], {}, "is not HOST:PORT"),
        (["--telemetry-path", "metrics"], {}, "must be a path starting with /"),
        (["--telemetry-path", "/probe"], {}, "is taken by another endpoint"),
        (["--timeout", "0"], {}, "must be greater than zero"),
        (["--timeout", "soon"], {}, "is not a duration"),
        (["--header", "no separator"], {}, "is not 'Name: value'"),
        (["--allow-target", "ftp://x"], {}, "scheme must be http or https"),
        (["--allow-target", "host:99999"], {}, "out of range"),
        (["--password-file", "/nonexistent"], {}, "not a readable file"),
        (["--password-file", "/etc/hostname"], {}, "--password-file needs --username"),
        (["--client-key", "/etc/hostname"], {}, "--client-key needs --client-cert"),
        (["--insecure", "--ca-file", "/etc/hostname"], {}, "contradict"),
        (["--log.level", "trace"], {}, "is not one of debug, info, warn, error"),
        (["--log-format", "xml"], {}, "invalid choice"),
        ([], {"INSECURE": "maybe"}, "INSECURE"),
        (["--bogus"], {}, "unrecognized arguments: --bogus"),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    argv: list[str], environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_config(argv, environ)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: httpd-adapter")
    assert message in err


def test_the_command_reports_usage_errors_without_a_traceback() -> None:
    result = run_command(HTTPD_ADAPTER, "--timeout", "x")
    assert result.returncode == 2
    assert "usage: httpd-adapter" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_documents_every_flag_with_its_environment_variable() -> None:
    result = run_command(HTTPD_ADAPTER, "--help", check=True)
    text = " ".join(result.stdout.split())
    for flag in ("--scrape-uri", "--scrape_uri", "--telemetry.address", "--allow-target"):
        assert flag in text
    assert (
        "env HTTPD_ADAPTER_SCRAPE_URI or SCRAPE_URI; default http://localhost/server-status?auto"
        in text
    )
    assert "env HTTPD_ADAPTER_LISTEN; default :9117" in text


def test_the_readme_documents_every_flag_environment_variable_and_metric() -> None:
    text = readme("adapter-metrics")
    assert undocumented_options(build_parser(), text) == []
    snapshot = parse_status(status_body("status-2.4.71-event-balancer.txt"))
    scrape = ScrapeCollector(ScrapeOutcome(snapshot, 0.002, 0)).collect()
    assert undocumented_families([*scrape, *own_metrics().collect()], text) == []
