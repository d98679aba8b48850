"""Reloading the config file on SIGHUP and when it changes on disk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from patterns_common.logsetup import fields

from .config import ConfigError, FileConfig, describe_route
from .configfile import file_stamp, read_file_config
from .metrics import Metrics

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0


class Reloader:
    """Polls the file's stamp every POLL_INTERVAL; `request()` (SIGHUP)
    reloads at once even when nothing seems changed. A file that does not
    validate is refused with one log line, and the running config stays."""

    def __init__(
        self,
        path: Path,
        apply: Callable[[FileConfig], None],
        metrics: Metrics,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._path = path
        self._apply = apply
        self._metrics = metrics
        self._poll_interval = poll_interval
        self._stamp = file_stamp(path)
        self._requested = asyncio.Event()

    def request(self, source: str) -> None:
        log.info("reload requested", extra=fields(source=source))
        self._requested.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._requested.wait()
            forced = self._requested.is_set()
            self._requested.clear()
            stamp = file_stamp(self._path)
            if not forced and stamp == self._stamp:
                continue
            self._stamp = stamp
            self.reload("signal" if forced else "file changed")

    def reload(self, cause: str) -> None:
        try:
            config = read_file_config(self._path)
        except ConfigError as exc:
            self._metrics.reloads.labels("error").inc()
            log.error(
                "config reload rejected; the running config stays",
                extra=fields(file=str(self._path), cause=cause, error=str(exc)),
            )
            return
        self._apply(config)
        self._metrics.reloads.labels("success").inc()
        log.info(
            "config reloaded",
            extra=fields(
                file=str(self._path),
                cause=cause,
                routes=",".join(describe_route(r) for r in config.settings.routes.values()),
            ),
        )
