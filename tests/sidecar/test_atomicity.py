"""The publishing guarantees, checked by readers racing real publishes:

- a reader that resolves ROOT/current once and reads every file under that
  path reads one commit, never a mix of two;
- every lookup through ROOT/current finds a complete file, never a missing
  or half-written one."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from support.gitpoll import GitpollFactory
from support.gitrepo import Upstream
from support.wait import wait_until

PAGES = [f"page{n:02d}.html" for n in range(12)] + [f"assets/part{n}.css" for n in range(4)]
PUBLISHES = 100


def page_content(version: int, name: str) -> str:
    # Large enough that a file written in place would be seen half-written.
    line = f"version={version} file={name}\n"
    return line * (8192 // len(line))


def version_of(content: str) -> int | None:
    """The version a complete file holds, None when it is not complete."""
    first = content.split("\n", 1)[0]
    if not first.startswith("version="):
        return None
    version = int(first.split()[0].removeprefix("version="))
    name = first.split("file=", 1)[1]
    return version if content == page_content(version, name) else None


@dataclass
class Observations:
    reads: int = 0
    versions_seen: set[int] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def read_resolved_once(root: Path, stop: threading.Event, seen: Observations) -> None:
    while not stop.is_set():
        resolved = os.path.realpath(root / "current")
        versions = set()
        for name in PAGES:
            try:
                content = Path(resolved, name).read_text()
            except OSError as exc:
                seen.problems.append(f"{resolved}/{name}: {exc}")
                continue
            versions.add(version_of(content))
        seen.reads += 1
        if len(versions) != 1 or None in versions:
            seen.problems.append(f"mixed or partial read under {resolved}: {versions}")
        seen.versions_seen.update(v for v in versions if v is not None)


def read_through_link(root: Path, stop: threading.Event, seen: Observations) -> None:
    while not stop.is_set():
        for name in PAGES:
            try:
                content = (root / "current" / name).read_text()
            except OSError as exc:
                seen.problems.append(f"current/{name}: {exc}")
                continue
            version = version_of(content)
            seen.reads += 1
            if version is None:
                seen.problems.append(f"current/{name} was incomplete")
            else:
                seen.versions_seen.add(version)


def test_readers_never_see_a_mixed_or_partial_tree(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    upstream.commit_and_push({name: page_content(0, name) for name in PAGES}, "version 0")
    poller = gitpoll.start(upstream.url, root, "--period", "0.02", "--worktree-grace", "2")
    poller.wait_published(upstream.head())

    stop = threading.Event()
    resolved_once, through_link = Observations(), Observations()
    readers = [
        threading.Thread(target=read_resolved_once, args=(root, stop, resolved_once)),
        threading.Thread(target=read_through_link, args=(root, stop, through_link)),
    ]
    for reader in readers:
        reader.start()
    commits = upstream.prepare_commits(
        [
            {name: page_content(version, name) for name in PAGES}
            for version in range(1, PUBLISHES + 1)
        ]
    )
    try:
        for commit in commits:
            upstream.push_commit(commit)
            poller.wait_published(commit)
    finally:
        stop.set()
        for reader in readers:
            reader.join()

    wait_until(
        lambda: poller.metric("gitpoll_syncs_total", result="success") >= PUBLISHES + 1,
        5,
        message="every publish to be counted",
    )
    for observations in (resolved_once, through_link):
        assert observations.problems == []
        # The readers really raced the publishes: they saw most versions go by.
        assert len(observations.versions_seen) >= PUBLISHES // 2, observations.versions_seen
