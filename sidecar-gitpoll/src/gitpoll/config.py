"""The validated, immutable configuration of one gitpoll process."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from patterns_common.cli import HostPort
from patterns_common.logsetup import LogFormat

from .remote import Remote, display_endpoint

_FULL_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


def is_full_sha(ref: str) -> bool:
    """A full SHA-1 or SHA-256 commit id (abbreviated ones are ambiguous remotely)."""
    return _FULL_SHA.match(ref) is not None


@dataclass(frozen=True, slots=True)
class Config:
    remote: Remote
    ref: str | None
    """Branch, tag, full commit SHA, or None for the remote's default branch."""
    root: Path
    link: str
    period: float
    depth: int
    timeout: float
    one_time: bool
    max_failures: int
    http_bind: HostPort | None
    webhook_secret_file: Path | None
    username: str | None
    password_file: Path | None
    ssh_key_file: Path | None
    known_hosts_file: Path | None
    exec_on_sync: str | None
    exec_timeout: float
    notify_url: str | None
    notify_timeout: float
    worktree_grace: float
    gc_interval: float
    log_format: LogFormat
    log_level: str

    @property
    def ref_is_commit(self) -> bool:
        return self.ref is not None and is_full_sha(self.ref)

    def redacted(self) -> dict[str, object]:
        """The effective configuration as it may be logged: no secrets, only
        the paths of the files that hold them."""
        values: dict[str, object] = {
            "repo": self.remote.display,
            "ref": self.ref or "(remote default branch)",
            "root": str(self.root),
            "link": self.link,
            "period": self.period,
            "depth": self.depth,
            "timeout": self.timeout,
            "one_time": self.one_time,
            "max_failures": self.max_failures,
            "http_bind": str(self.http_bind) if self.http_bind else None,
            "webhook": self.webhook_secret_file is not None,
            "username": self.username,
            "password_file": str(self.password_file) if self.password_file else None,
            "ssh_key_file": str(self.ssh_key_file) if self.ssh_key_file else None,
            "known_hosts_file": str(self.known_hosts_file) if self.known_hosts_file else None,
            "exec_on_sync": self.exec_on_sync is not None,
            "notify_url": display_endpoint(self.notify_url) if self.notify_url else None,
            "worktree_grace": self.worktree_grace,
            "gc_interval": self.gc_interval,
        }
        return {key: value for key, value in values.items() if value is not None}
