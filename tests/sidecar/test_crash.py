"""kill -9 at random points of a sync, then restart on the same volume: the
published link stays valid all along, and the new process carries on."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

from support.gitpoll import GitpollFactory
from support.gitrepo import Upstream, git
from support.wait import wait_until

FILES = [f"dir{n % 20}/file{n}.txt" for n in range(600)]
KILLS = 12


def tree(version: int) -> dict[str, str]:
    return {name: f"version {version} of {name}\n" for name in FILES}


def check_published_tree(root: Path, problems: list[str], stop: threading.Event) -> None:
    """Keep resolving the link; it must always name a complete checkout."""
    while not stop.is_set():
        try:
            target = os.readlink(root / "current")
            resolved = root / target
            names = sorted(str(p.relative_to(resolved)) for p in resolved.rglob("*.txt"))
            versions = {(resolved / name).read_text().split()[1] for name in names}
        except OSError as exc:
            problems.append(f"link unusable: {exc}")
            continue
        if names != sorted(FILES) or len(versions) != 1:
            problems.append(f"{target}: {len(names)} files, versions {sorted(versions)[:5]}")


def test_kill_9_at_random_points_never_breaks_the_published_link(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    commits = upstream.prepare_commits([tree(v) for v in range(KILLS + 1)])
    upstream.push_commit(commits[0])
    started = time.monotonic()
    first = gitpoll.start(upstream.url, root, "--period", "0.05", http=False)
    first.wait_published(commits[0])
    # Kill points are spread over the time a start-up and sync takes here.
    span = 1.3 * (time.monotonic() - started)
    first.process.signal(signal.SIGKILL)
    first.process.wait(5)

    problems: list[str] = []
    stop = threading.Event()
    checker = threading.Thread(target=check_published_tree, args=(root, problems, stop))
    checker.start()
    kill_points = []
    try:
        for stratum, commit in enumerate(commits[1:]):
            upstream.push_commit(commit)
            victim = gitpoll.start(upstream.url, root, "--period", "0.05", http=False)
            # One random point in each slice of the span: start-up, ls-remote,
            # fetch, checkout, rename and swap all get their share of kills.
            delay = (stratum + rng.random()) * span / KILLS
            time.sleep(delay)
            victim.process.signal(signal.SIGKILL)
            victim.process.wait(5)
            published = (root / "current").resolve().name == commit
            kill_points.append(f"{delay:.3f}s{'+' if published else '-'}")

        survivor = gitpoll.start(upstream.url, root, "--period", "0.05")
        survivor.wait_published(commits[-1], timeout=30)
        survivor.wait_ready()
    finally:
        stop.set()
        checker.join()

    context = f"seed={seed} kill points (+ published before the kill)={kill_points}"
    assert problems == [], context
    # Retired checkouts and crash leftovers are cleaned up by the survivor.
    wait_until(
        lambda: sorted(p.name for p in (root / ".worktrees").iterdir()) == [commits[-1]],
        20,
        message=f"only the published checkout to remain ({context})",
    )
    git("--git-dir", root / ".git", "fsck", "--connectivity-only")
    assert "Traceback" not in survivor.output(), context
