"""`pg-ambassador` command line: flags, environment and config file in, a frozen Config out."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

from patterns_common.cli import EnvArgumentParser, parse_host_port
from patterns_common.lifecycle import EXIT_USAGE
from patterns_common.logsetup import LOG_FORMATS, LOG_LEVELS

from .app import run
from .config import (
    DEFAULT_LISTEN,
    FALLBACK_ROUTE,
    Config,
    ConfigError,
    FileConfig,
    Route,
    Settings,
    parse_listen,
    parse_server,
)
from .configfile import read_file_config

DESCRIPTION = """\
An ambassador for PostgreSQL.

The app connects to localhost (or a Unix socket); pg-ambassador reads the
start-up packet, picks the route for the database asked for, connects to a
healthy server of the route's role (primary, replica or any) over TLS if the
route says so, logs in with injected credentials if it has them, then relays
bytes. Refusals reach the client as PostgreSQL errors with a SQLSTATE.

Routes, health checks and limits come from --config (YAML, reloaded on
SIGHUP and when the file changes); --upstream is the one-server shortcut.
"""

EPILOG = """\
Every flag can also be set with the environment variable shown; a flag wins
over the variable, and both win over the config file.
Exit codes: 0 stopped cleanly (SIGTERM included, after draining), 1 runtime
failure, 2 usage or config error, 3 start-up failure (an address cannot be used).
"""


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="pg-ambassador", description=DESCRIPTION, epilog=EPILOG, env_prefix="PG_AMBASSADOR_"
    )
    add = parser.add_option
    add("--config", metavar="FILE", type=Path, help="YAML config file (routes, health, limits)")
    add(
        "--upstream",
        metavar="HOST:PORT",
        type=parse_server,
        help="without --config: send every connection to this one server, whatever its role",
    )
    add(
        "--listen",
        metavar="ADDRESS",
        action="append",
        type=parse_listen,
        help="HOST:PORT, or unix:DIRECTORY[:PORT] for the socket DIRECTORY/.s.PGSQL.PORT "
        f"(libpq's host=DIRECTORY); repeat for several; default {DEFAULT_LISTEN}",
    )
    add(
        "--admin-bind",
        metavar="HOST:PORT",
        type=parse_host_port,
        help="serve /healthz, /readyz, /metrics and /routes on this address; default off",
    )
    add("--log-format", choices=LOG_FORMATS, help="log line format; default text")
    add("--log-level", choices=LOG_LEVELS, help="lowest level logged; default info")
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('pg-ambassador')}"
    )
    return parser


def config_error(path: Path, error: ConfigError) -> NoReturn:
    """One line naming the file and the key, exit 2: no usage, the flags were fine."""
    sys.stderr.write(f"pg-ambassador: error: config file {path}: {error}\n")
    sys.exit(EXIT_USAGE)


def load_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """Parse and validate; a usage or config error exits with code 2 and a message."""
    parser = build_parser()
    args = parser.parse_with_environment(argv, environ)
    if args.config and args.upstream:
        parser.error("--config and --upstream cannot be used together")
    if args.config:
        try:
            file_config = read_file_config(args.config)
        except ConfigError as exc:
            config_error(args.config, exc)
    elif args.upstream:
        route = Route(name=FALLBACK_ROUTE, servers=(args.upstream,), target="any")
        file_config = FileConfig(settings=Settings(routes={FALLBACK_ROUTE: route}))
    else:
        parser.error("one of --config or --upstream is required")
    listen = (
        tuple(args.listen) if args.listen else file_config.listen or (parse_listen(DEFAULT_LISTEN),)
    )
    if len(set(listen)) != len(listen):
        parser.error("the same --listen address is given twice")
    return Config(
        settings=file_config.settings,
        config_file=args.config.absolute() if args.config else None,
        listen=listen,
        admin_bind=args.admin_bind or file_config.admin_bind,
        log_format=args.log_format or file_config.log_format or "text",
        log_level=args.log_level or file_config.log_level or "info",
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(load_config(argv, os.environ))


if __name__ == "__main__":
    sys.exit(main())
