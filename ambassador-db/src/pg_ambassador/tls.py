"""TLS towards the servers: one client context per (mode, CA file)."""

from __future__ import annotations

import ssl
from pathlib import Path

from .config import ConfigError, Settings, TlsMode


def client_context(mode: TlsMode, ca_file: Path | None) -> ssl.SSLContext | None:
    """None for `disable`. `prefer` and `require` encrypt without checking the
    certificate, as libpq does without a root certificate; `verify-full`
    checks the chain (against `ca_file`, else the system's CAs) and the name."""
    if mode == "disable":
        return None
    if mode == "verify-full":
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def check_ca_files(settings: Settings) -> None:
    """A CA file that is not PEM is a config error, found at load time."""
    for route in settings.routes.values():
        if route.ca_file is None:
            continue
        try:
            client_context(route.tls, route.ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"routes.{route.name}.ca_file: cannot load CA certificates: {exc}"
            ) from None
