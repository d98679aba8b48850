"""`git daemon`: a real git:// server, for remotes that tests can slow down
or silence through a TCPProxy in front of it."""

from __future__ import annotations

from pathlib import Path

from .net import free_port, port_open
from .processes import ProcessGroup
from .wait import wait_until


class GitDaemon:
    def __init__(self, processes: ProcessGroup, base_path: Path, log_dir: Path) -> None:
        self.base_path = base_path
        self.port = free_port()
        self.process = processes.start(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                f"--base-path={base_path}",
                "--export-all",
                "--informative-errors",
                str(base_path),
            ],
            log_dir / f"git-daemon-{self.port}.log",
        )
        wait_until(lambda: port_open(self.port), 10, message="git daemon to listen")

    def url_for(self, relative: str, port: int | None = None) -> str:
        return f"git://127.0.0.1:{port or self.port}/{relative}"

    def stop(self) -> None:
        self.process.stop()
