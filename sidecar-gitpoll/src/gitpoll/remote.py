"""Repository addresses: what git is given, and what a log line may show."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

RemoteKind = Literal["http", "ssh", "git", "file", "local"]

_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")
_KINDS: dict[str, RemoteKind] = {
    "http": "http",
    "https": "http",
    "ssh": "ssh",
    "git+ssh": "ssh",
    "git": "git",
    "file": "file",
}
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


@dataclass(frozen=True, slots=True)
class Remote:
    url: str
    """The address given to git: never carries a password."""
    display: str
    """The address as logs, metrics and error messages show it."""
    kind: RemoteKind
    url_username: str | None = None
    url_password: str | None = field(default=None, repr=False)
    """Credentials found in an https URL, moved out of it so they never reach
    a process's argv; `--username`/`--password-file` are the better way."""


def redact_url(text: str) -> str:
    """Hide the user-info part of every URL in `text`."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def _is_scp_like(text: str) -> bool:
    # git's own rule: `host:path` is ssh when the colon comes before any slash.
    colon = text.find(":")
    slash = text.find("/")
    return colon > 0 and (slash == -1 or colon < slash)


def parse_remote(text: str) -> Remote:
    """Classify and sanitise the `--repo` value; ValueError when unusable."""
    if not text.strip():
        raise ValueError("the repository address is empty")
    scheme_match = _SCHEME.match(text)
    if scheme_match is None:
        if _is_scp_like(text):
            return Remote(url=text, display=text, kind="ssh")
        path = os.path.abspath(text)
        return Remote(url=path, display=path, kind="local")
    scheme = scheme_match["scheme"].lower()
    kind = _KINDS.get(scheme)
    if kind is None:
        raise ValueError(f"unsupported scheme {scheme!r} (use https, ssh, git, file or a path)")
    if kind != "http":
        return Remote(url=text, display=redact_url(text), kind=kind)
    parts = urlsplit(text)
    if not parts.hostname:
        raise ValueError(f"{redact_url(text)!r} has no host")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return Remote(
        url=clean,
        display=clean,
        kind="http",
        url_username=unquote(parts.username) if parts.username else None,
        url_password=unquote(parts.password) if parts.password else None,
    )


def display_endpoint(url: str) -> str:
    """A notification URL as logs may show it: no user-info, no query string
    (chat and CI webhook URLs often carry their token there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
