"""`httpd-adapter` command line: flags and environment in, a frozen Config out.

apache_exporter's own spellings (`--scrape_uri`, `--telemetry.address`,
`--telemetry.endpoint`, `--host_override`, `--insecure`, `--log.level`,
`--log.format`, 1.x's `--web.listen-address` and `--custom_headers`) and
environment variables (`SCRAPE_URI`, `HOST_OVERRIDE`, `INSECURE`,
`METRICS_ENDPOINT`) are accepted, so an existing manifest keeps working when
only the image changes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence

from patterns_common.cli import (
    EnvArgumentParser,
    existing_file,
    parse_host_port,
    positive_duration,
)
from patterns_common.logsetup import LOG_FORMATS, LOG_LEVELS

from . import __version__
from .app import run
from .config import ClientSettings, Config
from .targets import TargetPattern, parse_target_pattern, status_url, without_credentials

DESCRIPTION = """\
Serve Apache httpd's mod_status page (/server-status?auto) as Prometheus
metrics, with apache_exporter's metric names.

Every scrape of the telemetry path fetches --scrape-uri live and answers
within --timeout (or Prometheus's own scrape timeout, if shorter); apache_up
says whether the page was read. GET /probe?target=URL scrapes another Apache
for that request only, if an --allow-target pattern admits it.
"""

EPILOG = """\
Every flag can also be set with the environment variable shown; a flag wins.
Exit codes: 0 stopped cleanly, 2 usage error or unusable TLS files, 3 the listen
address cannot be used.
"""

DEFAULT_SCRAPE_URI = "http://localhost/server-status?auto"
RESERVED_PATHS = ("/", "/probe", "/healthz", "/readyz")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_EXPORTER_LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warning", "error": "error"}
_EXPORTER_LOG_FORMATS = {"logfmt": "text", "json": "json"}


def _url(text: str) -> str:
    try:
        status_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _telemetry_path(text: str) -> str:
    if not text.startswith("/") or any(c in text for c in "?# "):
        raise argparse.ArgumentTypeError(f"{text!r} must be a path starting with /")
    if text in RESERVED_PATHS:
        raise argparse.ArgumentTypeError(f"{text!r} is taken by another endpoint")
    return text


def _header(text: str) -> tuple[str, str]:
    """`Name: value` or `Name=value` (apache_exporter 1.x's --custom_headers)."""
    match = re.match(r"\s*([^:=\s]+)\s*[:=]\s?(.*)", text)
    if match is None or not _HEADER_NAME.fullmatch(match[1]) or "\n" in text or "\r" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'Name: value' or Name=value")
    return match[1], match[2].strip()


def _pattern(text: str) -> TargetPattern:
    try:
        return parse_target_pattern(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _host(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text.strip()) or "/" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a host name")
    return text.strip()


def _choice_of(mapping: Mapping[str, str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in mapping:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(mapping)}")
        return mapping[text]

    return convert


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="httpd-adapter", description=DESCRIPTION, epilog=EPILOG, env_prefix="HTTPD_ADAPTER_"
    )
    add = parser.add_option
    add(
        "--scrape-uri",
        "--scrape_uri",
        dest="scrape_uri",
        metavar="URL",
        type=_url,
        default=DEFAULT_SCRAPE_URI,
        env=("HTTPD_ADAPTER_SCRAPE_URI", "SCRAPE_URI"),
        help="Apache's status page; ?auto is added when missing",
    )
    add(
        "--host-override",
        "--host_override",
        dest="host_override",
        metavar="HOST",
        type=_host,
        env=("HTTPD_ADAPTER_HOST_OVERRIDE", "HOST_OVERRIDE"),
        help="Host header sent to --scrape-uri (a name-based virtual host)",
    )
    add(
        "--listen",
        "--telemetry.address",
        "--web.listen-address",
        dest="listen",
        metavar="HOST:PORT",
        type=parse_host_port,
        default=parse_host_port(":9117"),
        help="address to serve metrics on; :9117 is every interface",
    )
    add(
        "--telemetry-path",
        "--telemetry.endpoint",
        dest="telemetry_path",
        metavar="PATH",
        type=_telemetry_path,
        default="/metrics",
        env=("HTTPD_ADAPTER_TELEMETRY_PATH", "METRICS_ENDPOINT"),
        help="path of the metrics of --scrape-uri",
    )
    add(
        "--timeout",
        metavar="SECONDS",
        type=positive_duration,
        default=5.0,
        help="limit for one scrape of Apache; Prometheus's X-Prometheus-Scrape-Timeout-Seconds "
        "lowers it",
    )
    add(
        "--insecure",
        action="store_true",
        env=("HTTPD_ADAPTER_INSECURE", "INSECURE"),
        help="do not verify Apache's TLS certificate",
    )
    add(
        "--ca-file",
        metavar="FILE",
        type=existing_file,
        help="CA certificates (PEM) to verify Apache's certificate with, instead of the system's",
    )
    add(
        "--client-cert",
        metavar="FILE",
        type=existing_file,
        help="client certificate (PEM) to present to Apache; may hold the key too",
    )
    add("--client-key", metavar="FILE", type=existing_file, help="key of --client-cert (PEM)")
    add(
        "--header",
        "--custom_headers",
        dest="header",
        metavar="'NAME: VALUE'",
        type=_header,
        action="append",
        help="extra request header for Apache, repeatable (NAME=VALUE also works; in the "
        "variable, comma-separated)",
    )
    add("--username", metavar="NAME", help="user name for basic auth to Apache")
    add(
        "--password-file",
        metavar="FILE",
        type=existing_file,
        help="basic auth password for Apache, re-read at every scrape",
    )
    add(
        "--allow-target",
        metavar="PATTERN",
        type=_pattern,
        action="append",
        help="enables /probe for targets matching [scheme://]host-glob[:port][/path-glob], "
        "repeatable (in the variable, comma-separated); without it /probe answers 403",
    )
    add("--log-format", choices=LOG_FORMATS, default="text", help="log line format")
    add("--log-level", choices=LOG_LEVELS, default="info", help="lowest level logged")
    parser.add_argument(
        "--log.format",
        dest="log_format",
        type=_choice_of(_EXPORTER_LOG_FORMATS),
        default=argparse.SUPPRESS,
        help="apache_exporter's spelling of --log-format (logfmt means text)",
    )
    parser.add_argument(
        "--log.level",
        dest="log_level",
        type=_choice_of(_EXPORTER_LOG_LEVELS),
        default=argparse.SUPPRESS,
        help="apache_exporter's spelling of --log-level (warn means warning)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def load_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """Parse and validate; a usage error exits with code 2 and a message."""
    parser = build_parser()
    args = parser.parse_with_environment(argv, environ)
    url = status_url(args.scrape_uri)
    username = args.username or url.user or None
    if args.password_file and url.password:
        parser.error("--scrape-uri has a password and --password-file gives another: use one")
    if args.password_file and not username:
        parser.error("--password-file needs --username")
    if args.client_key and not args.client_cert:
        parser.error("--client-key needs --client-cert")
    if args.insecure and args.ca_file:
        parser.error("--insecure and --ca-file contradict each other: use one")
    return Config(
        scrape_url=without_credentials(url),
        host_override=args.host_override,
        listen=args.listen,
        telemetry_path=args.telemetry_path,
        timeout=args.timeout,
        client=ClientSettings(
            insecure=args.insecure,
            ca_file=args.ca_file,
            client_cert=args.client_cert,
            client_key=args.client_key,
            headers=tuple(args.header or ()),
            username=username,
            password_file=args.password_file,
            password=url.password or None,
        ),
        allow_targets=tuple(args.allow_target or ()),
        log_format=args.log_format,
        log_level=args.log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(load_config(argv, os.environ))


if __name__ == "__main__":
    sys.exit(main())
