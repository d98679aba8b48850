"""Probe targets and the --allow-target patterns that admit them."""

from __future__ import annotations

import pytest
from yarl import URL

from httpd_adapter.targets import allowed, parse_target_pattern, status_url


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("web-1:8080", "http://web-1:8080/server-status?auto"),
        ("web-1", "http://web-1/server-status?auto"),
        ("10.0.0.7:80/", "http://10.0.0.7/server-status?auto"),
        ("[::1]:8080", "http://[::1]:8080/server-status?auto"),
        ("https://web-1/status", "https://web-1/status?auto"),
        ("http://web-1/server-status?auto", "http://web-1/server-status?auto"),
    ],
)
def test_targets_become_status_urls(target: str, url: str) -> None:
    assert str(status_url(target)) == url


@pytest.mark.parametrize(
    ("pattern", "target", "admitted"),
    [
        ("*.web.svc.cluster.local", "http://a.web.svc.cluster.local:8080/server-status", True),
        ("*.web.svc.cluster.local", "https://a.web.svc.cluster.local/x", True),
        ("*.web.svc.cluster.local", "http://web.svc.cluster.local/server-status", False),
        ("*.web.svc.cluster.local", "http://evil.example/?x=.web.svc.cluster.local", False),
        ("*.web.svc.cluster.local", "http://evil.example#.web.svc.cluster.local", False),
        ("*.web.svc.cluster.local", "http://a.web.svc.cluster.local@evil.example/", False),
        ("http://10.0.0.*:80", "http://10.0.0.7/server-status", True),
        ("http://10.0.0.*:80", "http://10.0.0.7:8080/server-status", False),
        ("http://10.0.0.*:80", "https://10.0.0.7:80/server-status", False),
        ("10.0.0.*:*/server-status", "http://10.0.0.7:81/server-status", True),
        ("10.0.0.*:*/server-status", "http://10.0.0.7:81/admin", False),
        ("WEB-1", "http://web-1/server-status", True),
        ("[::1]:8080", "http://[::1]:8080/server-status", True),
        ("[::1]:8080", "http://[::2]:8080/server-status", False),
    ],
)
def test_patterns_match_the_parsed_host_port_and_path(
    pattern: str, target: str, admitted: bool
) -> None:
    assert allowed(URL(target), (parse_target_pattern(pattern),)) is admitted


def test_nothing_is_allowed_without_a_pattern() -> None:
    assert not allowed(URL("http://localhost/server-status?auto"), ())


@pytest.mark.parametrize("pattern", ["", "http://", "a b", "gopher://x", "x:70000", "user@host"])
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_target_pattern(pattern)
