"""Running the real httpd-adapter program (and, beside it, apache_exporter)."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .apache import ApacheServer
from .net import free_port, port_open
from .processes import Process, ProcessGroup
from .wait import wait_until

HTTPD_ADAPTER = [sys.executable, "-m", "httpd_adapter"]
APACHE_EXPORTER = "/usr/bin/prometheus-apache-exporter"

STATUS_CONFIG = """\
ExtendedStatus {extended}
<Location /server-status>
    SetHandler server-status
    Require all granted
</Location>
"""


def mod_status_server(
    processes: ProcessGroup,
    base_dir: Path,
    *,
    mpm: str = "event",
    extended_status: bool = True,
    config: str = "",
    modules: Sequence[str] = (),
) -> ApacheServer:
    """Apache with mod_status at /server-status and a page at /index.html."""
    server = ApacheServer(
        processes,
        base_dir,
        STATUS_CONFIG.format(extended="On" if extended_status else "Off") + config,
        ["status", *modules],
        mpm=mpm,
    )
    (server.document_root / "index.html").write_text("<h1>hello</h1>\n" + "x" * 3000)
    return server


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str


def http_get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 30) -> Answer:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, dict(response.headers), response.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read().decode())


class Exporter:
    """A running exporter (ours or apache_exporter) with an HTTP port."""

    def __init__(self, process: Process, port: int, telemetry_path: str = "/metrics") -> None:
        self.process = process
        self.port = port
        self.telemetry_path = telemetry_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        return http_get(self.url + path, headers)

    def metrics(self, headers: Mapping[str, str] | None = None) -> str:
        answer = self.get(self.telemetry_path, headers)
        assert answer.status == 200, answer
        return answer.text

    def output(self) -> str:
        return self.process.output()

    def wait_listening(self, timeout: float = 15.0) -> None:
        wait_until(
            lambda: port_open(self.port) or not self.process.running(),
            timeout,
            message=f"the exporter's port {self.port}",
        )
        assert self.process.running(), f"exited:\n{self.output()}"


class ExporterFactory:
    """Starts httpd-adapter (`start`, `run`) and apache_exporter (`reference`),
    each on a free loopback port, logging to `logs`."""

    def __init__(self, processes: ProcessGroup, logs: Path) -> None:
        self._processes = processes
        self._logs = logs
        self._count = 0

    def _log_path(self, name: str) -> Path:
        self._count += 1
        return self._logs / f"{name}-{self._count}.log"

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> Exporter:
        """httpd-adapter with `args`, listening on 127.0.0.1 unless `args`
        names another address."""
        port = free_port()
        listen = (
            []
            if any(a.startswith(("--listen", "--telemetry.address")) for a in args)
            else [
                "--listen",
                f"127.0.0.1:{port}",
            ]
        )
        process = self._processes.start(
            [*HTTPD_ADAPTER, *listen, *args],
            self._log_path("httpd-adapter"),
            env={**os.environ, **(env or {})},
        )
        adapter = Exporter(process, port, _telemetry_path(args))
        adapter.wait_listening()
        return adapter

    def run(
        self, argv: Sequence[str], timeout: float = 30, env: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        """Run httpd-adapter to completion: (exit code, its output)."""
        process = self._processes.start(
            [*HTTPD_ADAPTER, *argv],
            self._log_path("httpd-adapter"),
            env={**os.environ, **(env or {})},
        )
        return process.wait(timeout), process.output()

    def reference(self, scrape_uri: str) -> Exporter:
        """apache_exporter 0.12 (Debian's prometheus-apache-exporter)."""
        port = free_port()
        process = self._processes.start(
            [
                APACHE_EXPORTER,
                f"--scrape_uri={scrape_uri}",
                f"--telemetry.address=127.0.0.1:{port}",
            ],
            self._log_path("apache_exporter"),
        )
        exporter = Exporter(process, port)
        exporter.wait_listening()
        return exporter


def _telemetry_path(args: Sequence[str]) -> str:
    for i, arg in enumerate(args):
        for flag in ("--telemetry-path", "--telemetry.endpoint"):
            if arg == flag:
                return args[i + 1]
            if arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return "/metrics"
