"""Syncing over smart HTTP from a real server (git http-backend behind
Apache with basic auth): credentials, their rotation, and how each kind of
failure is reported."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import quote

from support.git_http import GitHttpServer
from support.gitpoll import GITPOLL, Gitpoll, GitpollFactory
from support.gitrepo import Upstream
from support.http import http_get
from support.net import free_port, port_open
from support.processes import ProcessGroup
from support.wait import wait_until

FAST = ("--period", "0.2")
AUTH_FAILURE = "the repository refused the credentials"


def write_secret(path: Path, value: str, line_end: str = "\n") -> Path:
    """As a mounted Secret is updated: the new file replaces the old one in
    one rename, and it ends with a newline, which is not part of the value."""
    staging = path.with_name(path.name + ".new")
    staging.write_bytes((value + line_end).encode())
    os.replace(staging, path)
    return path


def credential_args(server: GitHttpServer, password_file: Path) -> tuple[str, ...]:
    return ("--username", server.username, "--password-file", str(password_file))


def start_with_password(
    gitpoll: GitpollFactory,
    server: GitHttpServer,
    repository: str,
    root: Path,
    tmp_path: Path,
    *args: str,
) -> tuple[Gitpoll, Path]:
    """gitpoll syncing `repository` from `server` with the right password in
    a file, as a mounted Secret gives it: the process and that file."""
    password_file = write_secret(tmp_path / "password", server.password)
    poller = gitpoll.start(
        server.url_for(repository), root, *(args or FAST), *credential_args(server, password_file)
    )
    return poller, password_file


def errors(poller: Gitpoll, reason: str) -> float:
    return poller.metric("gitpoll_sync_errors_total", reason=reason)


def wait_errors(poller: Gitpoll, reason: str, at_least: float = 1) -> None:
    wait_until(
        lambda: errors(poller, reason) >= at_least,
        15,
        message=f"{at_least:g} sync error(s) with reason={reason}\n{poller.output()[-3000:]}",
    )


def wait_logged(server: GitHttpServer, *fragments: str) -> str:
    """The first access-log line holding every fragment, once it is written."""

    def found() -> str | None:
        return next((line for line in server.requests() if all(f in line for f in fragments)), None)

    return wait_until(found, 5, message=f"a request {fragments} in\n{server.requests()}")


def everything_gitpoll_shows(poller: Gitpoll) -> str:
    """Its log, /metrics and /healthz: where a leaked secret would surface."""
    return "\n".join(
        [
            poller.output(),
            http_get(poller.url + "/metrics")[1],
            http_get(poller.url + "/healthz")[1],
        ]
    )


def argvs() -> dict[int, str]:
    """Every process's command line, by PID."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as file:
                raw = file.read()
        except OSError:  # the process ended between listing and reading
            continue
        found[int(entry.name)] = raw.replace(b"\0", b" ").decode(errors="replace")
    return found


def assert_never_in_argv(secrets: tuple[str, ...], minimum: float = 1.0) -> None:
    """Scan every process's argv, over and over, for at least `minimum`
    seconds and until several git commands talking to the server have been
    seen, which proves the scan overlapped the moments a leak could happen."""
    started = time.monotonic()
    git_network_commands: set[int] = set()

    def scanned_enough() -> bool:
        for pid, argv in argvs().items():
            for secret in secrets:
                assert secret not in argv, f"PID {pid} has the password in its argv: {argv}"
            if pid != os.getpid() and ("remote-http" in argv or "ls-remote" in argv):
                git_network_commands.add(pid)
        return time.monotonic() - started >= minimum and len(git_network_commands) >= 3

    wait_until(
        scanned_enough,
        15,
        interval=0.001,
        message=f"git commands to scan (saw {len(git_network_commands)})",
    )


def test_syncs_with_username_and_password_file_and_publishes_new_commits(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    git_http: GitHttpServer,
    tmp_path: Path,
) -> None:
    poller, password_file = start_with_password(gitpoll, git_http, "upstream.git", root, tmp_path)
    assert password_file.read_text().endswith("\n")
    poller.wait_published(upstream.head())
    assert (root / "current" / "index.html").read_text() == "<h1>version 1</h1>\n"

    second = upstream.commit_and_push({"index.html": "<h1>version 2</h1>\n"}, "second")
    poller.wait_published(second)
    assert (root / "current" / "index.html").read_text() == "<h1>version 2</h1>\n"
    wait_logged(
        git_http, f" {git_http.username} ", "POST /git/upstream.git/git-upload-pack", '" 200 '
    )


def test_a_wrong_password_is_an_auth_error_and_the_last_publish_stays(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    git_http: GitHttpServer,
    tmp_path: Path,
) -> None:
    first = upstream.head()
    poller, password_file = start_with_password(gitpoll, git_http, "upstream.git", root, tmp_path)
    poller.wait_published(first)

    write_secret(password_file, "not-the-password")
    upstream.commit_and_push({"index.html": "<h1>version 2</h1>\n"}, "second")
    wait_errors(poller, "auth", at_least=2)
    assert poller.published() == first
    assert (root / "current" / "index.html").read_text() == "<h1>version 1</h1>\n"
    assert http_get(poller.url + "/readyz")[0] == 200, "still serving the last good commit"
    assert "Traceback" not in poller.output()

    # A run that makes exactly one attempt shows what each failure logs.
    poller.process.stop()
    code, output = gitpoll.run(
        [
            "--repo",
            git_http.url_for("upstream.git"),
            "--root",
            str(root),
            "--one-time",
            *credential_args(git_http, password_file),
        ]
    )
    assert code == 1
    naming_the_cause = [line for line in output.splitlines() if AUTH_FAILURE in line]
    assert len(naming_the_cause) == 1, output
    assert "reason=auth" in naming_the_cause[0]
    assert "Traceback" not in output
    assert poller.published() == first


def test_a_rotated_password_is_used_without_a_restart(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    git_http: GitHttpServer,
    tmp_path: Path,
) -> None:
    poller, password_file = start_with_password(gitpoll, git_http, "upstream.git", root, tmp_path)
    poller.wait_published(upstream.head())

    # The server side changes first; until the Secret follows, syncs fail.
    git_http.set_password("rotated-Pa55word-91d0")
    second = upstream.commit_and_push({"index.html": "<h1>version 2</h1>\n"}, "second")
    wait_errors(poller, "auth")
    # Saved by an editor that ends lines with CRLF: still not part of the value.
    write_secret(password_file, "rotated-Pa55word-91d0", line_end="\r\n")

    poller.wait_published(second)
    assert poller.process.running()
    assert poller.output().count(" starting ") == 1, "gitpoll was not restarted"


def test_the_password_never_shows_in_logs_metrics_or_any_argv(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    git_http: GitHttpServer,
    tmp_path: Path,
) -> None:
    poller, _ = start_with_password(
        gitpoll, git_http, "upstream.git", root, tmp_path, "--period", "0.05"
    )
    poller.wait_published(upstream.head())
    noop_before = poller.metric("gitpoll_syncs_total", result="noop")

    assert_never_in_argv((git_http.password,))

    assert poller.metric("gitpoll_syncs_total", result="noop") > noop_before
    assert git_http.password not in everything_gitpoll_shows(poller)


def start_with_repo_in_environment(
    processes: ProcessGroup, log: Path, repo: str, root: Path, *args: str
) -> Gitpoll:
    """gitpoll with --repo given as GITPOLL_REPO, as a Deployment would pass
    a URL that holds a password: then no process has it in its argv."""
    port = free_port()
    process = processes.start(
        [*GITPOLL, "--root", str(root), "--http-bind", f"127.0.0.1:{port}", *args],
        log,
        env={**os.environ, "GITPOLL_REPO": repo},
    )
    wait_until(
        lambda: port_open(port) or not process.running(),
        15,
        message=f"gitpoll's HTTP port\n{process.output()[-3000:]}",
    )
    return Gitpoll(process, root, port, "current")


def test_credentials_in_the_url_work_and_stay_secret(
    processes: ProcessGroup,
    upstream: Upstream,
    root: Path,
    git_http: GitHttpServer,
    tmp_path: Path,
) -> None:
    # Characters that must be percent-encoded in a URL, to check the decoding.
    password = "url:Pa55@word/3e"
    git_http.set_password(password)
    url = git_http.url_for("upstream.git").replace(
        "http://", f"http://{git_http.username}:{quote(password, safe='')}@"
    )
    poller = start_with_repo_in_environment(
        processes, tmp_path / "gitpoll-url.log", url, root, "--period", "0.05"
    )
    poller.wait_published(upstream.head())
    secrets = (password, quote(password, safe=""))

    assert_never_in_argv(secrets)

    # A refused password must not be echoed in the failure either.
    git_http.set_password("changed-on-the-server")
    wait_errors(poller, "auth")
    shown = everything_gitpoll_shows(poller)
    for secret in secrets:
        assert secret not in shown
    assert "Traceback" not in shown


def test_missing_credentials_are_an_auth_error(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, git_http: GitHttpServer
) -> None:
    poller = gitpoll.start(git_http.url_for("upstream.git"), root, *FAST)
    wait_errors(poller, "auth")
    assert poller.published() is None
    wait_logged(git_http, "/git/upstream.git/")
    requests = git_http.requests()
    assert all('" 401 ' in line for line in requests), requests
    assert "Traceback" not in poller.output()


def test_a_repository_missing_on_the_server_is_not_found(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    git_http: GitHttpServer,
    tmp_path: Path,
) -> None:
    poller, _ = start_with_password(gitpoll, git_http, "missing.git", root, tmp_path)
    wait_errors(poller, "not_found")
    assert poller.published() is None
    wait_logged(git_http, f" {git_http.username} ", "/git/missing.git/", '" 404 ')
    assert "Traceback" not in poller.output()


def test_a_stopped_server_is_unreachable_and_the_last_publish_stays(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    git_http: GitHttpServer,
    tmp_path: Path,
) -> None:
    first = upstream.head()
    poller, _ = start_with_password(gitpoll, git_http, "upstream.git", root, tmp_path)
    poller.wait_published(first)

    git_http.stop()
    assert not port_open(git_http.port)
    upstream.commit_and_push({"index.html": "<h1>version 2</h1>\n"}, "second")
    wait_errors(poller, "unreachable")
    assert poller.published() == first
    assert (root / "current" / "index.html").read_text() == "<h1>version 1</h1>\n"
    assert http_get(poller.url + "/readyz")[0] == 200
    assert "Traceback" not in poller.output()
