"""Routing by database name, the start-up packets, and refusals as
PostgreSQL errors, with psql, pgbench and asyncpg through a real ambassador."""

from __future__ import annotations

import socket
import struct
import subprocess

import asyncpg
import pytest

from pg_ambassador.protocol import (
    encode_gssenc_request,
    encode_ssl_request,
    encode_startup_message,
    iter_messages,
    parse_error_fields,
)
from support.ambassador import AmbassadorFactory, client_environment, run_async
from support.postgres import PgServer, program

from .conftest import FAST_HEALTH, NOLOGIN_ROLE, server_address


def two_server_config(pg_a: PgServer, pg_b: PgServer, fallback: bool = True) -> dict[str, object]:
    routes: dict[str, object] = {
        "app_a": {"servers": [server_address(pg_a)]},
        "app_b": {"servers": [server_address(pg_b)]},
        "alias": {"servers": [server_address(pg_a)], "database": "app_a"},
        "missing_on_server": {"servers": [server_address(pg_b)], "database": "no_such_db"},
    }
    if fallback:
        routes["*"] = {"servers": [server_address(pg_b)]}
    return {"routes": routes, "health": FAST_HEALTH}


def test_each_database_goes_to_the_server_of_its_route(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer
) -> None:
    amb = ambassador.start(two_server_config(pg_a, pg_b))
    sql = "SELECT current_database() || ' ' || inet_server_port()"
    assert amb.query("app_a", sql) == f"app_a {pg_a.port}"
    assert amb.query("app_b", sql) == f"app_b {pg_b.port}"
    # `database` renames: the client asked for "alias", the server has app_a.
    assert amb.query("alias", sql) == f"app_a {pg_a.port}"
    # Anything else goes to the "*" route, under its own name.
    assert amb.query("shared", sql) == f"shared {pg_b.port}"


def test_clients_with_and_without_an_ssl_request_both_get_through(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer
) -> None:
    amb = ambassador.start(two_server_config(pg_a, pg_b))
    for sslmode in ("disable", "prefer", "allow"):
        assert amb.query("app_b", "SELECT 1", sslmode=sslmode) == "1"
    # The app's leg is plaintext by design: a client that insists on TLS is told so.
    refused = amb.psql("app_b", "SELECT 1", sslmode="require")
    assert refused.returncode != 0
    assert "server does not support SSL" in refused.stderr


def read_messages(sock: socket.socket, until: bytes) -> list[tuple[bytes, bytes]]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, f"closed before {until!r}: {data!r}"
        data += chunk
        try:
            messages = list(iter_messages(data))
        except Exception:  # noqa: S112 - a partial message: read on
            continue
        if any(kind == until for kind, _ in messages):
            return messages


def test_gssenc_and_ssl_requests_are_answered_n_and_startup_goes_on(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer
) -> None:
    amb = ambassador.start(two_server_config(pg_a, pg_b))
    with socket.create_connection(("127.0.0.1", amb.port), timeout=10) as sock:
        sock.sendall(encode_gssenc_request())
        assert sock.recv(1) == b"N"
        sock.sendall(encode_ssl_request())
        assert sock.recv(1) == b"N"
        sock.sendall(encode_startup_message({"user": "postgres", "database": "app_b"}))
        messages = read_messages(sock, b"Z")
    kinds = [kind for kind, _ in messages]
    assert kinds[0] == b"R" and b"K" in kinds and kinds[-1] == b"Z"


def pgbench(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [program("pgbench"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=client_environment(),
    )


def test_pgbench_initialises_and_runs_through_the_ambassador(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer
) -> None:
    amb = ambassador.start(two_server_config(pg_a, pg_b))
    initialised = pgbench(amb.port, "-i", "-q", "-s", "1", "shared")  # COPY through the relay
    assert initialised.returncode == 0, initialised.stderr
    result = pgbench(amb.port, "-n", "-S", "-t", "50", "-c", "4", "shared")
    assert result.returncode == 0, result.stderr
    assert "number of transactions actually processed: 200/200" in result.stdout
    assert pg_b.sql("SELECT count(*) FROM pgbench_accounts", "shared") == "100000"


def test_no_route_is_refused_with_3d000_naming_the_database(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer
) -> None:
    amb = ambassador.start(two_server_config(pg_a, pg_b, fallback=False))
    result = amb.psql("nowhere", "SELECT 1")
    assert result.returncode == 2
    assert 'FATAL:  pg-ambassador has no route for database "nowhere"' in result.stderr

    async def sqlstate() -> str:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await amb.connect("nowhere")
        return str(caught.value.sqlstate)

    assert run_async(sqlstate()) == "3D000"
    assert amb.metric("pg_ambassador_refusals_total", sqlstate="3D000") == 2.0
    assert "refused a connection sqlstate=3D000" in amb.output()
    # Routed databases keep working.
    assert amb.query("app_a", "SELECT 1") == "1"


def test_the_servers_own_login_errors_reach_the_client_unchanged(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer
) -> None:
    amb = ambassador.start(two_server_config(pg_a, pg_b))

    async def login_error(database: str, user: str) -> tuple[str, str]:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await amb.connect(database, user)
        return str(caught.value.sqlstate), str(caught.value)

    assert run_async(login_error("missing_on_server", "postgres")) == (
        "3D000",
        'database "no_such_db" does not exist',
    )
    assert run_async(login_error("app_a", NOLOGIN_ROLE)) == (
        "28000",
        f'role "{NOLOGIN_ROLE}" is not permitted to log in',
    )
    assert run_async(login_error("app_a", "nobody_at_all")) == (
        "28000",
        'role "nobody_at_all" does not exist',
    )


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        (struct.pack("!ii", 8, 0x00020000), "unsupported frontend protocol 2.0"),
        (encode_startup_message({"database": "app_b"}), "no PostgreSQL user name"),
        (struct.pack("!i", 2**31 - 1), "invalid start-up packet length 2147483647"),
    ],
)
def test_a_malformed_startup_gets_08p01(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer, payload: bytes, complaint: str
) -> None:
    amb = ambassador.start(two_server_config(pg_a, pg_b))
    with socket.create_connection(("127.0.0.1", amb.port), timeout=10) as sock:
        sock.sendall(payload)
        messages = read_messages(sock, b"E")
        assert sock.recv(1) == b""  # then the connection is closed
    ((_kind, body),) = messages
    error = parse_error_fields(body)
    assert (error["S"], error["C"]) == ("FATAL", "08P01")
    assert complaint in error["M"]
