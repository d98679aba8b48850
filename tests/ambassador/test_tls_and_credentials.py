"""TLS on the server leg while the app speaks plaintext, and credentials the
ambassador injects (SCRAM-SHA-256 and MD5) so the app needs no password."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from support.ambassador import AmbassadorFactory, run_async
from support.postgres import PgServer, owned_directory

from .conftest import (
    MD5_PASSWORD,
    MD5_USER,
    ROTATING_USER,
    SCRAM_PASSWORD,
    SCRAM_USER,
    Certificate,
    make_certificate,
    server_address,
)

ENCRYPTED = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def secret_file(directory: Path, name: str, password: str) -> Path:
    path = directory / name
    path.write_text(password + "\n")  # as `kubectl create secret --from-file` leaves it
    return path


def test_the_server_leg_is_encrypted_while_the_app_speaks_plaintext(
    ambassador: AmbassadorFactory, pg_a: PgServer, pg_b: PgServer, pg_certificate: Certificate
) -> None:
    a = server_address(pg_a)
    amb = ambassador.start(
        {
            "routes": {
                "required": {"servers": [a], "tls": "require", "database": "app_a"},
                "verified": {
                    "servers": [a],
                    "tls": "verify-full",
                    "ca_file": str(pg_certificate.cert),
                    "database": "app_a",
                },
                "preferred": {"servers": [a], "database": "app_a"},
                "plain": {"servers": [a], "tls": "disable", "database": "app_a"},
                "no_tls_server": {"servers": [server_address(pg_b)], "tls": "require"},
            },
            "health": {"interval": "200ms"},
        }
    )
    amb.wait_route_up("verified")
    for route in ("required", "verified", "preferred"):
        assert amb.query(route, ENCRYPTED, sslmode="disable") == "t", route
    assert amb.query("plain", ENCRYPTED, sslmode="disable") == "f"
    # The health check finds out first, and the refusal's detail says what it found.
    refused = amb.psql("no_tls_server", "SELECT 1")
    assert refused.returncode == 2
    assert 'no healthy server for database "no_tls_server"' in refused.stderr
    assert "rejected SSL upgrade" in refused.stderr


def test_verify_full_refuses_a_certificate_from_another_authority(
    ambassador: AmbassadorFactory, pg_a: PgServer
) -> None:
    directory = owned_directory("pg-other-ca-")
    try:
        other = make_certificate(directory, "impostor")
        amb = ambassador.start(
            {
                "routes": {
                    "app_a": {
                        "servers": [server_address(pg_a)],
                        "tls": "verify-full",
                        "ca_file": str(other.cert),
                    }
                },
                "health": {"interval": "200ms"},
            }
        )
        refused = amb.psql("app_a", "SELECT 1")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert refused.returncode == 2
    assert 'no healthy server for database "app_a"' in refused.stderr
    assert "certificate verify failed" in refused.stderr


def test_injected_scram_and_md5_credentials_log_the_app_in(
    ambassador: AmbassadorFactory, pg_a: PgServer, tmp_path: Path
) -> None:
    a = server_address(pg_a)
    amb = ambassador.start(
        {
            "routes": {
                "scram": {
                    "servers": [a],
                    "database": "app_a",
                    "user": SCRAM_USER,
                    "password_file": str(secret_file(tmp_path, "scram", SCRAM_PASSWORD)),
                },
                "md5": {
                    "servers": [a],
                    "database": "app_a",
                    "user": MD5_USER,
                    "password_file": str(secret_file(tmp_path, "md5", MD5_PASSWORD)),
                    "tls": "disable",
                },
            },
            "health": {"interval": "200ms"},
        }
    )
    amb.wait_route_up("scram")
    amb.wait_route_up("md5")
    # The app names any user and sends no password (libpq would fail if asked).
    assert amb.query("scram", "SELECT current_user, current_database()", user="app") == (
        f"{SCRAM_USER}|app_a"
    )
    assert amb.query("md5", "SELECT current_user", user="app") == MD5_USER
    # The route's own account is what its health check uses.
    assert amb.server_states("scram") == {pg_a.port: ("up", "primary")}
    output = amb.output()
    assert SCRAM_PASSWORD not in output and MD5_PASSWORD not in output
    cmdline = Path(f"/proc/{amb.process.pid}/cmdline").read_bytes()
    assert SCRAM_PASSWORD.encode() not in cmdline


def test_a_rotated_password_is_used_by_the_next_connection(
    ambassador: AmbassadorFactory, pg_a: PgServer, tmp_path: Path
) -> None:
    pg_a.sql(f"ALTER ROLE {ROTATING_USER} PASSWORD 'first-Pa55-1'")
    password_file = secret_file(tmp_path, "rotating", "first-Pa55-1")
    amb = ambassador.start(
        {
            "routes": {
                "app_a": {
                    "servers": [server_address(pg_a)],
                    "user": ROTATING_USER,
                    "password_file": str(password_file),
                }
            },
            "health": {"interval": "200ms"},
        }
    )
    assert amb.query("app_a", "SELECT current_user") == ROTATING_USER
    pg_a.sql(f"ALTER ROLE {ROTATING_USER} PASSWORD 'second-Pa55-2'")
    secret_file(tmp_path, "rotating", "second-Pa55-2")
    assert amb.query("app_a", "SELECT current_user") == ROTATING_USER


def test_a_wrong_injected_password_reaches_the_client_as_the_servers_error(
    ambassador: AmbassadorFactory, pg_a: PgServer, tmp_path: Path
) -> None:
    amb = ambassador.start(
        {
            "routes": {
                "app_a": {
                    "servers": [server_address(pg_a)],
                    "user": SCRAM_USER,
                    "password_file": str(secret_file(tmp_path, "wrong", "not-the-password")),
                }
            },
            "health": {"interval": "200ms"},
        }
    )

    async def login_error() -> tuple[str, str]:
        with pytest.raises(asyncpg.PostgresError) as caught:
            await amb.connect("app_a", "app")
        return str(caught.value.sqlstate), str(caught.value)

    assert run_async(login_error()) == (
        "28P01",
        f'password authentication failed for user "{SCRAM_USER}"',
    )
    assert "not-the-password" not in amb.output()


def test_a_route_without_a_password_file_says_so_when_the_server_asks(
    ambassador: AmbassadorFactory, pg_a: PgServer
) -> None:
    amb = ambassador.start(
        {"routes": {"app_a": {"servers": [server_address(pg_a)], "user": SCRAM_USER}}}
    )
    refused = amb.psql("app_a", "SELECT 1")
    assert refused.returncode == 2
    assert (
        f"asks for a password for user \"{SCRAM_USER}\", and route 'app_a' has no password_file"
        in refused.stderr
    )
