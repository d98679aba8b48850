"""Running the real gitpoll program and looking at what it did."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .exposition import SampleKey, samples
from .http import http_get
from .net import free_port, port_open
from .processes import Process, ProcessGroup
from .wait import wait_until

GITPOLL = [sys.executable, "-m", "gitpoll"]


def published_commit(root: Path, link: str = "current") -> str | None:
    try:
        return os.path.basename(os.readlink(root / link))
    except OSError:
        return None


class Gitpoll:
    """One gitpoll process with an HTTP port of its own."""

    def __init__(self, process: Process, root: Path, port: int | None, link: str) -> None:
        self.process = process
        self.root = root
        self.port = port
        self.link = link

    @property
    def url(self) -> str:
        assert self.port is not None, "started without --http-bind"
        return f"http://127.0.0.1:{self.port}"

    def published(self) -> str | None:
        return published_commit(self.root, self.link)

    def wait_published(self, commit: str, timeout: float = 15.0) -> None:
        wait_until(
            lambda: self.published() == commit,
            timeout,
            message=f"{commit[:12]} to be published\n{self.process.output()[-3000:]}",
        )

    def wait_ready(self, timeout: float = 15.0) -> None:
        wait_until(
            lambda: self._ready(),
            timeout,
            message=f"gitpoll to be ready\n{self.process.output()[-3000:]}",
        )

    def _ready(self) -> bool:
        try:
            return http_get(self.url + "/readyz")[0] == 200
        except OSError:
            return False

    def metrics(self) -> dict[SampleKey, float]:
        """Every sample, keyed by (name, sorted labels)."""
        return samples(http_get(self.url + "/metrics")[1])

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), float("nan"))

    def status(self) -> dict[str, object]:
        result: dict[str, object] = json.loads(http_get(self.url + "/healthz")[1])
        return result

    def output(self) -> str:
        return self.process.output()


class GitpollFactory:
    def __init__(self, processes: ProcessGroup, logs: Path) -> None:
        self._processes = processes
        self._logs = logs
        self._count = 0

    def start(
        self,
        repo: str,
        root: Path,
        *args: str,
        http: bool = True,
        link: str = "current",
        env: dict[str, str] | None = None,
    ) -> Gitpoll:
        self._count += 1
        port = free_port() if http else None
        argv = [*GITPOLL, "--repo", repo, "--root", str(root), "--link", link, *args]
        if port is not None:
            argv += ["--http-bind", f"127.0.0.1:{port}"]
        process = self._processes.start(
            argv,
            self._logs / f"gitpoll-{self._count}.log",
            env={**os.environ, **(env or {})},
        )
        poller = Gitpoll(process, root, port, link)
        if port is not None:
            wait_until(
                lambda: port_open(port) or not process.running(),
                15,
                message=f"gitpoll's HTTP port\n{process.output()[-3000:]}",
            )
        return poller

    def run(
        self, argv: Sequence[str], timeout: float = 60.0, env: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """Run gitpoll to completion; (exit code, combined output)."""
        self._count += 1
        process = self._processes.start(
            [*GITPOLL, *argv],
            self._logs / f"gitpoll-{self._count}.log",
            env={**os.environ, **(env or {})},
        )
        code = process.wait(timeout)
        return code, process.output()
