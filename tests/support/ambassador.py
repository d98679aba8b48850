"""Running the real pg-ambassador program, and PostgreSQL clients through it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from .exposition import SampleKey, samples
from .http import http_get
from .net import free_port, port_open
from .postgres import program
from .processes import Process, ProcessGroup
from .wait import wait_until

AMBASSADOR = [sys.executable, "-m", "pg_ambassador"]


def client_environment() -> dict[str, str]:
    """No PG* variables: each client command says where it connects."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "PGCONNECT_TIMEOUT": "20"}


def psql(conninfo: str, sql: str, *, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """psql -Atc: the unaligned result on stdout, libpq's errors on stderr."""
    return subprocess.run(
        [program("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", conninfo, "-c", sql],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=client_environment(),
    )


class Ambassador:
    """One pg-ambassador process with a TCP listener and an admin port."""

    def __init__(self, process: Process, port: int, admin_port: int, config_path: Path) -> None:
        self.process = process
        self.port = port
        self.admin_port = admin_port
        self.config_path = config_path

    def conninfo(self, database: str, user: str = "postgres", **extra: str) -> str:
        options = {"host": "127.0.0.1", "port": str(self.port), "dbname": database, "user": user}
        options.update(extra)
        return " ".join(f"{key}={value}" for key, value in options.items())

    def psql(
        self, database: str, sql: str, user: str = "postgres", **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return psql(self.conninfo(database, user, **extra), sql)

    def query(self, database: str, sql: str, user: str = "postgres", **extra: str) -> str:
        result = self.psql(database, sql, user, **extra)
        assert result.returncode == 0, f"{sql} through the ambassador failed:\n{result.stderr}"
        return result.stdout.strip()

    async def connect(self, database: str, user: str = "postgres") -> asyncpg.Connection:
        connection: asyncpg.Connection = await asyncpg.connect(
            host="127.0.0.1", port=self.port, database=database, user=user, ssl=False, timeout=20
        )
        return connection

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def routes(self) -> dict[str, Any]:
        status, body = http_get(self.admin_url + "/routes")
        assert status == 200, body
        document: dict[str, Any] = json.loads(body)
        return document

    def server_states(self, route: str) -> dict[int, tuple[str, str]]:
        """Port -> (state, role) of each server of `route`, from /routes."""
        for item in self.routes()["routes"]:
            if item["name"] == route:
                return {
                    int(server["address"].rsplit(":", 1)[1]): (server["state"], server["role"])
                    for server in item["servers"]
                }
        raise AssertionError(f"no route {route} in /routes")

    def metrics(self) -> dict[SampleKey, float]:
        """Every sample, keyed by (name, sorted labels)."""
        return samples(http_get(self.admin_url + "/metrics")[1])

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def ready(self) -> int:
        try:
            return http_get(self.admin_url + "/readyz")[0]
        except OSError:
            return 0

    def wait_route_up(self, route: str, count: int | None = None, timeout: float = 15.0) -> None:
        """Until every server of `route` (or `count` of them) passed a check."""

        def up() -> bool:
            states = self.server_states(route).values()
            healthy = sum(1 for state, _ in states if state == "up")
            return healthy >= (count if count is not None else len(states))

        wait_until(up, timeout, 0.05, message=f"route {route} to be up\n{self.output()[-2000:]}")

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Replace the config file in one rename, as a careful operator would."""
        staging = self.config_path.with_name(self.config_path.name + ".new")
        staging.write_text(yaml.safe_dump(dict(config)))
        os.replace(staging, self.config_path)

    def output(self) -> str:
        return self.process.output()

    def terminate(self) -> None:
        self.process.signal(signal.SIGTERM)


class AmbassadorFactory:
    def __init__(self, processes: ProcessGroup, directory: Path) -> None:
        self._processes = processes
        self._directory = directory
        self._count = 0

    def start(
        self,
        config: Mapping[str, Any],
        *args: str,
        wait_ready: bool = True,
        config_path: Path | None = None,
    ) -> Ambassador:
        self._count += 1
        path = config_path or self._directory / f"ambassador-{self._count}.yaml"
        if config_path is None:
            path.write_text(yaml.safe_dump(dict(config)))
        port, admin_port = free_port(), free_port()
        argv = [
            *AMBASSADOR,
            "--config",
            str(path),
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-bind",
            f"127.0.0.1:{admin_port}",
            *args,
        ]
        process = self._processes.start(
            argv, self._directory / f"ambassador-{self._count}.log", env=dict(os.environ)
        )
        ambassador = Ambassador(process, port, admin_port, path)
        if wait_ready:
            wait_until(
                lambda: ambassador.ready() == 200 or not process.running(),
                20,
                0.05,
                message=f"pg-ambassador to be ready\n{process.output()[-3000:]}",
            )
            assert process.running(), process.output()
        return ambassador

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> tuple[int, str]:
        """Run pg-ambassador to completion; (exit code, output)."""
        self._count += 1
        process = self._processes.start(
            [*AMBASSADOR, *argv], self._directory / f"ambassador-{self._count}.log"
        )
        return process.wait(timeout), process.output()


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def wait_port_closed(port: int, timeout: float = 10.0) -> None:
    wait_until(lambda: not port_open(port), timeout, message=f"port {port} to close")
