"""POST /sync, coalescing, the hooks after a publish, and clean-up."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gitpoll.webhook import sign
from support.gitdaemon import GitDaemon
from support.gitpoll import Gitpoll, GitpollFactory
from support.gitrepo import Upstream, git
from support.http import http_post
from support.tcpproxy import TCPProxy
from support.wait import wait_until

SECRET = b"webhook-secret"
IDLE = ("--period", "3600")


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook-secret"
    path.write_bytes(SECRET + b"\n")
    return path


def post_sync(poller: Gitpoll, body: bytes = b"{}", secret: bytes = SECRET) -> int:
    headers = {"X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json"}
    return http_post(poller.url + "/sync", body, headers)[0]


def total_syncs(poller: Gitpoll) -> float:
    return sum(poller.metric("gitpoll_syncs_total", result=r) for r in ("success", "noop", "error"))


def syncs_after_first_publish(poller: Gitpoll) -> float:
    """The sync count once the first publish is recorded (the link is
    swapped a moment before the sync's metrics are)."""
    return wait_until(lambda: total_syncs(poller), 5, message="the first sync to be counted")


def test_a_signed_post_syncs_at_once(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, secret_file: Path
) -> None:
    poller = gitpoll.start(upstream.url, root, *IDLE, "--webhook-secret-file", str(secret_file))
    poller.wait_published(upstream.head())
    newer = upstream.commit_and_push({"index.html": "pushed\n"})
    assert post_sync(poller, b'{"ref":"refs/heads/main"}') == 202
    poller.wait_published(newer, timeout=5)
    assert poller.metric("gitpoll_webhook_requests_total", result="accepted") == 1


def test_a_bad_signature_gets_401_and_triggers_nothing(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, secret_file: Path
) -> None:
    poller = gitpoll.start(upstream.url, root, *IDLE, "--webhook-secret-file", str(secret_file))
    poller.wait_published(upstream.head())
    before = syncs_after_first_publish(poller)

    assert post_sync(poller, secret=b"wrong") == 401
    assert http_post(poller.url + "/sync", b"{}")[0] == 401, "no signature at all"
    assert poller.metric("gitpoll_webhook_requests_total", result="rejected") == 2
    # Had a rejected request triggered a sync, it would start at once and be
    # counted before the sync of the valid request below: the total would
    # then be two more than before, not one.
    newer = upstream.commit_and_push({"index.html": "pushed\n"})
    assert post_sync(poller) == 202
    poller.wait_published(newer, timeout=5)
    wait_until(
        lambda: poller.metric("gitpoll_syncs_total", result="success") == 2,
        5,
        message="the valid request's sync to be counted",
    )
    assert total_syncs(poller) == before + 1
    assert "rejected POST /sync" in poller.output()
    assert SECRET.decode() not in poller.output()


def test_without_a_secret_the_trigger_is_disabled(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    poller = gitpoll.start(upstream.url, root, *IDLE)
    status, body = http_post(poller.url + "/sync", b"{}", {"X-Hub-Signature-256": "sha256=0"})
    assert status == 404
    assert "--webhook-secret-file" in body


def test_triggers_during_a_sync_are_coalesced_into_one_follow_up(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    secret_file: Path,
    git_daemon: GitDaemon,
    proxy: Callable[..., TCPProxy],
) -> None:
    slow = proxy(git_daemon.port)
    poller = gitpoll.start(
        git_daemon.url_for("upstream.git", slow.port),
        root,
        *IDLE,
        "--webhook-secret-file",
        str(secret_file),
    )
    poller.wait_published(upstream.head())
    before = syncs_after_first_publish(poller)
    slow.delay = 1.0  # each connection to the server now takes a second
    connections = slow.connections
    assert post_sync(poller) == 202
    wait_until(lambda: slow.connections > connections, 5, message="the sync to start")
    for _ in range(10):
        assert post_sync(poller) == 202
    wait_until(lambda: total_syncs(poller) == before + 2, 15, message="two syncs")
    # Nothing else is pending: no third sync follows the follow-up.
    time.sleep(1.5)
    assert total_syncs(poller) == before + 2


def test_exec_on_sync_runs_in_the_new_checkout(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, tmp_path: Path
) -> None:
    record = tmp_path / "hook.log"
    poller = gitpoll.start(
        upstream.url,
        root,
        "--period",
        "0.1",
        "--exec-on-sync",
        f'echo "$GITPOLL_COMMIT $PWD $(cat index.html)" >> {record}',
    )
    first = upstream.head()
    poller.wait_published(first)
    second = upstream.commit_and_push({"index.html": "second"})
    poller.wait_published(second)
    wait_until(lambda: record.exists() and len(record.read_text().splitlines()) == 2, 10)
    lines = record.read_text().splitlines()
    assert lines[0] == f"{first} {root / '.worktrees' / first} <h1>version 1</h1>"
    assert lines[1] == f"{second} {root / '.worktrees' / second} second"
    wait_until(
        lambda: poller.metric("gitpoll_hook_runs_total", hook="exec", result="success") == 2,
        5,
        message="both runs to be counted",
    )


def test_a_failing_hook_is_retried_and_never_blocks_syncs(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    poller = gitpoll.start(
        upstream.url, root, "--period", "0.1", "--exec-on-sync", "echo broken >&2; exit 3"
    )
    poller.wait_published(upstream.head())
    wait_until(
        lambda: poller.metric("gitpoll_hook_runs_total", hook="exec", result="error") >= 2,
        10,
        message="a retry of the failed hook",
    )
    newer = upstream.commit_and_push({"index.html": "published anyway\n"})
    poller.wait_published(newer)
    failure = next(line for line in poller.output().splitlines() if "hook failed" in line)
    assert "exited with code 3: broken" in failure


def test_a_hung_hook_is_killed_at_its_timeout(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    poller = gitpoll.start(
        upstream.url,
        root,
        "--period",
        "0.1",
        "--exec-on-sync",
        "sleep 60",
        "--exec-timeout",
        "0.3",
    )
    poller.wait_published(upstream.head())
    newer = upstream.commit_and_push({"index.html": "while the hook hangs\n"})
    poller.wait_published(newer, timeout=5)
    wait_until(
        lambda: poller.metric("gitpoll_hook_runs_total", hook="exec", result="error") >= 1,
        10,
    )
    assert "timed out after 0.3s (--exec-timeout)" in poller.output()


class Receiver(BaseHTTPRequestHandler):
    """Records notifications; answers 500 to the first one."""

    received: list[dict[str, str]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.received.append(dict(self.headers))
        self.send_response(500 if len(self.received) == 1 else 200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/deployed?token=tok123", received
    finally:
        server.shutdown()
        server.server_close()


def test_notify_url_is_posted_after_a_publish_and_retried(
    gitpoll: GitpollFactory,
    upstream: Upstream,
    root: Path,
    receiver: tuple[str, list[dict[str, str]]],
) -> None:
    url, received = receiver
    poller = gitpoll.start(upstream.url, root, *IDLE, "--notify-url", url)
    poller.wait_published(upstream.head())
    wait_until(lambda: len(received) == 2, 10, message="a retried notification")
    assert all(headers["Gitpoll-Commit"] == upstream.head() for headers in received)
    wait_until(
        lambda: poller.metric("gitpoll_hook_runs_total", hook="notify", result="success") == 1,
        5,
        message="the retry to be counted",
    )
    assert poller.metric("gitpoll_hook_runs_total", hook="notify", result="error") == 1
    assert "tok123" not in poller.output(), "the URL's token is never logged"


def test_retired_checkouts_are_removed_after_the_grace_period(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    big = os.urandom(200_000).hex()
    upstream.commit_and_push({"blob.txt": big})
    first = upstream.head()
    unique_blob = git("rev-parse", f"{first}:blob.txt", cwd=upstream.work)
    poller = gitpoll.start(upstream.url, root, *IDLE, "--worktree-grace", "1", "--gc-interval", "0")
    poller.wait_published(first)
    second = upstream.commit_and_push({"blob.txt": "small now\n"})
    poller.process.signal(1)  # SIGHUP: the only sync this test asks for
    poller.wait_published(second)
    assert (root / ".worktrees" / first).is_dir(), "kept for readers still using it"

    # No further sync is needed for the old checkout to go, and its objects with it.
    wait_until(lambda: not (root / ".worktrees" / first).exists(), 10, message="removal")
    wait_until(lambda: "collected git garbage" in poller.output(), 10, message="gc")
    assert poller.metric("gitpoll_checkouts_removed_total") == 1
    assert total_syncs(poller) == 2
    missing = git("--git-dir", root / ".git", "cat-file", "-t", unique_blob, check=False)
    assert missing == "", "the old commit's objects were pruned"
