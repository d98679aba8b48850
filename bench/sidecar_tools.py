"""Measurement primitives for bench/sidecar.py: statistics, process memory,
git trace counting, signed webhooks and generated repositories.

Nothing here knows about the benchmark's scenarios; each function measures
or builds one thing, so the scenarios read as a list of steps.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import math
import os
import random
import re
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

# -- statistics ---------------------------------------------------------------


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: always a value that was measured, never an
    interpolation, so p99 of 60 samples is the largest of them."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Distribution:
    """Latency summary, in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of_seconds(cls, samples: Sequence[float]) -> Distribution:
        ms = [s * 1000 for s in samples]
        return cls(
            n=len(ms),
            p50=percentile(ms, 50),
            p90=percentile(ms, 90),
            p99=percentile(ms, 99),
            max=max(ms),
            mean=statistics.fmean(ms),
        )


# -- processes and memory -----------------------------------------------------


def _status_field_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/{pid}/status has no {field} (a kernel thread or a zombie?)")
    return int(match.group(1))


def rss_kib(pid: int) -> int:
    """Resident set size of one process, as `ps` and the kubelet's cgroup see it."""
    return _status_field_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    return _status_field_kib(pid, "VmHWM")


def child_pids(pid: int) -> list[int]:
    """Direct children, found by scanning /proc (the children file needs a
    kernel option that not every container host has)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces: split after it.
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants (shared pages counted twice,
    as a cgroup would not, so this errs high for the reference loop)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            total += rss_kib(current)
        except (OSError, RuntimeError):
            continue
        pending += child_pids(current)
    return total


def timed_run(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None) -> float:
    """Wall-clock seconds from spawning `argv` to its exit; fails unless it exits 0."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}:\n"
            f"{result.stderr.decode(errors='replace')[-2000:]}"
        )
    return elapsed


# -- git ----------------------------------------------------------------------


def git_env(global_config: Path | None = None, **extra: str) -> dict[str, str]:
    """An environment in which git ignores the user's and the system's
    configuration, so every tool runs with the same defaults."""
    return {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(global_config) if global_config else "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
        **extra,
    }


def git_version() -> str:
    return subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


class FileTail:
    """What has been appended to a file since this object was made: a window
    onto a trace file that git processes keep appending to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def read(self) -> str:
        if not self.path.exists():
            return ""
        with self.path.open("rb") as file:
            file.seek(self.offset)
            return file.read().decode(errors="replace")


# A protocol v2 server answers a new connection with its capabilities (over
# HTTP: GET info/refs) and then each `command=` request (over HTTP: one POST
# each). Server-side lines are traced because upload-pack inherits the
# client's environment on file://.
_UPLOAD_PACK_STARTED = re.compile(r"trace: built-in: git upload-pack ")
_UPLOAD_PACK_COMMAND = re.compile(r"packet:\s+upload-pack< command=")
# Programs git runs: each git.c process logs `built-in:` (or `exec:` when it
# hands over to a dashed program); remote helpers are separate binaries
# that log nothing themselves, so their launch line is counted instead.
_GIT_PROGRAM = re.compile(r"trace: (?:built-in|exec): ")
_REMOTE_HELPER = re.compile(r"trace: run_command: (?:\S+=\S+ )*git-remote-")


def round_trips_from_traces(packet_trace: str, command_trace: str) -> int:
    """Request/response exchanges with a file:// remote, from GIT_TRACE and
    GIT_TRACE_PACKET: one per connection (the capability advertisement)
    plus one per protocol v2 command. Over smart HTTP each of these is one
    HTTP request, so the count is comparable with an access log."""
    sessions = len(_UPLOAD_PACK_STARTED.findall(command_trace))
    commands = len(_UPLOAD_PACK_COMMAND.findall(packet_trace))
    return sessions + commands


def git_programs_from_trace(command_trace: str) -> int:
    """Processes git ran (client and, on file://, server side), from GIT_TRACE."""
    return len(_GIT_PROGRAM.findall(command_trace)) + len(_REMOTE_HELPER.findall(command_trace))


def unauthorized(access_log_lines: Sequence[str]) -> int:
    """Requests answered 401: git's first request to a protected URL never
    carries credentials, whatever the client."""
    return sum(1 for line in access_log_lines if '" 401 ' in line)


# -- webhooks -----------------------------------------------------------------


def signature(secret: bytes, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub would send for `body`; computed
    here rather than imported from gitpoll, so a bug there cannot hide."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def post_signed(url: str, secret: bytes, body: bytes, timeout: float = 10.0) -> int:
    """POST `body` signed with `secret` on a new connection, as a webhook
    sender does; the response status."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request(
            "POST",
            parts.path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": signature(secret, body),
            },
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


# -- generated repositories ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeShape:
    directories: int
    files_per_directory: int
    min_size: int = 1024
    max_size: int = 2048

    @property
    def files(self) -> int:
        return self.directories * self.files_per_directory

    def path(self, directory: int, file: int) -> str:
        return f"d{directory:03d}/f{file:03d}.txt"

    def last_path(self) -> str:
        return self.path(self.directories - 1, self.files_per_directory - 1)


def _write_fast_import_stream(out: IO[bytes], shape: TreeShape, branch: str, seed: int) -> None:
    """One commit holding every file of `shape`; contents are hex text, so
    they compress about as well as source code does."""
    rng = random.Random(seed)
    message = b"generated tree\n"
    out.write(b"commit refs/heads/%s\n" % branch.encode())
    out.write(b"committer Bench <bench@example.test> 1700000000 +0000\n")
    out.write(b"data %d\n%s" % (len(message), message))
    for directory in range(shape.directories):
        for file in range(shape.files_per_directory):
            size = rng.randint(shape.min_size, shape.max_size)
            data = rng.randbytes(size // 2 + 1).hex().encode()[:size] + b"\n"
            path = shape.path(directory, file).encode()
            out.write(b"M 100644 inline %s\ndata %d\n%s\n" % (path, len(data), data))
    out.write(b"\n")


def generate_repository(bare: Path, shape: TreeShape, branch: str = "main", seed: int = 1) -> None:
    """A bare repository with one commit of `shape`, written by git
    fast-import in one pass (seconds, where add+commit takes much longer)."""
    env = git_env()
    subprocess.run(
        ["git", "init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare)],
        env=env,
        check=True,
    )
    with subprocess.Popen(
        ["git", f"--git-dir={bare}", "fast-import", "--quiet"],
        stdin=subprocess.PIPE,
        env=env,
    ) as importer:
        assert importer.stdin is not None
        _write_fast_import_stream(importer.stdin, shape, branch, seed)
        importer.stdin.close()
        if importer.wait() != 0:
            raise RuntimeError(f"git fast-import exited {importer.returncode}")
