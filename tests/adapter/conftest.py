"""Fixtures for the httpd-adapter tests: recorded status pages, real Apache
servers with mod_status, the adapter process, Prometheus, and upstreams that
misbehave on purpose."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"


def status_body(name: str) -> str:
    """A recorded or hand-made `?auto` page from tests/adapter/data, decoded
    as the adapter decodes what Apache sends (ISO-8859-1)."""
    return (DATA / name).read_bytes().decode("latin-1")
