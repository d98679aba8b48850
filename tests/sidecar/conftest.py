"""Fixtures for the gitpoll tests: an upstream repository and gitpoll runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.gitpoll import GitpollFactory
from support.gitrepo import Upstream
from support.processes import ProcessGroup


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    repo = Upstream(tmp_path)
    repo.commit_and_push({"index.html": "<h1>version 1</h1>\n"}, "first")
    return repo


@pytest.fixture
def gitpoll(processes: ProcessGroup, tmp_path: Path) -> GitpollFactory:
    logs = tmp_path / "logs"
    logs.mkdir()
    return GitpollFactory(processes, logs)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The shared volume gitpoll publishes into."""
    path = tmp_path / "volume"
    path.mkdir()
    return path
