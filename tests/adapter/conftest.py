"""Fixtures for the httpd-adapter tests: recorded status pages, real Apache
servers with mod_status, the adapter process, Prometheus, and upstreams that
misbehave on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.apache import ApacheServer
from support.bad_upstream import BadUpstream
from support.httpd_adapter import ExporterFactory, mod_status_server
from support.processes import ProcessGroup

DATA = Path(__file__).parent / "data"


def status_body(name: str) -> str:
    """A recorded or hand-made `?auto` page from tests/adapter/data, decoded
    as the adapter decodes what Apache sends (ISO-8859-1)."""
    return (DATA / name).read_bytes().decode("latin-1")


@pytest.fixture
def exporters(processes: ProcessGroup, tmp_path: Path) -> ExporterFactory:
    """Starts httpd-adapter and apache_exporter processes, stopped by PID."""
    logs = tmp_path / "logs"
    logs.mkdir()
    return ExporterFactory(processes, logs)


@pytest.fixture(params=["event", "prefork"])
def apache(
    request: pytest.FixtureRequest, processes: ProcessGroup, tmp_path: Path
) -> Iterator[ApacheServer]:
    """A real Apache with mod_status, once with each MPM."""
    server = mod_status_server(processes, tmp_path / "apache", mpm=request.param)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def apache_event(processes: ProcessGroup, tmp_path: Path) -> Iterator[ApacheServer]:
    server = mod_status_server(processes, tmp_path / "apache-event")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bad_upstream() -> Iterator[BadUpstream]:
    server = BadUpstream(status_body("status-2.4.71-event-balancer.txt"))
    try:
        yield server
    finally:
        server.close()
