"""`gitpoll` command line: flags and environment in, a frozen Config out."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from patterns_common.cli import (
    EnvArgumentParser,
    existing_file,
    parse_duration,
    parse_host_port,
    positive_duration,
)
from patterns_common.logsetup import LOG_FORMATS, LOG_LEVELS

from . import __version__
from .app import run
from .config import Config
from .remote import parse_remote

DESCRIPTION = """\
Keep a directory in sync with a git repository.

gitpoll publishes each commit of --ref as a complete checkout under
ROOT/.worktrees/<sha> and points the symlink ROOT/LINK at it with an atomic
rename, so a reader of ROOT/LINK never sees a half-updated tree. It polls
every --period, and syncs at once on SIGHUP or on a signed POST /sync.
"""

EPILOG = """\
Every flag can also be set with the environment variable shown; a flag wins.
Exit codes: 0 stopped cleanly, 1 sync failed (--one-time, --max-failures),
2 usage error, 3 start-up failure (the --http-bind address cannot be used).
"""


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _failure_budget(text: str) -> int:
    value = int(text)
    if value == 0 or value < -1:
        raise argparse.ArgumentTypeError(f"{text!r} must be -1 (never exit) or at least 1")
    return value


def _link_name(text: str) -> str:
    if not text or "/" in text or text.startswith(".") or text in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a plain file name inside --root (no '/', not hidden)"
        )
    return text


def _ref(text: str) -> str:
    if not text or any(c.isspace() for c in text) or ".." in text or text.endswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid git ref")
    return text


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def build_parser() -> EnvArgumentParser:
    parser = EnvArgumentParser(
        prog="gitpoll", description=DESCRIPTION, epilog=EPILOG, env_prefix="GITPOLL_"
    )
    add = parser.add_option
    add(
        "--repo",
        metavar="URL",
        env=("GITPOLL_REPO", "GIT_REPO"),
        help="repository: https://, ssh:// or user@host:path, git://, file:// or a local path",
    )
    add(
        "--ref",
        metavar="REF",
        type=_ref,
        help="branch, tag or full commit SHA; default: the remote's default branch. "
        "Moved tags and force-pushed branches are followed; a SHA is synced once",
    )
    add("--root", metavar="DIR", type=Path, help="the shared volume to publish into")
    add(
        "--link",
        metavar="NAME",
        type=_link_name,
        default="current",
        help="name of the symlink in --root that points at the published checkout",
    )
    add(
        "--period",
        metavar="SECONDS",
        type=positive_duration,
        default=60.0,
        help="time between polls (fractions allowed, or 500ms, 2m)",
    )
    add(
        "--depth",
        metavar="N",
        type=_non_negative_int,
        default=1,
        help="commits of history to fetch; 0 means the full history",
    )
    add(
        "--timeout",
        metavar="SECONDS",
        type=positive_duration,
        default=120.0,
        help="limit for each git operation",
    )
    add(
        "--one-time",
        action="store_true",
        help="sync and publish once, then exit 0 (or non-zero on failure): for init containers",
    )
    add(
        "--max-failures",
        metavar="N",
        type=_failure_budget,
        default=-1,
        help="exit 1 after N consecutive failed syncs; -1 never exits",
    )
    add(
        "--worktree-grace",
        metavar="SECONDS",
        type=parse_duration,
        default=5.0,
        help="how long a replaced checkout is kept for readers still using it",
    )
    add(
        "--gc-interval",
        metavar="SECONDS",
        type=parse_duration,
        default=60.0,
        help="least time between two git garbage collections (run after old checkouts are removed)",
    )
    add(
        "--http-bind",
        metavar="HOST:PORT",
        type=parse_host_port,
        help="serve /healthz, /readyz, /metrics and POST /sync on this address",
    )
    add(
        "--webhook-secret-file",
        metavar="FILE",
        type=existing_file,
        help="enables POST /sync, accepted only with an X-Hub-Signature-256 HMAC of the body "
        "made with this secret",
    )
    add("--username", metavar="NAME", help="user name for an https repository")
    add(
        "--password-file",
        metavar="FILE",
        type=existing_file,
        help="password or token for an https repository, re-read at every sync",
    )
    add(
        "--ssh-key-file",
        metavar="FILE",
        type=existing_file,
        help="private key for an ssh repository",
    )
    add(
        "--known-hosts-file",
        metavar="FILE",
        type=existing_file,
        help="known_hosts for an ssh repository; given, host keys are checked strictly",
    )
    add(
        "--exec-on-sync",
        metavar="CMD",
        help="shell command run (sh -c) in the new checkout after each publish, "
        "with GITPOLL_COMMIT set",
    )
    add(
        "--exec-timeout",
        metavar="SECONDS",
        type=positive_duration,
        default=30.0,
        help="limit for one run of --exec-on-sync",
    )
    add(
        "--notify-url",
        metavar="URL",
        type=_http_url,
        help="POST here after each publish, with the commit in the Gitpoll-Commit header",
    )
    add(
        "--notify-timeout",
        metavar="SECONDS",
        type=positive_duration,
        default=5.0,
        help="limit for one --notify-url request",
    )
    add("--log-format", choices=LOG_FORMATS, default="text", help="log line format")
    add("--log-level", choices=LOG_LEVELS, default="info", help="lowest level logged")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def load_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """Parse and validate; a usage error exits with code 2 and a message."""
    parser = build_parser()
    args = parser.parse_with_environment(argv, environ)
    missing = [flag for flag, value in (("--repo", args.repo), ("--root", args.root)) if not value]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    try:
        remote = parse_remote(args.repo)
    except ValueError as exc:
        parser.error(f"--repo: {exc}")
    if args.password_file and not (args.username or remote.url_username):
        parser.error("--password-file needs --username")
    if (args.username or args.password_file) and remote.kind != "http":
        parser.error("--username and --password-file apply to https repositories only")
    if (args.ssh_key_file or args.known_hosts_file) and remote.kind != "ssh":
        parser.error("--ssh-key-file and --known-hosts-file apply to ssh repositories only")
    if args.webhook_secret_file and not args.http_bind:
        parser.error("--webhook-secret-file needs --http-bind")
    return Config(
        remote=remote,
        ref=args.ref,
        root=args.root.absolute(),
        link=args.link,
        period=args.period,
        depth=args.depth,
        timeout=args.timeout,
        one_time=args.one_time,
        max_failures=args.max_failures,
        http_bind=args.http_bind,
        webhook_secret_file=args.webhook_secret_file,
        username=args.username,
        password_file=args.password_file,
        ssh_key_file=args.ssh_key_file,
        known_hosts_file=args.known_hosts_file,
        exec_on_sync=args.exec_on_sync,
        exec_timeout=args.exec_timeout,
        notify_url=args.notify_url,
        notify_timeout=args.notify_timeout,
        worktree_grace=args.worktree_grace,
        gc_interval=args.gc_interval,
        log_format=args.log_format,
        log_level=args.log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(load_config(argv, os.environ))


if __name__ == "__main__":
    sys.exit(main())
