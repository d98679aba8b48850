"""Running it: the admin endpoints, SIGTERM drain, the Unix socket, the
connection limit and config reloads."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import asyncpg
import pytest
import yaml

from support.ambassador import AMBASSADOR, AmbassadorFactory, psql, run_async
from support.http import http_get
from support.net import free_port, port_open
from support.postgres import PgServer
from support.processes import ProcessGroup
from support.wait import wait_until

from .conftest import FAST_HEALTH, server_address


def routes_to(server: PgServer, **extra: object) -> dict[str, object]:
    return {
        "routes": {"app": {"servers": [server_address(server)], **extra}},
        "health": FAST_HEALTH,
    }


def test_admin_endpoints_report_health_routes_and_metrics(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    amb = ambassador.start(routes_to(pg_b, database="app_b"))
    amb.wait_route_up("app")
    assert amb.query("app", "SELECT repeat('x', 1000)") == "x" * 1000
    assert http_get(amb.admin_url + "/healthz") == (200, json.dumps({"status": "ok"}))
    status, body = http_get(amb.admin_url + "/readyz")
    assert status == 200 and json.loads(body)["draining"] is False
    document = amb.routes()
    assert document["draining"] is False
    (route,) = document["routes"]
    assert (route["name"], route["target"], route["database"], route["tls"]) == (
        "app",
        "primary",
        "app_b",
        "prefer",
    )
    (server,) = route["servers"]
    assert (server["address"], server["state"], server["role"]) == (
        server_address(pg_b),
        "up",
        "primary",
    )
    wait_until(lambda: amb.metric("pg_ambassador_client_connections_active", route="app") == 0)
    metrics = amb.metrics()
    assert metrics[("pg_ambassador_client_connections_total", (("route", "app"),))] == 1
    to_server = metrics[
        ("pg_ambassador_bytes_total", (("direction", "client_to_server"), ("route", "app")))
    ]
    to_client = metrics[
        ("pg_ambassador_bytes_total", (("direction", "server_to_client"), ("route", "app")))
    ]
    assert to_server > len("SELECT repeat('x', 1000)") and to_client > 1000
    address = server_address(pg_b)
    assert metrics[("pg_ambassador_server_connect_seconds_count", (("server", address),))] == 1
    assert metrics[("pg_ambassador_server_up", (("route", "app"), ("server", address)))] == 1


def test_sigterm_drains_sessions_and_refuses_new_ones_with_57p01(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    amb = ambassador.start(routes_to(pg_b, database="app_b"))

    async def drain() -> int:
        held = await amb.connect("app")
        amb.terminate()
        wait_until(lambda: amb.ready() == 503, 10, message="readiness to turn 503")
        refused = psql(amb.conninfo("app"), "SELECT 1")
        assert refused.returncode == 2
        assert "FATAL:  pg-ambassador is shutting down" in refused.stderr
        # The session in progress carries on until it ends.
        value: int = await held.fetchval("SELECT 5")
        await held.close()
        return value

    assert run_async(drain()) == 5
    assert amb.process.wait(10) == 0
    output = amb.output()
    assert "draining: new connections are refused" in output
    assert "sqlstate=57P01" in output
    assert "drain timeout" not in output


def test_the_drain_timeout_ends_sessions_that_do_not_finish(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    config = routes_to(pg_b, database="app_b")
    config["limits"] = {"drain_timeout": "500ms"}
    amb = ambassador.start(config)

    async def outlived() -> None:
        held = await amb.connect("app")
        amb.terminate()
        assert amb.process.wait(10) == 0
        with pytest.raises((asyncpg.ConnectionDoesNotExistError, ConnectionError)):
            await held.fetchval("SELECT 1")
        held.terminate()

    run_async(outlived())
    assert "drain timeout: closing the sessions still open" in amb.output()


def test_the_unix_socket_is_where_libpq_looks(
    ambassador: AmbassadorFactory, pg_b: PgServer, tmp_path: Path
) -> None:
    socket_dir = tmp_path / "run-postgresql"
    amb = ambassador.start(routes_to(pg_b, database="app_b"), "--listen", f"unix:{socket_dir}")
    socket_file = socket_dir / ".s.PGSQL.5432"
    assert stat.S_ISSOCK(socket_file.stat().st_mode)
    result = psql(f"host={socket_dir} dbname=app user=postgres", "SELECT current_database()")
    assert (result.returncode, result.stdout.strip()) == (0, "app_b"), result.stderr
    amb.terminate()
    assert amb.process.wait(10) == 0
    assert not socket_file.exists()


def test_connections_over_the_limit_are_refused_with_53300(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    config = routes_to(pg_b, database="app_b")
    config["limits"] = {"max_client_connections": 2}
    amb = ambassador.start(config)

    async def over_the_limit() -> str:
        held = [await amb.connect("app"), await amb.connect("app")]
        try:
            refused = psql(amb.conninfo("app"), "SELECT 1")
            assert refused.returncode == 2
            return refused.stderr
        finally:
            for connection in held:
                await connection.close()

    message = run_async(over_the_limit())
    assert 'too many connections to pg-ambassador (limit 2); cannot open database "app"' in message
    # Once a session ends there is room again.
    wait_until(lambda: psql(amb.conninfo("app"), "SELECT 1").returncode == 0, 10)


def test_sighup_reloads_routes_for_new_connections_only(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer
) -> None:
    amb = ambassador.start(routes_to(pg_a, database="shared"))
    where = "SELECT inet_server_port()"

    async def reload_under_a_session() -> tuple[int, int]:
        held = await amb.connect("app")
        amb.write_config(routes_to(pg_b, database="shared"))
        amb.process.signal(signal.SIGHUP)
        wait_until(
            lambda: amb.psql("app", where).stdout.strip() == str(pg_b.port),
            10,
            message=f"the new route\n{amb.output()[-2000:]}",
        )
        still: int = await held.fetchval(where)
        await held.close()
        return still, pg_a.port

    still, first_port = run_async(reload_under_a_session())
    assert still == first_port  # the existing session was not touched
    assert amb.metric("pg_ambassador_config_reloads_total", result="success") >= 1


def test_a_configmap_symlink_swap_is_noticed_without_a_signal(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer, tmp_path: Path
) -> None:
    """Kubernetes mounts a ConfigMap as NAME -> ..data/NAME, ..data ->
    ..<timestamp>/, and updates it by swapping the ..data link."""
    mount = tmp_path / "configmap"
    mount.mkdir()

    def publish(version: int, config: dict[str, object]) -> None:
        directory = mount / f"..2026_11_26_{version}"
        directory.mkdir()
        (directory / "config.yaml").write_text(yaml.safe_dump(config))
        staging = mount / "..data_tmp"
        staging.symlink_to(directory.name)
        os.replace(staging, mount / "..data")

    publish(1, routes_to(pg_a, database="shared"))
    (mount / "config.yaml").symlink_to("..data/config.yaml")
    amb = ambassador.start({}, config_path=mount / "config.yaml")
    where = "SELECT inet_server_port()"
    assert amb.query("app", where) == str(pg_a.port)
    publish(2, routes_to(pg_b, database="shared"))
    wait_until(
        lambda: amb.psql("app", where).stdout.strip() == str(pg_b.port),
        10,
        message=f"the swapped config\n{amb.output()[-2000:]}",
    )
    assert "config reloaded file=" in amb.output() and 'cause="file changed"' in amb.output()


def test_a_bad_new_config_is_rejected_and_the_old_one_stays(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    amb = ambassador.start(routes_to(pg_b, database="app_b"))
    amb.config_path.write_text("routes:\n  app:\n    servers: [h]\n    targt: primary\n")
    amb.process.signal(signal.SIGHUP)
    wait_until(
        lambda: amb.metric("pg_ambassador_config_reloads_total", result="error") >= 1,
        10,
        message="the reload to be rejected",
    )
    assert "config reload rejected; the running config stays" in amb.output()
    assert "routes.app.targt: unknown key" in amb.output()
    assert amb.query("app", "SELECT current_database()") == "app_b"
    assert amb.process.running()


def test_upstream_alone_needs_no_config_file(
    processes: ProcessGroup, pg_b: PgServer, tmp_path: Path
) -> None:
    port = free_port()
    process = processes.start(
        [*AMBASSADOR, "--listen", f"127.0.0.1:{port}"],
        tmp_path / "upstream.log",
        env={**os.environ, "PG_AMBASSADOR_UPSTREAM": server_address(pg_b)},
    )
    wait_until(lambda: port_open(port), 20, message=f"the listener\n{process.output()}")
    result = psql(f"host=127.0.0.1 port={port} dbname=app_b user=postgres", "SELECT 1")
    assert (result.returncode, result.stdout.strip()) == (0, "1"), result.stderr
