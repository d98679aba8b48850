"""Fixtures for the pg-ambassador tests: real PostgreSQL servers and
pg-ambassador processes.

The servers that tests only read from are shared by the whole session (one
ProcessGroup of their own, stopped at the end): `pg_a` (TLS on, SCRAM and
MD5 accounts) and `pg_b` (plain). Tests that stop, promote or kill servers
make their own.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.ambassador import AmbassadorFactory
from support.postgres import (
    PgServer,
    make_template,
    new_server,
    owned_directory,
    remove_server,
    run_user,
)
from support.processes import ProcessGroup

SCRAM_USER, SCRAM_PASSWORD = "scram_user", "scram-Pa55-4f1d9a"
MD5_USER, MD5_PASSWORD = "md5_user", "md5-Pa55-8c2e7b"
ROTATING_USER = "rotating_user"
NOLOGIN_ROLE = "nologin_role"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def pg_processes() -> Iterator[ProcessGroup]:
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="session")
def pg_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pg-logs")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[Path]:
    directory = owned_directory("pg-template-")
    try:
        yield make_template(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def make_certificate(directory: Path, common_name: str = "localhost") -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, readable by the
    server's account only (PostgreSQL refuses a key others can read)."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    user = run_user()
    if user is not None:
        for path in (cert, key):
            shutil.chown(path, user, user)
    return Certificate(cert, key)


@pytest.fixture(scope="session")
def pg_certificate() -> Iterator[Certificate]:
    directory = owned_directory("pg-tls-")
    try:
        yield make_certificate(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_a(
    pg_processes: ProcessGroup, pg_template: Path, pg_logs: Path, pg_certificate: Certificate
) -> Iterator[PgServer]:
    """TLS on; `scram_user` (and `rotating_user`, whose password tests set)
    must log in with SCRAM-SHA-256, `md5_user` with MD5; everyone else is
    trusted. Databases app_a and shared."""
    server = new_server(
        pg_processes,
        pg_template,
        pg_logs,
        "a",
        settings={
            "ssl": "on",
            "ssl_cert_file": str(pg_certificate.cert),
            "ssl_key_file": str(pg_certificate.key),
        },
        hba=(
            f"host all {SCRAM_USER} 127.0.0.1/32 scram-sha-256",
            f"host all {MD5_USER} 127.0.0.1/32 md5",
            f"host all {ROTATING_USER} 127.0.0.1/32 scram-sha-256",
            "host all all 127.0.0.1/32 trust",
        ),
    )
    try:
        server.sql("CREATE DATABASE app_a")
        server.sql("CREATE DATABASE shared")
        server.sql(
            "SET password_encryption = 'scram-sha-256';"
            f"CREATE ROLE {SCRAM_USER} LOGIN PASSWORD '{SCRAM_PASSWORD}';"
            "SET password_encryption = 'md5';"
            f"CREATE ROLE {MD5_USER} LOGIN PASSWORD '{MD5_PASSWORD}';"
            f"CREATE ROLE {NOLOGIN_ROLE} NOLOGIN;"
            f"CREATE ROLE {ROTATING_USER} LOGIN;"
        )
        yield server
    finally:
        remove_server(server)


@pytest.fixture(scope="session")
def pg_b(pg_processes: ProcessGroup, pg_template: Path, pg_logs: Path) -> Iterator[PgServer]:
    """Plain, trusting; databases app_b and shared."""
    server = new_server(pg_processes, pg_template, pg_logs, "b")
    try:
        server.sql("CREATE DATABASE app_b")
        server.sql("CREATE DATABASE shared")
        yield server
    finally:
        remove_server(server)


@pytest.fixture
def ambassador(processes: ProcessGroup, tmp_path: Path) -> AmbassadorFactory:
    directory = tmp_path / "ambassador"
    directory.mkdir()
    return AmbassadorFactory(processes, directory)


def server_address(server: PgServer) -> str:
    return f"127.0.0.1:{server.port}"


FAST_HEALTH = {"interval": "200ms", "timeout": "2s"}
