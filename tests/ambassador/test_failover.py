"""Health checks and failover against a real primary with a streaming replica."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.ambassador import AmbassadorFactory
from support.net import free_port
from support.postgres import PgServer, new_replica, new_server, promote, remove_server
from support.processes import ProcessGroup
from support.tcpproxy import TCPProxy
from support.wait import wait_until

from .conftest import FAST_HEALTH, server_address

WHERE = "SELECT inet_server_port(), pg_is_in_recovery()"


@dataclass
class Cluster:
    primary: PgServer
    replica: PgServer


@pytest.fixture
def cluster(processes: ProcessGroup, pg_template: Path, tmp_path: Path) -> Iterator[Cluster]:
    primary = new_server(processes, pg_template, tmp_path, "primary")
    replica = None
    try:
        primary.sql("CREATE DATABASE app")
        replica = new_replica(processes, primary, tmp_path, "replica")
        wait_until(
            lambda: primary.sql("SELECT count(*) FROM pg_stat_replication") == "1",
            30,
            message="the replica to stream",
        )
        yield Cluster(primary, replica)
    finally:
        for server in (replica, primary):
            if server is not None:
                remove_server(server)


def cluster_config(cluster: Cluster) -> dict[str, object]:
    # The replica is listed first: the role, not the position, decides.
    servers = [server_address(cluster.replica), server_address(cluster.primary)]
    return {
        "routes": {
            "app": {"servers": servers, "target": "primary"},
            "reports": {"servers": servers, "target": "replica", "database": "app"},
            "anywhere": {"servers": servers, "target": "any", "database": "app"},
        },
        "health": FAST_HEALTH,
    }


def test_each_target_reaches_a_server_of_its_role(
    ambassador: AmbassadorFactory, cluster: Cluster
) -> None:
    amb = ambassador.start(cluster_config(cluster))
    amb.wait_route_up("app")
    assert amb.server_states("app") == {
        cluster.primary.port: ("up", "primary"),
        cluster.replica.port: ("up", "replica"),
    }
    assert amb.query("app", WHERE) == f"{cluster.primary.port}|f"
    assert amb.query("reports", WHERE) == f"{cluster.replica.port}|t"
    # `any` takes turns between the healthy servers.
    seen = {amb.query("anywhere", "SELECT inet_server_port()") for _ in range(4)}
    assert seen == {str(cluster.primary.port), str(cluster.replica.port)}
    replica = server_address(cluster.replica)
    assert amb.metric("pg_ambassador_server_role", route="app", server=replica, role="replica") == 1
    assert amb.metric("pg_ambassador_server_up", route="app", server=replica) == 1


def test_after_promotion_new_connections_reach_the_new_primary(
    ambassador: AmbassadorFactory, cluster: Cluster
) -> None:
    amb = ambassador.start(cluster_config(cluster))
    amb.wait_route_up("app")
    assert amb.query("app", WHERE) == f"{cluster.primary.port}|f"
    promote(cluster.replica)
    cluster.primary.stop()

    def reaches_new_primary() -> bool:
        result = amb.psql("app", WHERE)
        return result.returncode == 0 and result.stdout.strip() == f"{cluster.replica.port}|f"

    # A few health intervals (200 ms each), with room for a slow machine.
    wait_until(reaches_new_primary, 10, 0.1, message=f"failover\n{amb.output()[-3000:]}")
    assert amb.query("app", "CREATE TABLE written_after_failover (id int)") == "CREATE TABLE"
    # No replica is left: that route is refused with 57P03, and psql says why.
    refused = amb.psql("reports", "SELECT 1")
    assert refused.returncode == 2
    assert 'no replica server is available for database "reports"' in refused.stderr
    assert amb.metric("pg_ambassador_refusals_total", sqlstate="57P03") >= 1


def test_a_server_down_at_start_is_used_once_it_comes_up(
    ambassador: AmbassadorFactory,
    processes: ProcessGroup,
    pg_template: Path,
    pg_b: PgServer,
    tmp_path: Path,
) -> None:
    late_port = free_port()
    amb = ambassador.start(
        {
            "routes": {
                "late": {"servers": [f"127.0.0.1:{late_port}"], "database": "postgres"},
                "either": {
                    "servers": [f"127.0.0.1:{late_port}", server_address(pg_b)],
                    "target": "any",
                    "database": "postgres",
                },
                "app_b": {"servers": [server_address(pg_b)]},
            },
            "health": FAST_HEALTH,
        }
    )
    # The other routes are served while that server is down...
    assert amb.query("app_b", "SELECT current_database()") == "app_b"
    # ...new connections never go to the server that failed its check...
    ports = {amb.query("either", "SELECT inet_server_port()") for _ in range(4)}
    assert ports == {str(pg_b.port)}
    # ...and its own route is refused with a message that names the database.
    refused = amb.psql("late", "SELECT 1")
    assert refused.returncode == 2
    assert 'FATAL:  no healthy server for database "late"' in refused.stderr
    assert "Connection refused" in refused.stderr  # the detail says why
    late = new_server(processes, pg_template, tmp_path, "late", port=late_port)
    try:
        wait_until(
            lambda: amb.psql("late", "SELECT inet_server_port()").stdout.strip() == str(late_port),
            10,
            0.1,
            message="the late server to be used",
        )
    finally:
        remove_server(late)


def test_a_blackholed_server_cannot_hang_a_client(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    proxy = TCPProxy(pg_b.port)
    try:
        amb = ambassador.start(
            {
                "routes": {"app_b": {"servers": [f"127.0.0.1:{proxy.port}"]}},
                # Checks are rare here, so the dial itself meets the black hole.
                "health": {"interval": "60s", "timeout": "1s"},
                "limits": {"connect_timeout": "1s"},
            }
        )
        amb.wait_route_up("app_b")
        assert amb.query("app_b", "SELECT 1") == "1"
        proxy.blackhole = True
        refused = amb.psql("app_b", "SELECT 1")
        assert refused.returncode == 2
        assert 'cannot connect to a server for database "app_b"' in refused.stderr
        assert "did not answer within 1s" in refused.stderr
        server = f"127.0.0.1:{proxy.port}"
        assert (
            amb.metric(
                "pg_ambassador_server_connect_failures_total", server=server, reason="timeout"
            )
            == 1
        )
        # The failed dial marked the server down: the next client is told at once.
        assert amb.server_states("app_b")[proxy.port][0] == "down"
        again = amb.psql("app_b", "SELECT 1")
        assert 'no healthy server for database "app_b"' in again.stderr
    finally:
        proxy.close()
