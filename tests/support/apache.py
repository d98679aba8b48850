"""A real Apache httpd on a free loopback port, configured from scratch.

The configuration is complete and self-contained: nothing under
/etc/apache2 is read, and only the modules a caller names are loaded, so a
test sees exactly the behaviour of the directives it wrote. The server runs
in the foreground under a ProcessGroup and is stopped by its PID.

Run as root, Apache serves requests as another user (`run_user()`), who
cannot enter pytest's tmp_path: /tmp/pytest-of-<user> is mode 0700, and
every new pytest session (another one may start at any time) resets it to
that. What that user must read therefore lives in a `shared_directory()`.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .net import free_port, port_open
from .processes import Process, ProcessGroup
from .wait import wait_until

APACHE = "/usr/sbin/apache2"
MODULES_DIR = Path("/usr/lib/apache2/modules")

# Without mod_authz_core Apache 2.4 answers every request with 500 "couldn't
# check user". An MPM is mandatory too: see `ApacheServer(mpm=...)`.
BASE_MODULES = ("authz_core",)

# Small process and thread limits per MPM: quick to start, plenty for a test.
# The threaded MPMs refuse prefork's directives and the other way round.
_MPM_LIMITS = {
    "event": (
        "StartServers 1\nServerLimit 2\nThreadsPerChild 16\n"
        "MinSpareThreads 1\nMaxSpareThreads 32\nMaxRequestWorkers 32\n"
    ),
    "prefork": (
        "StartServers 2\nServerLimit 8\nMinSpareServers 1\nMaxSpareServers 4\nMaxRequestWorkers 8\n"
    ),
}
_MPM_LIMITS["worker"] = _MPM_LIMITS["event"]

# Common Log Format: one line per request, with the request line (%r) and
# the final status (%>s) that tests count and check.
ACCESS_LOG_FORMAT = '%h %l %u %t \\"%r\\" %>s %b'


def run_user() -> str | None:
    """The account Apache's children switch to. Apache refuses to serve as
    root, so root must name another user; anyone else cannot switch at all."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("neither www-data nor nobody exists to run Apache's children as")


def shared_directory(prefix: str) -> Path:
    """A new directory that the run user can read (mode 0755, directly under
    the world-traversable /tmp); whoever asks for it removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def _user_directives(user: str | None) -> str:
    if user is None:
        return ""
    group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    return f"User {user}\nGroup {group}\n"


class ApacheServer:
    """One httpd: `config` (directives for the main server) is appended to a
    minimal configuration that loads the `mpm` ("event", Debian's default,
    "worker" or "prefork"), BASE_MODULES and `modules` (names as in
    mod_<name>.so, e.g. "status", "cgid").

    The configuration, pid file, error log and access log are written in
    `base_dir`: only the root parent process uses them, and they stay there
    for a look after the test. The document root and the runtime directory
    (mutexes, mod_cgid's socket), which the children use, are in a shared
    directory that `stop()` removes. Files that `config` refers to must be
    readable by `run_user()`.
    """

    def __init__(
        self,
        processes: ProcessGroup,
        base_dir: Path,
        config: str,
        modules: Sequence[str] = (),
        *,
        mpm: str = "event",
        startup_timeout: float = 10.0,
    ) -> None:
        if mpm not in _MPM_LIMITS:
            raise ValueError(f"unknown MPM {mpm!r}: one of {', '.join(_MPM_LIMITS)}")
        self.mpm = mpm
        base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir = base_dir
        self.port = free_port()
        self.user = run_user()
        self.config_path = base_dir / "httpd.conf"
        self.pid_path = base_dir / "httpd.pid"
        self.error_log = base_dir / "error.log"
        self.access_log = base_dir / "access.log"
        self.shared_dir: Path | None = shared_directory("apache-")
        self.document_root = self.shared_dir / "htdocs"
        self.runtime_dir = self.shared_dir / "run"
        for directory in (self.document_root, self.runtime_dir):
            directory.mkdir(mode=0o755)
        self.config_path.write_text(self._render(config, [f"mpm_{mpm}", *BASE_MODULES, *modules]))
        self.process: Process = processes.start(
            [APACHE, "-f", str(self.config_path), "-DFOREGROUND"],
            base_dir / "apache2.out",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
        )
        try:
            wait_until(self._answers, startup_timeout, message=f"Apache on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _render(self, config: str, modules: Sequence[str]) -> str:
        loads = "".join(
            f"LoadModule {name}_module {MODULES_DIR / f'mod_{name}.so'}\n"
            for name in dict.fromkeys(modules)
        )
        return (
            f"ServerRoot {self.base_dir}\n"
            f"DefaultRuntimeDir {self.runtime_dir}\n"
            f"PidFile {self.pid_path}\n"
            f"{loads}"
            f"{_user_directives(self.user)}"
            "ServerName 127.0.0.1\n"
            f"Listen 127.0.0.1:{self.port}\n"
            f"DocumentRoot {self.document_root}\n"
            f"ErrorLog {self.error_log}\n"
            "LogLevel warn\n"
            f'CustomLog {self.access_log} "{ACCESS_LOG_FORMAT}"\n'
            f"{_MPM_LIMITS[self.mpm]}"
            "\n"
            f"{config}\n"
        )

    def _answers(self) -> bool:
        if not self.process.running():
            raise AssertionError(
                f"Apache exited with code {self.process.popen.returncode}:\n"
                f"{self.process.output()}{self.error_log_text()}"
            )
        return port_open(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log_lines(self) -> list[str]:
        """One line per request served so far, oldest first. Apache writes a
        line after the response has gone out, so a client may see the response
        before its line: wait for the line rather than reading once."""
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def error_log_text(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.process.running()

    def stop(self) -> None:
        """Stop this server (its PID and process group) and remove its shared
        directory; idempotent. A ProcessGroup's teardown alone would leave
        that directory behind in /tmp."""
        self.process.stop()
        shared, self.shared_dir = self.shared_dir, None
        if shared is not None:
            shutil.rmtree(shared, ignore_errors=True)
