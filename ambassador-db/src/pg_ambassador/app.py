"""Wiring: build the parts from the Config, run them, stop them in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal

from aiohttp import web

from patterns_common import lifecycle
from patterns_common.logsetup import configure_logging, fields
from patterns_common.ops_http import start_server

from .ambassador import Ambassador
from .config import Config, FileConfig
from .health import HealthMonitor
from .listener import Listeners
from .metrics import Metrics
from .reload import Reloader
from .routes import build_admin_app

log = logging.getLogger("pg_ambassador")


def run(config: Config) -> int:
    configure_logging(config.log_format, config.log_level)
    raise_open_file_limit()
    return lifecycle.run(lambda stop: serve(config, stop), use_uvloop=True)


def raise_open_file_limit() -> None:
    """Each session holds two sockets: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(config: Config, stop: asyncio.Event) -> int:
    log.info("starting", extra=fields(**config.redacted()))
    metrics = Metrics()
    health = HealthMonitor(config.settings.health)
    ambassador = Ambassador(config.settings, metrics, health)
    listeners = Listeners(ambassador)
    admin: web.AppRunner | None = None
    background: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    try:
        try:
            await listeners.open(config.listen)
            if config.admin_bind is not None:
                admin = await start_server(
                    build_admin_app(ambassador, listeners), config.admin_bind
                )
        except OSError as exc:
            log.error("cannot start", extra=fields(error=exc.strerror or str(exc)))
            return lifecycle.EXIT_STARTUP
        if config.config_file is not None:

            def apply(file_config: FileConfig) -> None:
                ambassador.apply(file_config.settings)

            reloader = Reloader(config.config_file, apply, metrics)
            loop.add_signal_handler(signal.SIGHUP, reloader.request, "SIGHUP")
            background.append(asyncio.create_task(reloader.run()))
        log.info("ready", extra=fields(listen=",".join(map(str, config.listen))))
        await stop.wait()
        await ambassador.drain(ambassador.settings.limits.drain_timeout)
    finally:
        with contextlib.suppress(ValueError, RuntimeError):
            loop.remove_signal_handler(signal.SIGHUP)
        listeners.close()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await health.close()
        if admin is not None:
            await admin.cleanup()
    log.info("stopped", extra=fields(exit_code=lifecycle.EXIT_OK))
    return lifecycle.EXIT_OK
