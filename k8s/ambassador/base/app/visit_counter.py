"""The ambassador pattern's app: a visit counter page.

It only ever connects to `--database-url`, which says `localhost:5432` and
nothing else: which server answers, which database that really is, TLS and
the password are the ambassador's business, so the page shows them as the
server reports them. Each visit opens a new connection (no pool), so a route
changed in the ambassador's ConfigMap shows on the very next visit.

In the cluster it runs on the pg-ambassador image, which already has Python,
aiohttp and asyncpg (`command: [python, /app/visit_counter.py]`); `make demo`
runs the same file against a local PostgreSQL.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import asyncpg
from aiohttp import web

from patterns_common.cli import EnvArgumentParser, HostPort, parse_host_port, positive_duration
from patterns_common.lifecycle import EXIT_OK, EXIT_STARTUP, run
from patterns_common.logsetup import LOG_FORMATS, configure_logging, fields
from patterns_common.ops_http import start_server

log = logging.getLogger("visit_counter")

DEFAULT_DATABASE_URL = "postgresql://visits@localhost:5432/visits?sslmode=disable"

# What the server says about this very session: which server (cluster_name,
# set per server), which database and user the ambassador logged in as, and
# whether the ambassador's leg to it is TLS.
VISIT_SQL = """
WITH recorded AS (INSERT INTO visits DEFAULT VALUES RETURNING id)
SELECT (SELECT id FROM recorded) AS visit,
       current_setting('cluster_name') AS server,
       current_database() AS database,
       current_user AS db_user,
       coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS tls
"""
CREATE_SQL = (
    "CREATE TABLE IF NOT EXISTS visits (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"
)


@dataclass(frozen=True, slots=True)
class Config:
    listen: HostPort
    database_url: str
    timeout: float
    log_format: str


@dataclass(frozen=True, slots=True)
class Visit:
    visit: int
    server: str
    database: str
    db_user: str
    tls: bool


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="visit_counter",
        description="A visit counter page that reaches PostgreSQL only through localhost.",
        env_prefix="VISIT_COUNTER_",
    )
    parser.add_option(
        "--listen",
        metavar="HOST:PORT",
        type=parse_host_port,
        default=parse_host_port(":8080"),
        help="where to serve the page",
    )
    parser.add_option(
        "--database-url",
        metavar="URL",
        env=("DATABASE_URL",),
        default=DEFAULT_DATABASE_URL,
        help="the database, as libpq's URL; no password: the ambassador logs in",
    )
    parser.add_option(
        "--timeout",
        metavar="SECONDS",
        type=positive_duration,
        default=5.0,
        help="limit for connecting and recording one visit",
    )
    parser.add_option("--log-format", choices=LOG_FORMATS, default="text", help="log line format")
    return parser


def load_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    parser = build_parser()
    args = parser.parse_with_environment(argv, environ)
    if not args.database_url.startswith(("postgresql://", "postgres://")):
        parser.error("--database-url must be a postgresql:// URL")
    return Config(args.listen, args.database_url, args.timeout, args.log_format)


async def record_visit(config: Config) -> Visit:
    connection = await asyncpg.connect(config.database_url, timeout=config.timeout)
    try:
        try:
            row = await connection.fetchrow(VISIT_SQL, timeout=config.timeout)
        except asyncpg.UndefinedTableError:
            # The first visit to this database (a route may have just moved).
            await connection.execute(CREATE_SQL, timeout=config.timeout)
            row = await connection.fetchrow(VISIT_SQL, timeout=config.timeout)
    finally:
        await connection.close(timeout=config.timeout)
    assert row is not None
    return Visit(row["visit"], row["server"], row["database"], row["db_user"], row["tls"])


def _failure(error: BaseException) -> tuple[str, str]:
    """(SQLSTATE or kind, message) of an expected failure, for the page and the log."""
    if isinstance(error, asyncpg.PostgresError):
        return str(error.sqlstate), str(error)
    if isinstance(error, asyncpg.InterfaceError):
        return "connection", str(error)
    if isinstance(error, TimeoutError):
        return "timeout", "no answer in time"
    return "unreachable", str(error) or type(error).__name__


def build_app(config: Config) -> web.Application:
    async def visit(request: web.Request) -> web.Response:
        want_json = request.path == "/json"
        try:
            result = await record_visit(config)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            code, message = _failure(error)
            log.warning("visit failed", extra=fields(code=code, error=message))
            if want_json:
                return web.json_response({"error": message, "code": code}, status=503)
            page = f"<h1>No visit recorded</h1><p>{html.escape(code)}: {html.escape(message)}</p>"
            return web.Response(text=page, content_type="text/html", status=503)
        if want_json:
            return web.json_response(asdict(result), dumps=json.dumps)
        tls = "TLS" if result.tls else "plaintext"
        page = (
            f"<h1>Visit number {result.visit}</h1>\n"
            f"<p>Answered by server <b>{html.escape(result.server)}</b>, database "
            f"<b>{html.escape(result.database)}</b>, user <b>{html.escape(result.db_user)}</b>; "
            f"the ambassador's connection to it is {tls}.</p>\n"
            "<p>This app only ever connects to localhost.</p>\n"
        )
        return web.Response(text=page, content_type="text/html")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/", visit)
    app.router.add_get("/json", visit)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(config: Config, stop: asyncio.Event) -> int:
    try:
        runner = await start_server(build_app(config), config.listen)
    except OSError as error:
        log.error("cannot listen", extra=fields(address=str(config.listen), error=str(error)))
        return EXIT_STARTUP
    log.info("serving", extra=fields(address=str(config.listen)))
    await stop.wait()
    await runner.cleanup()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    config = load_config(argv, os.environ)
    configure_logging("json" if config.log_format == "json" else "text")
    return run(lambda stop: serve(config, stop))


if __name__ == "__main__":
    sys.exit(main())
