"""The config file, flags and their environment twins: validated at start-up,
every mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest

from patterns_common.cli import HostPort
from pg_ambassador.cli import build_parser, load_config
from pg_ambassador.config import (
    ConfigError,
    Health,
    Limits,
    TcpListen,
    UnixListen,
    parse_file_config,
)
from pg_ambassador.configfile import parse_yaml, read_file_config
from pg_ambassador.metrics import Metrics
from support.ambassador import AMBASSADOR
from support.docs import readme, undocumented_families, undocumented_options
from support.processes import run_command

FULL = """\
listen: ["127.0.0.1:6432", "unix:/run/postgresql"]
admin_bind: ":9187"
log_format: json
routes:
  app:
    servers: ["db-0.db:5432", "db-1.db"]
    target: primary
    database: app_prod
    tls: verify-full
    ca_file: ca.crt
    user: app
    password_file: /secrets/app-password
  reports:
    servers: db-1.db:5433
    target: replica
    tls: disable
  "*":
    servers: ["fallback:5432"]
    target: any
health:
  interval: 500ms
  timeout: 1.5
  user: monitor
  database: monitoring
  password_file: monitor-password
limits:
  max_client_connections: 50
  connect_timeout: 2s
  startup_timeout: 3s
  drain_timeout: 0
"""


def test_every_key_of_a_full_file() -> None:
    config = parse_file_config(parse_yaml(FULL), Path("/etc/pg-ambassador"))
    settings = config.settings
    app = settings.routes["app"]
    assert app.servers == (HostPort("db-0.db", 5432), HostPort("db-1.db", 5432))
    assert (app.target, app.database, app.tls, app.user) == (
        "primary",
        "app_prod",
        "verify-full",
        "app",
    )
    assert app.ca_file == Path("/etc/pg-ambassador/ca.crt")
    assert app.password_file == Path("/secrets/app-password")
    assert app.injects_credentials
    reports = settings.routes["reports"]
    assert reports.servers == (HostPort("db-1.db", 5433),)
    assert (reports.target, reports.tls, reports.database) == ("replica", "disable", None)
    assert not reports.injects_credentials
    assert settings.routes["*"].target == "any"
    assert settings.health == Health(
        0.5, 1.5, "monitor", "monitoring", Path("/etc/pg-ambassador/monitor-password")
    )
    assert settings.limits == Limits(50, 2.0, 3.0, 0.0)
    assert config.listen == (
        TcpListen(HostPort("127.0.0.1", 6432)),
        UnixListen(Path("/run/postgresql"), 5432),
    )
    assert config.admin_bind == HostPort("", 9187)
    assert config.log_format == "json"


def test_route_lookup_falls_back_to_star() -> None:
    settings = parse_file_config(parse_yaml(FULL), Path("/")).settings
    assert settings.route_for("app") is settings.routes["app"]
    assert settings.route_for("other") is settings.routes["*"]
    without_fallback = parse_file_config(
        {"routes": {"app": {"servers": ["h"]}}}, Path("/")
    ).settings
    assert without_fallback.route_for("other") is None


def test_defaults() -> None:
    settings = parse_file_config({"routes": {"app": {"servers": ["h"]}}}, Path("/")).settings
    route = settings.routes["app"]
    assert (route.target, route.tls, route.database, route.user) == (
        "primary",
        "prefer",
        None,
        None,
    )
    assert settings.health == Health() and settings.limits == Limits()
    assert (settings.health.user, settings.health.interval) == ("postgres", 2.0)


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"route": {}}, "route: unknown key"),
        ({}, "routes: at least one route"),
        ({"routes": {"app": {"servers": []}}}, "routes.app.servers: expected a list"),
        ({"routes": {"app": {"servers": ["h:99999"]}}}, r"routes.app.servers\[0\]: port 99999"),
        ({"routes": {"app": {"servers": ["h", "h:5432"]}}}, "listed twice"),
        (
            {"routes": {"app": {"servers": ["h"], "target": "master"}}},
            "routes.app.target: 'master'",
        ),
        (
            {"routes": {"app": {"servers": ["h"], "tls": "on"}}},
            "routes.app.tls: 'on' is not one of",
        ),
        (
            {"routes": {"app": {"servers": ["h"], "ca_file": "x"}}},
            "routes.app.ca_file: applies only",
        ),
        (
            {"routes": {"app": {"servers": ["h"], "pasword_file": "x"}}},
            "routes.app.pasword_file: unknown",
        ),
        (
            {"routes": {"app": {"servers": ["h"], "user": ""}}},
            "routes.app.user: expected a non-empty",
        ),
        ({"routes": {"app": ["h"]}}, "routes.app: expected a mapping"),
        ({"routes": {"a": {"servers": ["h"]}}, "health": {"interval": "soon"}}, "health.interval"),
        ({"routes": {"a": {"servers": ["h"]}}, "health": {"timeout": 0}}, "health.timeout: 0"),
        (
            {"routes": {"a": {"servers": ["h"]}}, "limits": {"max_client_connections": 0}},
            "limits.max_client_connections",
        ),
        (
            {"routes": {"a": {"servers": ["h"]}}, "limits": {"connect_timeout": True}},
            "limits.connect_timeout",
        ),
        (
            {"routes": {"a": {"servers": ["h"]}}, "listen": ["unix:relative"]},
            r"listen\[0\]: .*absolute",
        ),
        ({"routes": {"a": {"servers": ["h"]}}, "log_format": "xml"}, "log_format: 'xml'"),
        ([1, 2], "the file: expected a mapping"),
    ],
)
def test_a_bad_value_is_named_with_its_path(document: object, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_file_config(document, Path("/"))


def test_yaml_errors_and_duplicate_keys_name_the_line() -> None:
    with pytest.raises(ConfigError, match="line 3, column 1: not valid YAML"):
        parse_yaml("routes:\n  app: [\n")
    with pytest.raises(ConfigError, match="line 3: key 'app' appears twice"):
        parse_yaml("routes:\n  app: {servers: [a]}\n  app: {servers: [b]}\n")


def test_files_named_must_exist(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("routes:\n  app: {servers: [h], password_file: missing}\n")
    with pytest.raises(
        ConfigError, match=r"routes.app.password_file: '.*missing' is not a readable"
    ):
        read_file_config(config)
    (tmp_path / "missing").write_text("secret\n")
    assert read_file_config(config).settings.routes["app"].password_file == tmp_path / "missing"


def write_config(tmp_path: Path, text: str = "routes:\n  '*': {servers: [h]}\n") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_flags_and_environment_override_the_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "listen: '127.0.0.1:7000'\nlog_level: debug\nroutes:\n  '*': {servers: [h]}\n"
    )
    from_file = load_config(["--config", str(path)], {})
    assert from_file.listen == (TcpListen(HostPort("127.0.0.1", 7000)),)
    assert (from_file.log_level, from_file.log_format, from_file.admin_bind) == (
        "debug",
        "text",
        None,
    )
    environ = {
        "PG_AMBASSADOR_CONFIG": str(path),
        "PG_AMBASSADOR_LISTEN": "127.0.0.1:7001,unix:/tmp/sock",
        "PG_AMBASSADOR_ADMIN_BIND": "127.0.0.1:9000",
        "PG_AMBASSADOR_LOG_FORMAT": "json",
        "PG_AMBASSADOR_LOG_LEVEL": "warning",
    }
    from_env = load_config([], environ)
    assert from_env.listen == (
        TcpListen(HostPort("127.0.0.1", 7001)),
        UnixListen(Path("/tmp/sock"), 5432),
    )
    assert (from_env.log_format, from_env.log_level) == ("json", "warning")
    assert from_env.admin_bind == HostPort("127.0.0.1", 9000)
    flags = load_config(["--listen", "unix:/tmp/s:6000", "--log-level", "error"], environ)
    assert flags.listen == (UnixListen(Path("/tmp/s"), 6000),)
    assert flags.log_level == "error"
    assert flags.listen[0].path == Path("/tmp/s/.s.PGSQL.6000")


def test_upstream_alone_routes_everything_to_one_server() -> None:
    config = load_config([], {"PG_AMBASSADOR_UPSTREAM": "db.example:6543"})
    (route,) = config.settings.routes.values()
    assert route.name == "*" and route.target == "any"
    assert route.servers == (HostPort("db.example", 6543),)
    assert config.listen == (TcpListen(HostPort("127.0.0.1", 5432)),)
    assert config.config_file is None


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "one of --config or --upstream is required"),
        (["--upstream", "h", "--config", "x"], "cannot be used together"),
        (["--upstream", "h:port"], "'h:port' is not HOST:PORT"),
        (["--upstream", "h", "--listen", "nowhere"], "'nowhere' is not HOST:PORT"),
        (["--upstream", "h", "--log-format", "xml"], "invalid choice"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_a_bad_flag_prints_usage_and_exits_2(argv: list[str], complaint: str) -> None:
    result = run_command(AMBASSADOR, *argv)
    assert result.returncode == 2
    assert "usage: pg-ambassador" in result.stderr
    assert complaint in result.stderr


def test_a_bad_config_file_is_one_line_naming_the_key_and_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, "routes:\n  app:\n    servers: [h]\n    target: leader\n")
    result = run_command(AMBASSADOR, "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pg-ambassador: error: config file {path}: routes.app.target: 'leader' is not one "
        "of primary, replica, any"
    ]
    assert "Traceback" not in result.stderr


def test_the_logged_configuration_names_files_not_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter2-very-secret\n")
    path = write_config(
        tmp_path, f"routes:\n  app: {{servers: [h], user: app, password_file: {secret}}}\n"
    )
    shown = repr(load_config(["--config", str(path)], {}).redacted())
    assert "hunter2" not in shown
    assert "app->h:5432(primary,tls=prefer)" in shown


def test_the_readme_documents_every_flag_environment_variable_and_metric() -> None:
    text = readme("ambassador-db")
    assert undocumented_options(build_parser(), text) == []
    assert undocumented_families(Metrics().registry.collect(), text) == []
