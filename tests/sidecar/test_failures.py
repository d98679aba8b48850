"""Expected failures: one clear log line naming the cause, a metric, and the
last good publish kept being served."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.gitdaemon import GitDaemon
from support.gitpoll import Gitpoll, GitpollFactory
from support.gitrepo import Upstream
from support.http import http_get
from support.processes import ProcessGroup
from support.tcpproxy import TCPProxy
from support.wait import wait_until

FAST = ("--period", "0.1")


def wait_for_error(poller: Gitpoll, reason: str) -> None:
    wait_until(
        lambda: poller.metric("gitpoll_sync_errors_total", reason=reason) >= 1,
        15,
        message=f"a sync error with reason {reason}\n{poller.output()[-2000:]}",
    )


def assert_failure_reported(poller: Gitpoll, reason: str, words: str, serving: str) -> None:
    """The failure is logged in one line with its cause and counted, the old
    commit is still published and the pod stays ready."""
    wait_for_error(poller, reason)
    # (A server stopped in the middle of a conversation may first give
    # another error; the ones with this reason must all name the cause.)
    failures = [line for line in poller.output().splitlines() if f"reason={reason}" in line]
    assert failures, "a log line for the failure"
    assert all("sync failed" in line and words in line for line in failures), failures[-1]
    assert "Traceback" not in poller.output()
    assert poller.published() == serving
    assert poller.metric("gitpoll_consecutive_failures") >= 1
    assert http_get(poller.url + "/readyz")[0] == 200, "the last good publish is still served"


def test_an_unreachable_server(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    processes: ProcessGroup,
    tmp_path: Path,
    git_daemon: GitDaemon,
    proxy: Callable[..., TCPProxy],
) -> None:
    relay = proxy(git_daemon.port)
    poller = gitpoll.start(git_daemon.url_for("upstream.git", relay.port), root, *FAST)
    good = upstream.head()
    poller.wait_published(good)

    git_daemon.stop()
    upstream.commit_and_push({"index.html": "unreachable for now\n"})
    assert_failure_reported(poller, "unreachable", "cannot reach", good)

    # The server comes back: the next retry publishes and the failures reset.
    relay.target_port = GitDaemon(processes, upstream.bare.parent, tmp_path).port
    poller.wait_published(upstream.head())
    wait_until(lambda: poller.metric("gitpoll_consecutive_failures") == 0, 10)


def test_a_ref_that_does_not_exist(gitpoll: GitpollFactory, upstream: Upstream, root: Path) -> None:
    poller = gitpoll.start(upstream.url, root, *FAST, "--ref", "no-such-branch")
    wait_for_error(poller, "ref_not_found")
    line = next(line for line in poller.output().splitlines() if "sync failed" in line)
    assert "no-such-branch" in line
    assert "does not exist" in line
    assert poller.published() is None
    assert http_get(poller.url + "/readyz")[0] == 503


def test_a_repository_that_vanishes(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    poller = gitpoll.start(str(upstream.bare), root, *FAST)
    good = upstream.head()
    poller.wait_published(good)
    moved = upstream.bare.with_name("moved.git")
    upstream.bare.rename(moved)
    try:
        assert_failure_reported(poller, "not_found", "repository does not exist", good)
    finally:
        moved.rename(upstream.bare)
    newer = upstream.commit_and_push({"index.html": "back\n"})
    poller.wait_published(newer)


@pytest.fixture
def small_volume(root: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs as the volume, so it can be filled up or made read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def remount(root: Path, options: str) -> None:
    # The kernel refuses to remount read-only while a file is open for writing
    # (a git command finishing a publish): try again until it is closed.
    def attempt() -> bool:
        command = ["mount", "-o", f"remount,{options}", str(root)]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    wait_until(attempt, 10, message=f"remount {options}")


def test_a_full_volume(gitpoll: GitpollFactory, upstream: Upstream, small_volume: Path) -> None:
    poller = gitpoll.start(upstream.url, small_volume, *FAST, "--worktree-grace", "0")
    good = upstream.head()
    poller.wait_published(good)

    # Incompressible, and bigger than the volume.
    upstream.commit_and_push({"big.bin": os.urandom(6 * 1024 * 1024).hex()[: 6 * 1024 * 1024]})
    assert_failure_reported(poller, "volume_full", "the volume is full", good)
    assert (small_volume / "current" / "index.html").read_text() == "<h1>version 1</h1>\n"

    remount(small_volume, "size=64m")
    poller.wait_published(upstream.head(), timeout=30)


def test_a_read_only_volume(
    gitpoll: GitpollFactory, upstream: Upstream, small_volume: Path
) -> None:
    poller = gitpoll.start(upstream.url, small_volume, *FAST)
    good = upstream.head()
    poller.wait_published(good)

    remount(small_volume, "ro")
    upstream.commit_and_push({"index.html": "cannot be written\n"})
    assert_failure_reported(poller, "volume_read_only", "read-only", good)

    remount(small_volume, "rw")
    poller.wait_published(upstream.head())
