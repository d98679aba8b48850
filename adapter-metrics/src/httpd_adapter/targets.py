"""Status page URLs and the `/probe` allow-list. Pure.

A target is written as a full URL (`https://web-1:8443/server-status`) or as
`host[:port]` for `http://host[:port]/server-status`; `auto` is added to
the query when missing, since without it mod_status answers with HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from yarl import URL

DEFAULT_STATUS_PATH = "/server-status"
SCHEMES = ("http", "https")

_PATTERN = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?P<host>\[[^\]/\s]*\]|[^/:\[\]@?#\s]+)"
    r"(?::(?P<port>\d+|\*))?"
    r"(?P<path>/[^?#]*)?"
)


def status_url(text: str) -> URL:
    """The URL to fetch for `text`, with `auto` in its query and without a
    fragment. Raises ValueError naming what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("empty URL")
    bare = "://" not in text
    try:
        url = URL(f"http://{text}" if bare else text)
        host = url.host
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a URL ({exc})") from None
    if url.scheme not in SCHEMES:
        raise ValueError(f"{text!r}: the scheme must be http or https")
    if not host:
        raise ValueError(f"{text!r} has no host")
    if bare and url.path in ("", "/"):
        url = url.with_path(DEFAULT_STATUS_PATH)
    url = url.with_fragment(None)
    query = url.raw_query_string
    if "auto" not in query:
        url = url.with_query(f"{query}&auto" if query else "auto")
    return url


def without_credentials(url: URL) -> URL:
    return url.with_user(None) if url.raw_user or url.raw_password else url


@dataclass(frozen=True, slots=True)
class TargetPattern:
    """One `--allow-target`: `[scheme://]host-glob[:port|:*][/path-glob]`.
    A part left out matches anything: any of http and https, any port, any
    path. Globs use `*`, `?` and `[...]`, matched against the parsed host
    (lower case) and path only, so no URL trick can slip another host in."""

    text: str
    schemes: tuple[str, ...]
    host: str
    port: int | None
    path: str | None

    def matches(self, url: URL) -> bool:
        host = (url.host or "").lower()
        return (
            url.scheme in self.schemes
            and fnmatchcase(host, self.host)
            and (self.port is None or url.port == self.port)
            and (self.path is None or fnmatchcase(url.path, self.path))
        )


def parse_target_pattern(text: str) -> TargetPattern:
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not [scheme://]host[:port][/path]")
    scheme = match["scheme"]
    if scheme is not None and scheme.lower() not in SCHEMES:
        raise ValueError(f"{text!r}: the scheme must be http or https")
    port = match["port"]
    if port is not None and port != "*" and not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: port {port} is out of range")
    return TargetPattern(
        text=text.strip(),
        schemes=(scheme.lower(),) if scheme else SCHEMES,
        host=match["host"].strip("[]").lower(),
        port=None if port in (None, "*") else int(port),
        path=match["path"],
    )


def allowed(url: URL, patterns: tuple[TargetPattern, ...]) -> bool:
    return any(pattern.matches(url) for pattern in patterns)
