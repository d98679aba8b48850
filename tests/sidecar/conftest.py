"""Fixtures for the gitpoll tests: an upstream repository and gitpoll runs."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.apache import shared_directory
from support.git_http import GitHttpServer, share_repository
from support.gitdaemon import GitDaemon
from support.gitpoll import GitpollFactory
from support.gitrepo import Upstream
from support.processes import ProcessGroup
from support.sshd import SshServer
from support.tcpproxy import TCPProxy


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


# -- real git servers --------------------------------------------------------

HTTP_USERNAME = "deploy-bot"
HTTP_PASSWORD = "initial-Pa55word-7f3c1e"


@pytest.fixture
def git_http(
    processes: ProcessGroup, tmp_path: Path, upstream: Upstream
) -> Iterator[GitHttpServer]:
    """Smart HTTP with basic auth, serving `upstream` as /git/upstream.git
    (`upstream.bare` becomes a symlink to where the server reads it)."""
    repos_dir = shared_directory("git-http-repos-")
    try:
        share_repository(upstream.bare, repos_dir)
        server = GitHttpServer(
            processes, tmp_path / "httpd", repos_dir, HTTP_USERNAME, HTTP_PASSWORD
        )
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(repos_dir, ignore_errors=True)


@pytest.fixture
def sshd(processes: ProcessGroup, tmp_path: Path) -> Iterator[SshServer]:
    server = SshServer(processes, tmp_path / "sshd")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def git_daemon(processes: ProcessGroup, upstream: Upstream, tmp_path: Path) -> GitDaemon:
    """`git daemon` serving the upstream repository as git://…/upstream.git."""
    return GitDaemon(processes, upstream.bare.parent, tmp_path)


@pytest.fixture
def proxy() -> Iterator[Callable[..., TCPProxy]]:
    """Makes TCPProxy instances (slow or silent servers), closed at teardown."""
    made: list[TCPProxy] = []

    def make(target_port: int, **options: object) -> TCPProxy:
        made.append(TCPProxy(target_port, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for each in made:
        each.close()
