"""The validated, immutable configuration of one pg-ambassador process.

`parse_settings` turns the YAML document (already loaded into Python values)
into frozen dataclasses, or raises ConfigError naming the offending key with
its full path (`routes.app.target`). It is pure: file names are resolved
against the config file's directory but not opened; `check_files` does that.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, cast

from patterns_common.cli import HostPort, parse_duration, parse_host_port
from patterns_common.logsetup import LOG_FORMATS, LOG_LEVELS, LogFormat

Target = Literal["primary", "replica", "any"]
TARGETS: tuple[Target, ...] = ("primary", "replica", "any")
TlsMode = Literal["disable", "prefer", "require", "verify-full"]
TLS_MODES: tuple[TlsMode, ...] = ("disable", "prefer", "require", "verify-full")

FALLBACK_ROUTE = "*"
DEFAULT_PORT = 5432
DEFAULT_LISTEN = "127.0.0.1:5432"
UNIX_PREFIX = "unix:"
SOCKET_FILE_PREFIX = ".s.PGSQL."


class ConfigError(ValueError):
    """A bad configuration value; the message names where it is."""


@dataclass(frozen=True, slots=True)
class TcpListen:
    address: HostPort

    def __str__(self) -> str:
        return str(self.address)


@dataclass(frozen=True, slots=True)
class UnixListen:
    """A Unix socket in `directory`, named as libpq expects for `port`."""

    directory: Path
    port: int = DEFAULT_PORT

    @property
    def path(self) -> Path:
        return self.directory / f"{SOCKET_FILE_PREFIX}{self.port}"

    def __str__(self) -> str:
        return f"{UNIX_PREFIX}{self.path}"


ListenAddress = TcpListen | UnixListen


@dataclass(frozen=True, slots=True)
class Route:
    """Where connections asking for database `name` go."""

    name: str
    servers: tuple[HostPort, ...]
    target: Target = "primary"
    database: str | None = None
    """The database name to use on the server; None keeps the client's."""
    tls: TlsMode = "prefer"
    ca_file: Path | None = None
    user: str | None = None
    """Injected: the user name to log in as instead of the client's."""
    password_file: Path | None = None
    """Injected: the ambassador answers the server's password request itself."""

    @property
    def injects_credentials(self) -> bool:
        return self.user is not None or self.password_file is not None


@dataclass(frozen=True, slots=True)
class Health:
    interval: float = 2.0
    timeout: float = 2.0
    user: str = "postgres"
    database: str = "postgres"
    password_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    max_client_connections: int = 1000
    connect_timeout: float = 5.0
    startup_timeout: float = 10.0
    drain_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Settings:
    """What a reload can change."""

    routes: Mapping[str, Route]
    health: Health = field(default_factory=Health)
    limits: Limits = field(default_factory=Limits)

    def route_for(self, database: str) -> Route | None:
        return self.routes.get(database) or self.routes.get(FALLBACK_ROUTE)


@dataclass(frozen=True, slots=True)
class FileConfig:
    """A config file's content: the settings plus the process-level keys,
    which flags override and which only a restart changes."""

    settings: Settings
    listen: tuple[ListenAddress, ...] | None = None
    admin_bind: HostPort | None = None
    log_format: LogFormat | None = None
    log_level: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    settings: Settings
    config_file: Path | None
    listen: tuple[ListenAddress, ...]
    admin_bind: HostPort | None
    log_format: LogFormat
    log_level: str

    def redacted(self) -> dict[str, object]:
        """The effective configuration as it may be logged: no secrets (only
        the paths of the files holding them)."""
        limits, health = self.settings.limits, self.settings.health
        return {
            "config_file": str(self.config_file) if self.config_file else "(none)",
            "listen": ",".join(map(str, self.listen)),
            "admin_bind": str(self.admin_bind) if self.admin_bind else "(off)",
            "routes": ",".join(describe_route(route) for route in self.settings.routes.values()),
            "health_interval": health.interval,
            "health_timeout": health.timeout,
            "max_client_connections": limits.max_client_connections,
            "connect_timeout": limits.connect_timeout,
            "drain_timeout": limits.drain_timeout,
        }


def describe_route(route: Route) -> str:
    servers = "|".join(map(str, route.servers))
    return f"{route.name}->{servers}({route.target},tls={route.tls})"


# -- parsing -----------------------------------------------------------------

T = TypeVar("T")


def parse_listen(text: str) -> ListenAddress:
    """`HOST:PORT`, `unix:DIRECTORY` or `unix:DIRECTORY:PORT`."""
    if not text.startswith(UNIX_PREFIX):
        return TcpListen(parse_host_port(text))
    rest = text[len(UNIX_PREFIX) :]
    directory, sep, port_text = rest.rpartition(":")
    if not sep or not port_text.isdigit():
        directory, port_text = rest, str(DEFAULT_PORT)
    port = int(port_text)
    if not directory.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r}: the socket directory must be absolute")
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range in {text!r}")
    return UnixListen(Path(directory), port)


def parse_server(text: str) -> HostPort:
    """`HOST:PORT`, or `HOST` for the default port 5432."""
    if ":" not in text or (text.startswith("[") and text.endswith("]")):
        text = f"{text}:{DEFAULT_PORT}"
    address = parse_host_port(text)
    if not address.host or address.port == 0:
        raise argparse.ArgumentTypeError(f"{text!r} needs a host and a port from 1 to 65535")
    return address


def _where(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _mapping(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path or 'the file'}: expected a mapping of keys to values")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"{_where(path, str(key))}: keys must be strings")
    return cast(Mapping[str, object], value)


def _check_keys(values: Mapping[str, object], allowed: tuple[str, ...], path: str) -> None:
    for key in values:
        if key not in allowed:
            raise ConfigError(
                f"{_where(path, key)}: unknown key (expected one of: {', '.join(allowed)})"
            )


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: expected a non-empty string, got {value!r}")
    return value


def _choice(value: object, choices: tuple[T, ...], path: str) -> T:
    if value not in choices:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, choices))}")
    return value


def _duration(value: object, path: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{path}: expected a duration such as 2, 0.5, 500ms or 2s")
    try:
        seconds = parse_duration(str(value))
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not math.isfinite(seconds) or (positive and seconds <= 0):
        raise ConfigError(f"{path}: {value!r} must be greater than zero")
    return seconds


def _positive_int(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: expected a whole number of at least 1, got {value!r}")
    return value


def _file(value: object, path: str, base_dir: Path) -> Path:
    return base_dir / os.path.expanduser(_string(value, path))


def _converted(convert: Callable[[str], T], value: object, path: str) -> T:
    try:
        return convert(_string(value, path))
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


ROUTE_KEYS = ("servers", "target", "database", "tls", "ca_file", "user", "password_file")
HEALTH_KEYS = ("interval", "timeout", "user", "database", "password_file")
LIMIT_KEYS = ("max_client_connections", "connect_timeout", "startup_timeout", "drain_timeout")
TOP_KEYS = ("listen", "admin_bind", "log_format", "log_level", "routes", "health", "limits")


def _route(name: str, raw: object, base_dir: Path) -> Route:
    path = f"routes.{name}"
    values = _mapping(raw, path)
    _check_keys(values, ROUTE_KEYS, path)
    servers_raw = values.get("servers")
    if isinstance(servers_raw, str):
        servers_raw = [servers_raw]
    if not isinstance(servers_raw, list) or not servers_raw:
        raise ConfigError(f"{path}.servers: expected a list of host:port (at least one)")
    servers = tuple(
        _converted(parse_server, item, f"{path}.servers[{index}]")
        for index, item in enumerate(servers_raw)
    )
    if len(set(servers)) != len(servers):
        raise ConfigError(f"{path}.servers: a server is listed twice")
    tls = _choice(values.get("tls", "prefer"), TLS_MODES, f"{path}.tls")
    ca_file = None
    if "ca_file" in values:
        if tls != "verify-full":
            raise ConfigError(f"{path}.ca_file: applies only with tls: verify-full")
        ca_file = _file(values["ca_file"], f"{path}.ca_file", base_dir)
    optional = {
        key: _string(values[key], f"{path}.{key}") for key in ("database", "user") if key in values
    }
    password_file = None
    if "password_file" in values:
        password_file = _file(values["password_file"], f"{path}.password_file", base_dir)
    return Route(
        name=name,
        servers=servers,
        target=_choice(values.get("target", "primary"), TARGETS, f"{path}.target"),
        database=optional.get("database"),
        tls=tls,
        ca_file=ca_file,
        user=optional.get("user"),
        password_file=password_file,
    )


def _health(raw: object, base_dir: Path) -> Health:
    values = _mapping(raw, "health")
    _check_keys(values, HEALTH_KEYS, "health")
    defaults = Health()
    return Health(
        interval=_duration(values.get("interval", defaults.interval), "health.interval"),
        timeout=_duration(values.get("timeout", defaults.timeout), "health.timeout"),
        user=_string(values.get("user", defaults.user), "health.user"),
        database=_string(values.get("database", defaults.database), "health.database"),
        password_file=(
            _file(values["password_file"], "health.password_file", base_dir)
            if "password_file" in values
            else None
        ),
    )


def _limits(raw: object) -> Limits:
    values = _mapping(raw, "limits")
    _check_keys(values, LIMIT_KEYS, "limits")
    defaults = Limits()
    return Limits(
        max_client_connections=_positive_int(
            values.get("max_client_connections", defaults.max_client_connections),
            "limits.max_client_connections",
        ),
        connect_timeout=_duration(
            values.get("connect_timeout", defaults.connect_timeout), "limits.connect_timeout"
        ),
        startup_timeout=_duration(
            values.get("startup_timeout", defaults.startup_timeout), "limits.startup_timeout"
        ),
        drain_timeout=_duration(
            values.get("drain_timeout", defaults.drain_timeout),
            "limits.drain_timeout",
            positive=False,
        ),
    )


def parse_file_config(document: object, base_dir: Path) -> FileConfig:
    """Validate a loaded YAML document; ConfigError names the first bad key."""
    values = _mapping(document if document is not None else {}, "")
    _check_keys(values, TOP_KEYS, "")
    routes_raw = _mapping(values.get("routes", {}), "routes")
    if not routes_raw:
        raise ConfigError("routes: at least one route is needed (a database name, or '*')")
    routes = {name: _route(name, raw, base_dir) for name, raw in routes_raw.items()}
    listen = None
    if "listen" in values:
        raw_listen = values["listen"]
        items = [raw_listen] if isinstance(raw_listen, str) else raw_listen
        if not isinstance(items, list) or not items:
            raise ConfigError("listen: expected an address or a list of them")
        listen = tuple(
            _converted(parse_listen, item, f"listen[{index}]") for index, item in enumerate(items)
        )
    return FileConfig(
        settings=Settings(
            routes=routes,
            health=_health(values.get("health", {}), base_dir),
            limits=_limits(values.get("limits", {})),
        ),
        listen=listen,
        admin_bind=(
            _converted(parse_host_port, values["admin_bind"], "admin_bind")
            if "admin_bind" in values
            else None
        ),
        log_format=(
            _choice(values["log_format"], LOG_FORMATS, "log_format")
            if "log_format" in values
            else None
        ),
        log_level=(
            _choice(values["log_level"], LOG_LEVELS, "log_level") if "log_level" in values else None
        ),
    )


def files_to_check(settings: Settings) -> list[tuple[str, Path]]:
    """Every file the settings name, with the key that names it."""
    named: list[tuple[str, Path]] = []
    for route in settings.routes.values():
        for key in ("ca_file", "password_file"):
            value = getattr(route, key)
            if value is not None:
                named.append((f"routes.{route.name}.{key}", value))
    if settings.health.password_file is not None:
        named.append(("health.password_file", settings.health.password_file))
    return named


def check_files(settings: Settings) -> None:
    """Every file the settings name must be readable now (secrets are re-read
    later, but a typo in a path is better caught at start-up)."""
    for key, path in files_to_check(settings):
        if not os.access(path, os.R_OK) or not path.is_file():
            raise ConfigError(f"{key}: {str(path)!r} is not a readable file")
