"""Command-line parsing with environment-variable twins.

Every option can also come from the environment; a flag on the command line
wins over the variable, and the variable wins over the default. A bad value
in either place is a usage error (exit code 2) that names where it came from,
because a misspelt value silently ignored is worse than a refusal to start.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

_DURATION = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds from `0.5`, `500ms`, `2s`, `1m` or `1h`; negative values are refused."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (seconds such as 0.5, or 500ms, 2s, 1m, 1h)"
        )
    return float(match["number"]) * _UNIT_SECONDS[match["unit"]]


def positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than zero")
    return value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (use true or false)")


@dataclass(frozen=True, slots=True)
class HostPort:
    """A listening address; an empty host means every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_host_port(text: str) -> HostPort:
    """`HOST:PORT`, `:PORT` (all interfaces) or `[v6]:PORT`."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range in {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return HostPort(host, port)


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a readable file")
    return path


def read_secret_file(path: Path) -> str:
    """A secret file's content without its trailing newline (editors and
    `kubectl create secret --from-file` often add one)."""
    return path.read_text(encoding="utf-8").rstrip("\r\n")


@dataclass(frozen=True, slots=True)
class _EnvTwin:
    action: argparse.Action
    names: tuple[str, ...]


class EnvArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose options fall back to environment variables.

    `add_option` works like `add_argument` and also records the variables
    that can set the option (by default `<PREFIX><DEST>`, upper case). Their
    names are appended to the help text, so `--help` documents both.
    """

    def __init__(self, *args: Any, env_prefix: str, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.env_prefix = env_prefix
        self._twins: list[_EnvTwin] = []

    def add_option(
        self, *flags: str, env: Sequence[str] | None = None, **kwargs: Any
    ) -> argparse.Action:
        action = self.add_argument(*flags, **kwargs)
        names = tuple(env) if env is not None else (self.env_prefix + action.dest.upper(),)
        if names:
            self._twins.append(_EnvTwin(action, names))
            env_help = "env " + " or ".join(names)
            default = kwargs.get("default")
            shown = "" if default in (None, False) else f"; default {default}"
            action.help = f"{action.help or ''} ({env_help}{shown})".strip()
        return action

    def environment_variables(self) -> frozenset[str]:
        """Every variable that can set an option: a manifest's `env` names
        can be checked against it, since a misspelt variable is otherwise
        silently ignored."""
        return frozenset(name for twin in self._twins for name in twin.names)

    def parse_with_environment(
        self, argv: Sequence[str] | None, environ: Mapping[str, str]
    ) -> argparse.Namespace:
        """Parse argv, taking each option missing from it from the environment."""
        from_environment: dict[str, int] = {}
        for twin in self._twins:
            source = next((name for name in twin.names if name in environ), None)
            if source is None:
                continue
            twin.action.default = self._convert(twin.action, source, environ[source])
            twin.action.required = False
            if isinstance(twin.action.default, list):
                from_environment[twin.action.dest] = len(twin.action.default)
        args = self.parse_args(argv)
        # argparse appends a repeatable flag's values to its default: a flag
        # given on the command line must replace the environment's list instead.
        for dest, count in from_environment.items():
            values = getattr(args, dest)
            if len(values) > count:
                setattr(args, dest, values[count:])
        return args

    def _convert(self, action: argparse.Action, source: str, raw: str) -> object:
        try:
            if action.nargs == 0:  # store_true style switches
                return parse_bool(raw)
            if isinstance(action, argparse._AppendAction):
                convert: Callable[[str], object] = action.type or str  # type: ignore[assignment]
                return [convert(part.strip()) for part in raw.split(",") if part.strip()]
            value = action.type(raw) if callable(action.type) else raw
        except (argparse.ArgumentTypeError, ValueError) as exc:
            self.error(f"environment variable {source}: {exc}")
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            self.error(f"environment variable {source}: {raw!r} is not one of {choices}")
        return value

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")
