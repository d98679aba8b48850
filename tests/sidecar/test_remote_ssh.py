"""Syncing over ssh from a real sshd: keys, host key checking, and how a
refused key or an unknown host is reported."""

from __future__ import annotations

from pathlib import Path

from support.gitpoll import Gitpoll, GitpollFactory
from support.gitrepo import Upstream
from support.sshd import SshServer, generate_key, public_key
from support.wait import wait_until

FAST = ("--period", "0.2")


def known_hosts(path: Path, line: str) -> Path:
    path.write_text(line + "\n")
    return path


def wait_errors(poller: Gitpoll, reason: str) -> None:
    wait_until(
        lambda: poller.metric("gitpoll_sync_errors_total", reason=reason) >= 1,
        15,
        message=f"a sync error with reason={reason}\n{poller.output()[-3000:]}",
    )


def test_syncs_with_a_key_and_a_known_hosts_file_and_publishes_new_commits(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, sshd: SshServer, tmp_path: Path
) -> None:
    hosts = known_hosts(tmp_path / "known_hosts", sshd.known_hosts_line())
    poller = gitpoll.start(
        sshd.url_for(upstream.bare),
        root,
        *FAST,
        "--ssh-key-file",
        str(sshd.client_key),
        "--known-hosts-file",
        str(hosts),
    )
    poller.wait_published(upstream.head())
    assert (root / "current" / "index.html").read_text() == "<h1>version 1</h1>\n"

    second = upstream.commit_and_push({"index.html": "<h1>version 2</h1>\n"}, "second")
    poller.wait_published(second)
    assert (root / "current" / "index.html").read_text() == "<h1>version 2</h1>\n"
    assert f"Accepted publickey for {sshd.user}" in sshd.output()


def test_a_host_key_not_in_known_hosts_is_refused_and_nothing_is_published(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, sshd: SshServer, tmp_path: Path
) -> None:
    impostor = generate_key(tmp_path / "impostor_host_key")
    hosts = known_hosts(tmp_path / "known_hosts", f"[127.0.0.1]:{sshd.port} {public_key(impostor)}")
    poller = gitpoll.start(
        sshd.url_for(upstream.bare),
        root,
        *FAST,
        "--ssh-key-file",
        str(sshd.client_key),
        "--known-hosts-file",
        str(hosts),
    )
    wait_errors(poller, "host_key")
    assert poller.published() is None
    assert not (root / ".worktrees").exists() or not any((root / ".worktrees").iterdir())
    assert "Accepted publickey" not in sshd.output(), "the client went on past the host key"
    assert "Traceback" not in poller.output()


def test_a_key_the_server_does_not_accept_is_an_auth_error(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, sshd: SshServer, tmp_path: Path
) -> None:
    stranger = generate_key(tmp_path / "stranger_key")
    hosts = known_hosts(tmp_path / "known_hosts", sshd.known_hosts_line())
    poller = gitpoll.start(
        sshd.url_for(upstream.bare),
        root,
        *FAST,
        "--ssh-key-file",
        str(stranger),
        "--known-hosts-file",
        str(hosts),
    )
    wait_errors(poller, "auth")
    assert poller.published() is None
    assert "Traceback" not in poller.output()


def test_without_a_known_hosts_file_it_still_syncs(
    gitpoll: GitpollFactory, upstream: Upstream, root: Path, sshd: SshServer
) -> None:
    poller = gitpoll.start(
        sshd.url_for(upstream.bare), root, *FAST, "--ssh-key-file", str(sshd.client_key)
    )
    poller.wait_published(upstream.head())
    assert (root / "current" / "index.html").read_text() == "<h1>version 1</h1>\n"
