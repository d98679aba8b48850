"""What gitpoll follows (branches, tags, commits, force-pushes) and how it
starts and stops."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from support.gitdaemon import GitDaemon
from support.gitpoll import GitpollFactory
from support.gitrepo import Upstream, git
from support.http import http_get
from support.tcpproxy import TCPProxy
from support.wait import wait_until

FAST = ("--period", "0.1")
MakeProxy = Callable[..., TCPProxy]


def test_new_commits_on_the_branch_are_published(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    poller = gitpoll.start(upstream.url, root, *FAST)
    poller.wait_published(upstream.head())
    second = upstream.commit_and_push({"index.html": "<h1>version 2</h1>\n"})
    poller.wait_published(second)
    assert (root / "current" / "index.html").read_text() == "<h1>version 2</h1>\n"


def test_a_force_pushed_rewound_branch_is_followed(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    first = upstream.head()
    second = upstream.commit_and_push({"index.html": "two\n"})
    poller = gitpoll.start(upstream.url, root, *FAST, "--ref", "main")
    poller.wait_published(second)

    upstream.reset(first)
    upstream.push(force=True)
    poller.wait_published(first)
    assert (root / "current" / "index.html").read_text() == "<h1>version 1</h1>\n"

    rewritten = upstream.commit_and_push({"index.html": "rewritten\n"})
    poller.wait_published(rewritten)
    assert "Traceback" not in poller.output()


def test_a_moved_annotated_tag_is_followed(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    upstream.tag("release", annotated=True)
    tagged = upstream.head()
    upstream.commit_and_push({"index.html": "not released\n"})
    poller = gitpoll.start(upstream.url, root, *FAST, "--ref", "release")
    poller.wait_published(tagged)

    moved_to = upstream.commit_and_push({"index.html": "release 2\n"})
    upstream.tag("release", annotated=True, force=True)
    poller.wait_published(moved_to)
    assert (root / "current" / "index.html").read_text() == "release 2\n"


def test_a_lightweight_tag(gitpoll: GitpollFactory, upstream: Upstream, root: Path) -> None:
    upstream.tag("v1")
    tagged = upstream.head()
    upstream.commit_and_push({"index.html": "later\n"})
    poller = gitpoll.start(upstream.url, root, *FAST, "--ref", "v1")
    poller.wait_published(tagged)


def test_a_commit_ref_is_synced_once_then_polling_stops(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    pinned = upstream.head()
    upstream.commit_and_push({"index.html": "newer\n"})
    poller = gitpoll.start(upstream.url, root, *FAST, "--ref", pinned)
    poller.wait_published(pinned)
    wait_until(lambda: "polling stops" in poller.output(), 10, message="the stop notice")
    syncs = poller.metric("gitpoll_syncs_total", result="success")
    upstream.commit_and_push({"index.html": "newest\n"})
    # Ten periods pass; nothing may run in them.
    time.sleep(1.0)
    assert poller.metric("gitpoll_syncs_total", result="success") == syncs
    assert poller.metric("gitpoll_syncs_total", result="noop") == 0
    assert poller.published() == pinned


def test_depth_zero_fetches_the_full_history(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    for n in range(3):
        upstream.commit({"index.html": f"{n}\n"})
    upstream.push()
    code, output = gitpoll.run(
        ["--repo", upstream.url, "--root", str(root), "--one-time", "--depth", "0"]
    )
    assert code == 0, output
    count = git("--git-dir", root / ".git", "rev-list", "--count", upstream.head())
    assert int(count) == 4
    assert not (root / ".git" / "shallow").exists()


def test_depth_one_keeps_a_single_commit(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    for n in range(3):
        upstream.commit({"index.html": f"{n}\n"})
    upstream.push()
    code, output = gitpoll.run(["--repo", upstream.url, "--root", str(root), "--one-time"])
    assert code == 0, output
    assert git("--git-dir", root / ".git", "rev-list", "--count", upstream.head()) == "1"


def test_one_time_publishes_and_exits_zero(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    code, output = gitpoll.run(["--repo", upstream.url, "--root", str(root), "--one-time"])
    assert code == 0, output
    assert (root / "current" / "index.html").read_text() == "<h1>version 1</h1>\n"


def test_one_time_runs_the_hook_once_in_the_new_checkout(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, tmp_path: Path
) -> None:
    record = tmp_path / "hook-runs"
    hook = f'echo "$GITPOLL_COMMIT $PWD $(cat index.html)" >> {record}'
    argv = ["--repo", upstream.url, "--root", str(root), "--one-time", "--exec-on-sync", hook]
    code, output = gitpoll.run(argv)
    assert code == 0, output
    commit = upstream.head()
    assert record.read_text() == f"{commit} {root / '.worktrees' / commit} <h1>version 1</h1>\n"
    assert "hook succeeded" in output

    # A failing hook is logged once, without a retry; the publish stands.
    code, output = gitpoll.run([*argv[:-1], "echo broken >&2; exit 3"])
    assert code == 0, output
    failures = [line for line in output.splitlines() if "hook failed" in line]
    assert len(failures) == 1 and "exited with code 3: broken" in failures[0], output
    assert "Traceback" not in output


def test_one_time_failure_exits_non_zero_with_the_cause(
    gitpoll: GitpollFactory, tmp_path: Path, root: Path
) -> None:
    missing = tmp_path / "no-such-repo.git"
    code, output = gitpoll.run(["--repo", str(missing), "--root", str(root), "--one-time"])
    assert code == 1
    assert "repository does not exist" in output
    assert "Traceback" not in output


def test_a_non_empty_volume_is_fine(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    (root / "lost+found").mkdir()
    (root / "README.txt").write_text("left by someone else\n")
    code, output = gitpoll.run(["--repo", upstream.url, "--root", str(root), "--one-time"])
    assert code == 0, output
    assert (root / "README.txt").read_text() == "left by someone else\n"
    assert (root / "current" / "index.html").exists()


def test_restarting_on_the_same_volume_carries_on(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    first = gitpoll.start(upstream.url, root, *FAST)
    first.wait_published(upstream.head())
    assert first.process.stop() == 0

    second = gitpoll.start(upstream.url, root, *FAST)
    second.wait_ready(5)
    wait_until(
        lambda: second.metric("gitpoll_syncs_total", result="noop") >= 1,
        10,
        message="a no-op sync after the restart",
    )
    assert second.metric("gitpoll_syncs_total", result="success") == 0
    newer = upstream.commit_and_push({"index.html": "after restart\n"})
    second.wait_published(newer)


def test_a_second_instance_on_the_same_volume_is_refused(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    first = gitpoll.start(upstream.url, root, *FAST)
    first.wait_published(upstream.head())
    code, output = gitpoll.run(["--repo", upstream.url, "--root", str(root), "--one-time"])
    assert code == 1
    assert "another gitpoll" in output


def test_readiness_waits_for_the_first_publish(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, tmp_path: Path
) -> None:
    later = tmp_path / "later.git"
    poller = gitpoll.start(str(later), root, *FAST)
    wait_until(lambda: poller.metric("gitpoll_syncs_total", result="error") >= 1, 10)
    status, body = http_get(poller.url + "/readyz")
    assert status == 503, body
    assert http_get(poller.url + "/healthz")[0] == 200, "alive while not ready"

    upstream.bare.rename(later)
    poller.wait_ready()
    assert poller.published() == git("--git-dir", later, "rev-parse", "HEAD")


def test_sigterm_during_a_hung_fetch_exits_zero_promptly(
    gitpoll: GitpollFactory, root: Path, git_daemon: GitDaemon, proxy: MakeProxy
) -> None:
    silent = proxy(git_daemon.port, blackhole=True)
    poller = gitpoll.start(git_daemon.url_for("upstream.git", silent.port), root, "--timeout", "60")
    wait_until(lambda: silent.connections >= 1, 10, message="gitpoll to reach the server")
    started = time.monotonic()
    poller.process.signal(signal.SIGTERM)
    code = poller.process.wait(timeout=10)
    elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 2.0, f"took {elapsed:.2f}s to stop"
    assert "Traceback" not in poller.output()


def test_a_hung_server_is_cut_off_by_the_timeout(
    gitpoll: GitpollFactory, root: Path, git_daemon: GitDaemon, proxy: MakeProxy
) -> None:
    silent = proxy(git_daemon.port, blackhole=True)
    poller = gitpoll.start(
        git_daemon.url_for("upstream.git", silent.port), root, "--timeout", "0.5"
    )
    wait_until(
        lambda: poller.metric("gitpoll_sync_errors_total", reason="timeout") >= 1,
        10,
        message="a timed-out sync",
    )
    assert "no result within 0.5s (--timeout)" in poller.output()


def test_max_failures_exits_after_that_many_consecutive_failures(
    gitpoll: GitpollFactory, tmp_path: Path, root: Path
) -> None:
    poller = gitpoll.start(
        str(tmp_path / "missing.git"), root, "--period", "0.05", "--max-failures", "3"
    )
    assert poller.process.wait(timeout=20) == 1
    output = poller.output()
    assert output.count("sync failed") == 3
    assert "giving up after consecutive failed syncs" in output


def test_sighup_triggers_a_sync(gitpoll: GitpollFactory, upstream: Upstream, root: Path) -> None:
    poller = gitpoll.start(upstream.url, root, "--period", "3600")
    poller.wait_published(upstream.head())
    newer = upstream.commit_and_push({"index.html": "by signal\n"})
    poller.process.signal(signal.SIGHUP)
    poller.wait_published(newer, timeout=5)


def test_json_logs_are_one_object_per_line(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    import json

    code, output = gitpoll.run(
        ["--repo", upstream.url, "--root", str(root), "--one-time", "--log-format", "json"]
    )
    assert code == 0
    events = [json.loads(line) for line in output.splitlines()]
    published = [e for e in events if e["msg"] == "published a new commit"]
    assert len(published) == 1
    assert published[0]["commit"] == upstream.head()
    assert published[0]["result"] == "success" and published[0]["duration"] > 0


def test_one_time_stopped_before_it_publishes_exits_non_zero(
    gitpoll: GitpollFactory, root: Path, git_daemon: GitDaemon, proxy: MakeProxy
) -> None:
    silent = proxy(git_daemon.port, blackhole=True)
    run = gitpoll.start(
        git_daemon.url_for("upstream.git", silent.port), root, "--one-time", http=False
    )
    wait_until(lambda: silent.connections >= 1, 10, message="gitpoll to reach the server")
    run.process.signal(signal.SIGTERM)
    assert run.process.wait(timeout=10) == 1
    assert "stopped before the one-time sync finished" in run.output()
    assert run.published() is None
