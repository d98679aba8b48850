"""Publishing from a local bare repository: what lands on the volume."""

from __future__ import annotations

import os
from pathlib import Path

from support.gitpoll import GitpollFactory
from support.gitrepo import Upstream


def test_publishes_the_default_branch_as_a_complete_checkout(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path
) -> None:
    upstream.commit_and_push(
        {"index.html": "<h1>hello</h1>\n", "css/site.css": "body{}\n"}, "second"
    )
    poller = gitpoll.start(upstream.url, root, "--period", "0.2")

    poller.wait_published(upstream.head())
    link = os.readlink(root / "current")
    assert link == f".worktrees/{upstream.head()}", "the link is relative, named by the commit"
    assert (root / "current" / "index.html").read_text() == "<h1>hello</h1>\n"
    assert (root / "current" / "css" / "site.css").read_text() == "body{}\n"
    assert not (root / "current" / ".git").exists(), "the published tree holds no .git file"
