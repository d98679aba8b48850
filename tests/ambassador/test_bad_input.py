"""Bad input from clients and servers: each bad connection gets an error or
is closed, memory stays bounded, and every other session keeps working."""

from __future__ import annotations

import asyncio
import errno
import random
import selectors
import socket
import time
from pathlib import Path

import asyncpg
import pytest

from pg_ambassador.protocol import encode_startup_message, iter_messages, parse_error_fields
from support.ambassador import Ambassador, AmbassadorFactory, run_async
from support.postgres import PgServer, new_server, remove_server
from support.processes import ProcessGroup
from support.tcpproxy import TCPProxy
from support.wait import wait_until

from .conftest import FAST_HEALTH, server_address
from .test_cancel import SLEEPING


def start(ambassador: AmbassadorFactory, server: PgServer, **limits: object) -> Ambassador:
    return ambassador.start(
        {
            "routes": {"app_b": {"servers": [server_address(server)]}},
            "health": FAST_HEALTH,
            "limits": {"startup_timeout": "1s", **limits},
        }
    )


def answer(sock: socket.socket) -> bytes:
    """Everything the ambassador sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def fatal_sqlstate(data: bytes) -> tuple[str, str]:
    ((kind, body),) = list(iter_messages(data))
    assert kind == b"E"
    error = parse_error_fields(body)
    assert error["S"] == "FATAL"
    return error["C"], error["M"]


def test_random_bytes_get_08p01_or_a_close(ambassador: AmbassadorFactory, pg_b: PgServer) -> None:
    amb = start(ambassador, pg_b)
    generator = random.Random(20261126)
    for _ in range(20):
        payload = generator.randbytes(generator.randint(1, 2000))
        with socket.create_connection(("127.0.0.1", amb.port), timeout=10) as sock:
            try:
                sock.sendall(payload)
                data = answer(sock)
            except ConnectionResetError:
                data = b""  # closed while our bytes were still arriving
        if data:
            assert data[:1] in (b"N", b"E")  # maybe an encryption request, then an error
            assert fatal_sqlstate(data.lstrip(b"N"))[0] == "08P01"
    assert amb.query("app_b", "SELECT 1") == "1"
    assert "Traceback" not in amb.output()


def test_a_silent_or_truncated_client_is_closed_after_the_startup_timeout(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    amb = start(ambassador, pg_b)
    startup = encode_startup_message({"user": "postgres", "database": "app_b"})
    with (
        socket.create_connection(("127.0.0.1", amb.port), timeout=10) as silent,
        socket.create_connection(("127.0.0.1", amb.port), timeout=10) as truncated,
    ):
        truncated.sendall(startup[: len(startup) // 2])
        assert amb.query("app_b", "SELECT 1") == "1"  # meanwhile, others are served
        for sock in (silent, truncated):
            assert fatal_sqlstate(answer(sock)) == (
                "08P01",
                "no complete start-up packet within 1s",
            )
    # A client that gives up half-way is simply forgotten.
    with socket.create_connection(("127.0.0.1", amb.port), timeout=10) as quitter:
        quitter.sendall(startup[:10])
    assert amb.query("app_b", "SELECT 1") == "1"


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_ten_thousand_connections_at_once(ambassador: AmbassadorFactory, pg_b: PgServer) -> None:
    amb = start(ambassador, pg_b)
    count = 10_000
    selector = selectors.DefaultSelector()
    sockets: list[socket.socket] = []

    async def held_session() -> asyncpg.Connection:
        return await amb.connect("app_b")

    loop = asyncio.new_event_loop()
    held = loop.run_until_complete(held_session())
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex(("127.0.0.1", amb.port))
            assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code)
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_READ)
        # While they are open, the session in progress and new ones work.
        assert loop.run_until_complete(held.fetchval("SELECT 11")) == 11
        assert amb.query("app_b", "SELECT 12") == "12"
        answered = 0
        deadline = time.monotonic() + 60
        while answered < count and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                client = key.fileobj
                assert isinstance(client, socket.socket)
                try:
                    data = client.recv(4096)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if data:
                    assert fatal_sqlstate(data)[0] == "08P01"
                selector.unregister(client)
                answered += 1
        assert answered == count, f"{count - answered} connections were never answered"
        assert loop.run_until_complete(held.fetchval("SELECT 13")) == 13
    finally:
        for sock in sockets:
            sock.close()
        selector.close()
        loop.run_until_complete(held.close())
        loop.close()
    assert rss_peak_kib(amb.process.pid) < 300 * 1024
    assert amb.query("app_b", "SELECT 14") == "14"


def test_a_server_that_dies_mid_query_fails_only_its_own_sessions(
    ambassador: AmbassadorFactory,
    processes: ProcessGroup,
    pg_template: Path,
    pg_b: PgServer,
    tmp_path: Path,
) -> None:
    doomed = new_server(processes, pg_template, tmp_path, "doomed")
    try:
        amb = ambassador.start(
            {
                "routes": {
                    "doomed": {"servers": [server_address(doomed)], "database": "postgres"},
                    "app_b": {"servers": [server_address(pg_b)]},
                },
                "health": FAST_HEALTH,
            }
        )

        async def die_mid_query() -> int:
            survivor = await amb.connect("app_b")
            victim = await amb.connect("doomed")
            query = asyncio.ensure_future(victim.fetchval("SELECT pg_sleep(30)"))
            async with asyncio.timeout(10):  # until the server runs it
                while doomed.sql(SLEEPING) != "1":
                    await asyncio.sleep(0.02)
            doomed.process.kill_group()  # SIGKILL: the postmaster and its backends
            with pytest.raises((asyncpg.PostgresConnectionError, ConnectionError, OSError)):
                await asyncio.wait_for(query, 15)
            victim.terminate()
            value: int = await survivor.fetchval("SELECT 21")
            await survivor.close()
            return value

        assert run_async(die_mid_query()) == 21
        refused = amb.psql("doomed", "SELECT 1")
        assert refused.returncode == 2
        assert "FATAL:" in refused.stderr and '"doomed"' in refused.stderr
        assert amb.query("app_b", "SELECT 22") == "22"
        wait_until(lambda: amb.server_states("doomed")[doomed.port][0] == "down", 10)
    finally:
        remove_server(doomed)


def test_a_client_that_hangs_up_while_its_server_is_dialled_frees_its_slot(
    ambassador: AmbassadorFactory, pg_b: PgServer
) -> None:
    proxy = TCPProxy(pg_b.port)
    try:
        amb = ambassador.start(
            {
                "routes": {"app_b": {"servers": [f"127.0.0.1:{proxy.port}"]}},
                "health": {"interval": "60s"},
                "limits": {"connect_timeout": "60s"},
            }
        )
        amb.wait_route_up("app_b")
        proxy.blackhole = True  # the dial will hang for the whole connect_timeout
        with socket.create_connection(("127.0.0.1", amb.port), timeout=10) as sock:
            sock.sendall(encode_startup_message({"user": "postgres", "database": "app_b"}))
            wait_until(
                lambda: amb.metric("pg_ambassador_client_connections_active", route="app_b") == 1
            )
        wait_until(
            lambda: amb.metric("pg_ambassador_client_connections_active", route="app_b") == 0,
            10,
            message="the session to end with its client",
        )
        assert "Traceback" not in amb.output()
    finally:
        proxy.close()
