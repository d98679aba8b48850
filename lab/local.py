"""The three patterns as local processes: what `make demo` starts.

Real programs on free loopback ports, started and stopped by PID through the
test suite's building blocks (tests/support: Apache and PostgreSQL set up
as the tests do, run as unprivileged users when this runs as root):

- sidecar: a git repository with a sample page; gitpoll publishing it into a
  temporary "volume"; Apache serving gitpoll's link, with mod_status. The
  repository's post-commit hook sends gitpoll a signed POST /sync, so a
  commit is served at once.
- adapter: httpd-adapter in front of that Apache's status page.
- ambassador: PostgreSQL (initdb in a temporary directory), pg-ambassador
  logging in for the client with a password from a file, and the visit
  counter app of k8s/ambassador, which connects only to the ambassador.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from support.apache import ApacheServer
from support.net import free_port, port_open
from support.postgres import PgServer, make_template, owned_directory
from support.processes import Process, ProcessGroup
from support.wait import wait_until

from .patterns import K8S, REPO

VISIT_COUNTER = K8S / "ambassador" / "base" / "app" / "visit_counter.py"
SERVER_NAME = "demo-local"
DATABASE = "visits"
DATABASE_USER = "visits"
STARTUP_TIMEOUT = 30.0

SAMPLE_PAGE = """\
<!doctype html>
<title>Sidecar Patterns demo</title>
<h1>Hello from git</h1>
<p>Edit this file and commit: gitpoll publishes the commit, httpd serves it.</p>
"""

# Runs after each commit in the demo repository: a signed POST /sync, as a
# GitHub webhook would send it. {python}, {url} and {secret} are filled in.
POST_COMMIT_HOOK = """\
#!{python}
import sys, urllib.request
from pathlib import Path
from gitpoll.webhook import SIGNATURE_HEADER, sign

body = b'{{"ref": "refs/heads/main"}}'
secret = Path({secret!r}).read_bytes()
request = urllib.request.Request(
    {url!r}, data=body, method="POST",
    headers={{SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"}},
)
try:
    urllib.request.urlopen(request, timeout=5).close()
    print("post-commit: gitpoll asked to sync now")
except OSError as error:
    print(f"post-commit: could not trigger gitpoll: {{error}}", file=sys.stderr)
"""

HTTPD_CONFIG = """\
TypesConfig /etc/mime.types
# As in k8s/sidecar: every path through gitpoll's link, resolved per request.
AliasMatch "^/(.*)$" "{www}/current/$1"
<Directory "{www}">
    Options FollowSymLinks
    Require all granted
</Directory>
DirectoryIndex index.html
ExtendedStatus On
<Location "/server-status">
    SetHandler server-status
    Require local
</Location>
"""


class DemoError(Exception):
    """A component did not start; the message says which, and where its log is."""


@dataclass
class Endpoints:
    """Where everything is, for the person at the terminal and for tests."""

    base_dir: str
    site: str
    page: str
    gitpoll: str
    status_page: str
    adapter_metrics: str
    app: str
    ambassador_host: str
    ambassador_port: int
    ambassador_admin: str
    database: str
    postgres_port: int
    pids: list[int] = field(default_factory=list)
    temp_dirs: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _git(*args: str, cwd: Path) -> None:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Demo",
        "GIT_AUTHOR_EMAIL": "demo@example.test",
        "GIT_COMMITTER_NAME": "Demo",
        "GIT_COMMITTER_EMAIL": "demo@example.test",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _answers(url: str) -> bool:
    """GET `url` (always one of our own http://127.0.0.1 endpoints): 200?"""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not a local endpoint: {url}")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - checked above
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class LocalStack:
    """Starts everything in `start()`; `stop()` stops exactly what it started,
    by PID, and removes the temporary directories. Safe to call at any point."""

    def __init__(self) -> None:
        self.processes = ProcessGroup()
        self.base = Path(tempfile.mkdtemp(prefix="sidecar-patterns-demo-", dir="/tmp"))
        # Apache's user reads the published pages below it.
        self.base.chmod(0o755)
        self.logs = self.base / "logs"
        self.logs.mkdir()
        self.temp_dirs: list[Path] = [self.base]
        self.apache: ApacheServer | None = None
        self.postgres: PgServer | None = None

    # -- start ---------------------------------------------------------------

    def start(self) -> Endpoints:
        site, gitpoll_url = self._start_sidecar()
        assert self.apache is not None
        adapter_url = self._start_adapter(self.apache)
        app_url, ambassador_port, admin_url = self._start_ambassador()
        assert self.postgres is not None
        return Endpoints(
            base_dir=str(self.base),
            site=str(site),
            page=self.apache.url + "/",
            gitpoll=gitpoll_url,
            status_page=self.apache.url + "/server-status",
            adapter_metrics=adapter_url + "/metrics",
            app=app_url + "/",
            ambassador_host="127.0.0.1",
            ambassador_port=ambassador_port,
            ambassador_admin=admin_url,
            database=DATABASE,
            postgres_port=self.postgres.port,
            pids=[p.pid for p in self.processes.processes],
            temp_dirs=[str(path) for path in self.temp_dirs],
        )

    def _program(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        return self.processes.start(
            argv, self.logs / f"{name}.log", env={**os.environ, **(env or {})}, cwd=REPO
        )

    def _wait(self, name: str, process: Process, ready: str | int) -> None:
        def up() -> bool:
            if not process.running():
                raise DemoError(
                    f"{name} exited with code {process.popen.returncode}; its log "
                    f"({process.log_path}) ends with:\n{process.output()[-2000:]}"
                )
            return _answers(ready) if isinstance(ready, str) else port_open(ready)

        try:
            wait_until(up, STARTUP_TIMEOUT, 0.05, message=name)
        except AssertionError:
            raise DemoError(
                f"{name} did not get ready within {STARTUP_TIMEOUT:g}s; its log "
                f"({process.log_path}) ends with:\n{process.output()[-2000:]}"
            ) from None

    def _start_sidecar(self) -> tuple[Path, str]:
        site = self.base / "site"
        site.mkdir()
        _git("init", "--quiet", "--initial-branch=main", cwd=site)
        _git("config", "user.name", "Demo", cwd=site)
        _git("config", "user.email", "demo@example.test", cwd=site)
        (site / "index.html").write_text(SAMPLE_PAGE)
        _git("add", "index.html", cwd=site)
        _git("commit", "--quiet", "-m", "A sample page", cwd=site)

        secret = self.base / "webhook-secret"
        secret.write_text(secrets.token_hex(16))
        secret.chmod(0o600)
        www = self.base / "www"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        hook = site / ".git" / "hooks" / "post-commit"
        hook.write_text(
            POST_COMMIT_HOOK.format(python=sys.executable, url=url + "/sync", secret=str(secret))
        )
        hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        gitpoll = self._program(
            "gitpoll",
            [
                *(sys.executable, "-m", "gitpoll"),
                *("--repo", str(site), "--root", str(www)),
                # Polling alone would take minutes: a change served at once
                # came through the hook's POST /sync.
                *("--period", "5m", "--worktree-grace", "1s"),
                *("--http-bind", f"127.0.0.1:{port}", "--webhook-secret-file", str(secret)),
            ],
        )
        self._wait("gitpoll", gitpoll, url + "/readyz")
        try:
            self.apache = ApacheServer(
                self.processes,
                self.logs / "apache",
                HTTPD_CONFIG.format(www=www),
                ["status", "alias", "dir", "mime", "authz_host"],
            )
        except AssertionError as error:
            raise DemoError(f"Apache did not start: {error}") from None
        if self.apache.shared_dir is not None:
            self.temp_dirs.append(self.apache.shared_dir)
        return site, url

    def _start_adapter(self, apache: ApacheServer) -> str:
        port = free_port()
        adapter = self._program(
            "httpd-adapter",
            [
                *(sys.executable, "-m", "httpd_adapter"),
                *("--scrape-uri", f"{apache.url}/server-status", "--listen", f"127.0.0.1:{port}"),
            ],
        )
        url = f"http://127.0.0.1:{port}"
        self._wait("httpd-adapter", adapter, url + "/healthz")
        return url

    def _start_ambassador(self) -> tuple[str, int, str]:
        pg_base = owned_directory("sidecar-patterns-demo-pg-")
        self.temp_dirs.append(pg_base)
        try:
            data = make_template(pg_base)
            self.postgres = PgServer(
                self.processes,
                data,
                self.logs,
                settings={"cluster_name": SERVER_NAME},
                hba=("host all all 127.0.0.1/32 scram-sha-256",),
                name="postgres",
            )
        except AssertionError as error:
            raise DemoError(f"PostgreSQL did not start: {error}") from None
        password = secrets.token_urlsafe(18)
        password_file = self.base / "visits-password"
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        self.postgres.sql(
            f"CREATE ROLE {DATABASE_USER} LOGIN PASSWORD '{password}';\n"
            f"CREATE DATABASE {DATABASE} OWNER {DATABASE_USER};\n"
        )
        port, admin_port = free_port(), free_port()
        config = self.base / "pg-ambassador.yaml"
        config.write_text(
            textwrap.dedent(f"""\
                # As k8s/ambassador/overlays/dev, with the local server.
                listen: ["127.0.0.1:{port}"]
                admin_bind: "127.0.0.1:{admin_port}"
                routes:
                  {DATABASE}:
                    servers: ["127.0.0.1:{self.postgres.port}"]
                    target: primary
                    tls: disable
                    user: {DATABASE_USER}
                    password_file: {password_file}
                health: {{interval: 1s, timeout: 1s}}
                limits: {{drain_timeout: 2s}}
                """)
        )
        ambassador = self._program(
            "pg-ambassador", [sys.executable, "-m", "pg_ambassador", "--config", str(config)]
        )
        admin = f"http://127.0.0.1:{admin_port}"
        self._wait("pg-ambassador", ambassador, admin + "/readyz")

        app_port = free_port()
        app = self._program(
            "visit-counter",
            [sys.executable, str(VISIT_COUNTER), "--listen", f"127.0.0.1:{app_port}"],
            env={"DATABASE_URL": f"postgresql://app@127.0.0.1:{port}/{DATABASE}?sslmode=disable"},
        )
        app_url = f"http://127.0.0.1:{app_port}"
        self._wait("the visit counter app", app, app_url + "/healthz")
        return app_url, port, admin

    # -- stop ----------------------------------------------------------------

    def stop(self) -> None:
        """In reverse order of start: the app first, gitpoll last."""
        for process in reversed(self.processes.processes):
            if self.postgres is not None and process is self.postgres.process:
                self.postgres.stop()  # a fast shutdown, as pg_ctl -m fast
            elif self.apache is not None and process is self.apache.process:
                self.apache.stop()
            else:
                process.stop()
        for directory in self.temp_dirs:
            shutil.rmtree(directory, ignore_errors=True)
