"""Processes started by tests: output captured to a file, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_command(
    command: Sequence[str], *args: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """One of our programs run to completion, its output captured as text."""
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=30, check=check
    )


class Process:
    """One child process. `stop()` signals exactly this PID (and, because it
    runs in a session of its own, the process group it leads)."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def kill_group(self) -> None:
        """SIGKILL the process group this process leads (its children too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; its children go too."""
        if self.running():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_group()
                self.popen.wait(timeout)
        self.kill_group()
        self._log.close()
        return self.popen.returncode


class ProcessGroup:
    """Every process a test started, stopped at teardown."""

    def __init__(self) -> None:
        self.processes: list[Process] = []

    def start(self, argv: Sequence[str], log_path: Path, **kwargs: object) -> Process:
        process = Process(argv, log_path, **kwargs)  # type: ignore[arg-type]
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
