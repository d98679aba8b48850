"""Fixtures for the httpd-adapter tests: the adapter and apache_exporter
processes, real Apache servers with mod_status under each MPM, and an
upstream that misbehaves on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.apache import ApacheServer
from support.bad_upstream import BadUpstream
from support.httpd_adapter import ExporterFactory, mod_status_server
from support.processes import ProcessGroup

from .pages import status_body


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
