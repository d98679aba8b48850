"""Real PostgreSQL servers on free loopback ports, made with Debian's binaries.

PostgreSQL refuses to run as root, so under root every server program runs
as an unprivileged account (`run_user()`: `postgres`, which Debian's package
creates, or else a `pgtest` system account made on first use), switched to
with setpriv, which execs: the PID a ProcessGroup holds is the postmaster's
own. Data and socket directories live under /tmp in directories owned by
that account (pytest's tmp_path is private to root). A cluster is made once
with initdb as a template and copied for each server, which is much faster
than initdb each time.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .net import free_port, port_open
from .processes import Process, ProcessGroup
from .wait import wait_until

SUPERUSER = "postgres"
FALLBACK_RUN_USER = "pgtest"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's server programs."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin): run `make setup`"
        )
    return Path(candidates[-1])


def program(name: str) -> str:
    return str(bin_dir() / name)


def run_user() -> str | None:
    """The account server programs run as, or None when not root."""
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, FALLBACK_RUN_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_RUN_USER,
        ],
        check=True,
    )
    return FALLBACK_RUN_USER


def as_run_user(argv: Sequence[str]) -> list[str]:
    user = run_user()
    if user is None:
        return list(argv)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


def owned_directory(prefix: str) -> Path:
    """A new directory under /tmp owned by the run user; the caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    user = run_user()
    if user is not None:
        shutil.chown(path, user, user)
    return path


def run_as_server_user(argv: Sequence[str]) -> str:
    result = subprocess.run(
        as_run_user(argv),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=_environment(),
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def _environment() -> dict[str, str]:
    """No PG* variables of the caller's: each command says what it means."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}


def make_template(directory: Path) -> Path:
    """initdb once; servers start from copies of this data directory."""
    data = directory / "template"
    run_as_server_user(
        [
            program("initdb"),
            "-D",
            str(data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        ]
    )
    return data


class PgServer:
    """One postmaster. `settings` become `-c name=value` options; `hba` lines
    replace pg_hba.conf (local connections and replication from loopback are
    always trusted, so tests can set things up and make replicas)."""

    def __init__(
        self,
        processes: ProcessGroup,
        data_dir: Path,
        log_dir: Path,
        *,
        settings: Mapping[str, str] | None = None,
        hba: Sequence[str] = ("host all all 127.0.0.1/32 trust",),
        name: str = "pg",
        port: int | None = None,
    ) -> None:
        self.name = name
        self.data_dir = data_dir
        self.port = port or free_port()
        self.socket_dir = data_dir / "sockets"
        self.log_path = log_dir / f"{name}-{self.port}.log"
        hba_text = "local all all trust\nhost replication all 127.0.0.1/32 trust\n" + "".join(
            f"{line}\n" for line in hba
        )
        (data_dir / "pg_hba.conf").write_text(hba_text)
        self.socket_dir.mkdir(exist_ok=True)
        user = run_user()
        if user is not None:
            shutil.chown(data_dir / "pg_hba.conf", user, user)
            shutil.chown(self.socket_dir, user, user)
        options = {
            "listen_addresses": "127.0.0.1",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "200",
            "log_min_messages": "warning",
            **(settings or {}),
        }
        argv = [
            program("postgres"),
            "-D",
            str(data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        self.process: Process = processes.start(
            as_run_user(argv), self.log_path, env=_environment()
        )
        wait_until(self._ready, 30, 0.05, message=f"PostgreSQL {name} on port {self.port}")

    def _ready(self) -> bool:
        if not self.process.running():
            raise AssertionError(f"PostgreSQL {self.name} exited:\n{self.process.output()}")
        if not port_open(self.port):
            return False
        result = subprocess.run(
            [program("pg_isready"), "-h", str(self.socket_dir), "-p", str(self.port), "-q"],
            check=False,
            env=_environment(),
        )
        return result.returncode == 0

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the Unix socket; the unaligned output."""
        # On standard input, not in argv: statements may hold test passwords.
        result = subprocess.run(
            [
                program("psql"),
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
            ],
            input=statement,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env=_environment(),
        )
        if result.returncode != 0:
            raise AssertionError(f"SQL failed on {self.name}: {statement}\n{result.stderr}")
        return result.stdout.strip()

    def running(self) -> bool:
        return self.process.running()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended), then make sure."""
        if self.process.running():
            self.process.signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        self.process.stop()


def new_server(
    processes: ProcessGroup,
    template: Path,
    log_dir: Path,
    name: str,
    **kwargs: object,
) -> PgServer:
    """A server on a copy of `template` in a new directory under /tmp (removed
    by `remove_server`)."""
    base = owned_directory(f"pg-{name}-")
    try:
        data = base / "data"
        subprocess.run(["cp", "-a", str(template), str(data)], check=True)
        return PgServer(processes, data, log_dir, name=name, **kwargs)  # type: ignore[arg-type]
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def new_replica(
    processes: ProcessGroup, primary: PgServer, log_dir: Path, name: str, **kwargs: object
) -> PgServer:
    """A streaming replica of `primary`, made with pg_basebackup -R."""
    base = owned_directory(f"pg-{name}-")
    data = base / "data"
    try:
        run_as_server_user(
            [
                program("pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                SUPERUSER,
                "-D",
                str(data),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-c",
                "fast",
            ]
        )
        return PgServer(processes, data, log_dir, name=name, **kwargs)  # type: ignore[arg-type]
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise


def promote(server: PgServer) -> None:
    run_as_server_user([program("pg_ctl"), "promote", "-w", "-D", str(server.data_dir)])


def remove_server(server: PgServer) -> None:
    server.stop()
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)
