"""Recorded and hand-made mod_status pages (tests/adapter/data)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"


def status_body(name: str) -> str:
    """A page from tests/adapter/data, decoded as the adapter decodes what
    Apache sends (ISO-8859-1)."""
    return (DATA / name).read_bytes().decode("latin-1")
