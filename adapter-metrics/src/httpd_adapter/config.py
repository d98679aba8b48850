"""The validated, immutable configuration of one httpd-adapter process."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yarl import URL

from patterns_common.cli import HostPort
from patterns_common.logsetup import LogFormat

from .targets import TargetPattern


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How to talk to a status page: shared by --scrape-uri and /probe."""

    insecure: bool = False
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None
    password_file: Path | None = None
    """Re-read at every scrape, so a rotated Secret is used at once."""
    password: str | None = field(default=None, repr=False)
    """From the user:password@ part of --scrape-uri, when given that way."""


@dataclass(frozen=True, slots=True)
class Config:
    scrape_url: URL
    """The status page of /metrics, with `auto` in its query, no credentials."""
    host_override: str | None
    listen: HostPort
    telemetry_path: str
    timeout: float
    client: ClientSettings
    allow_targets: tuple[TargetPattern, ...]
    log_format: LogFormat
    log_level: str

    def redacted(self) -> dict[str, object]:
        """The effective configuration as it may be logged: no secrets, only
        the paths of the files that hold them."""
        client = self.client
        values: dict[str, object] = {
            "scrape_uri": str(self.scrape_url),
            "host_override": self.host_override,
            "listen": str(self.listen),
            "telemetry_path": self.telemetry_path,
            "timeout": self.timeout,
            "insecure": client.insecure or None,
            "ca_file": str(client.ca_file) if client.ca_file else None,
            "client_cert": str(client.client_cert) if client.client_cert else None,
            "client_key": str(client.client_key) if client.client_key else None,
            "headers": ",".join(name for name, _ in client.headers) or None,
            "username": client.username,
            "password_file": str(client.password_file) if client.password_file else None,
            "allow_target": ",".join(p.text for p in self.allow_targets) or None,
        }
        return {key: value for key, value in values.items() if value is not None}
