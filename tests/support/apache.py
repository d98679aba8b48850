"""A real Apache httpd on a free loopback port, configured from scratch.

The configuration is complete and self-contained: nothing under
/etc/apache2 is read, and only the modules a caller names are loaded, so a
test sees exactly the behaviour of the directives it wrote. The server runs
in the foreground under a ProcessGroup and is stopped by its PID.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from .net import free_port, port_open
from .processes import Process, ProcessGroup
from .wait import wait_until

APACHE = "/usr/sbin/apache2"
MODULES_DIR = Path("/usr/lib/apache2/modules")

# An MPM is mandatory (event is Debian's default), and without mod_authz_core
# Apache 2.4 answers every request with 500 "couldn't check user".
BASE_MODULES = ("mpm_event", "authz_core")

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


# Directories given o+x so that the run user can reach a path, with how many
# live servers rely on each; the bit is taken away when the last one stops.
# Only the execute bit is added: the run user can reach known names but not
# list the directories, which is all Apache and its CGI programs need.
_traversal_grants: dict[Path, int] = {}


def grant_traversal(paths: Iterable[Path]) -> list[Path]:
    """Make every directory on the way to each of `paths` (inclusive)
    traversable by other users; the directories whose mode this call now
    holds, to give to `release_traversal` later."""
    held: list[Path] = []
    for path in paths:
        resolved = path.resolve()
        for directory in [*reversed(resolved.parents), resolved]:
            if directory in held:
                continue
            if directory in _traversal_grants:
                _traversal_grants[directory] += 1
            else:
                mode = directory.stat().st_mode
                if mode & stat.S_IXOTH:
                    continue
                os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)
                _traversal_grants[directory] = 1
            held.append(directory)
    return held


def release_traversal(held: Iterable[Path]) -> None:
    for directory in held:
        _traversal_grants[directory] -= 1
        if _traversal_grants[directory] > 0:
            continue
        del _traversal_grants[directory]
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            continue
        os.chmod(directory, stat.S_IMODE(mode) & ~stat.S_IXOTH)


def _user_directives(user: str | None) -> str:
    if user is None:
        return ""
    group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    return f"User {user}\nGroup {group}\n"


class ApacheServer:
    """One httpd: `config` (directives for the main server) is appended to a
    minimal configuration that loads BASE_MODULES plus `modules` (names as in
    mod_<name>.so, e.g. "status", "cgid"). Every file it writes lives in
    `base_dir`, which is made reachable by the run user along with each of
    `readable` (directories the configuration serves files or programs from).
    """

    def __init__(
        self,
        processes: ProcessGroup,
        base_dir: Path,
        config: str,
        modules: Sequence[str] = (),
        *,
        readable: Sequence[Path] = (),
        startup_timeout: float = 10.0,
    ) -> None:
        self.base_dir = base_dir
        self.port = free_port()
        self.user = run_user()
        self.config_path = base_dir / "httpd.conf"
        self.pid_path = base_dir / "httpd.pid"
        self.error_log = base_dir / "error.log"
        self.access_log = base_dir / "access.log"
        self.document_root = base_dir / "htdocs"
        self.runtime_dir = base_dir / "run"
        for directory in (base_dir, self.document_root, self.runtime_dir):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)
        # mod_cgid's socket is in the runtime directory and the run user's
        # children connect to it, so base_dir must be reachable as well.
        self._held = grant_traversal([base_dir, *readable]) if self.user is not None else []
        self.config_path.write_text(self._render(config, [*BASE_MODULES, *modules]))
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
            # One small child process: quick to start, plenty for a test.
            "StartServers 1\n"
            "ServerLimit 2\n"
            "ThreadsPerChild 16\n"
            "MinSpareThreads 1\n"
            "MaxSpareThreads 32\n"
            "MaxRequestWorkers 32\n"
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
        """Stop this server (its PID and process group) and give back the
        directory modes it changed; idempotent. A ProcessGroup's teardown
        alone would leave those modes changed."""
        self.process.stop()
        held, self._held = self._held, []
        release_traversal(held)
