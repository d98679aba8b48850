"""CancelRequest routing: Ctrl-C in psql and asyncpg's timeouts cancel the
query on the server that runs it."""

from __future__ import annotations

import signal
import socket
import subprocess

from pg_ambassador.protocol import encode_cancel_request
from support.ambassador import AmbassadorFactory, client_environment, run_async
from support.postgres import PgServer, program
from support.wait import wait_until

from .conftest import FAST_HEALTH, server_address

SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%'"


def test_ctrl_c_in_psql_cancels_the_query_on_its_server(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer
) -> None:
    amb = ambassador.start(
        {
            "routes": {
                "app_a": {"servers": [server_address(pg_a)]},
                "app_b": {"servers": [server_address(pg_b)]},
            },
            "health": FAST_HEALTH,
        }
    )
    psql = subprocess.Popen(
        [program("psql"), "-X", amb.conninfo("app_a"), "-c", "SELECT pg_sleep(60)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=client_environment(),
    )
    try:
        wait_until(lambda: pg_a.sql(SLEEPING) == "1", 15, message="the query to run")
        psql.send_signal(signal.SIGINT)
        _, stderr = psql.communicate(timeout=15)
    finally:
        psql.kill()
        psql.wait()
    assert "canceling statement due to user request" in stderr
    assert pg_a.sql(SLEEPING) == "0"
    assert amb.metric("pg_ambassador_cancel_requests_total", result="forwarded") == 1


def test_an_asyncpg_timeout_cancels_and_the_session_goes_on(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    amb = ambassador.start({"routes": {"app_b": {"servers": [server_address(pg_b)]}}})

    async def timed_out_then_usable() -> int:
        connection = await amb.connect("app_b")
        try:
            try:
                await connection.execute("SELECT pg_sleep(60)", timeout=0.5)
            except TimeoutError:
                pass
            else:
                raise AssertionError("pg_sleep(60) finished within 0.5 s")
            value: int = await connection.fetchval("SELECT 41 + 1")
            return value
        finally:
            await connection.close()

    assert run_async(timed_out_then_usable()) == 42
    assert pg_b.sql(SLEEPING) == "0"


def test_a_cancel_for_an_unknown_session_is_dropped(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    amb = ambassador.start({"routes": {"app_b": {"servers": [server_address(pg_b)]}}})

    async def hold_session_and_send_bogus_cancel() -> int:
        connection = await amb.connect("app_b")
        try:
            with socket.create_connection(("127.0.0.1", amb.port), timeout=10) as sock:
                sock.sendall(encode_cancel_request(12345, b"nope"))
                assert sock.recv(1) == b""  # closed without an answer, as a server does
            value: int = await connection.fetchval("SELECT 7")
            return value
        finally:
            await connection.close()

    assert run_async(hold_session_and_send_bogus_cancel()) == 7
    assert amb.metric("pg_ambassador_cancel_requests_total", result="unknown") == 1
