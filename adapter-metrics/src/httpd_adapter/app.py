"""Wiring: build the parts from the Config, serve until told to stop."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from patterns_common import lifecycle
from patterns_common.logsetup import configure_logging, fields
from patterns_common.ops_http import start_server

from . import __version__
from .client import ConfigurationError, StatusClient
from .config import Config
from .handler import OwnMetrics, build_app
from .scrape import Scraper

log = logging.getLogger("httpd_adapter")


def run(config: Config) -> int:
    configure_logging(config.log_format, config.log_level)
    return lifecycle.run(lambda stop: serve(config, stop))


class _BuildInfo:
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "httpd_adapter_build_info", "Version of httpd-adapter.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info


def own_metrics() -> CollectorRegistry:
    """The adapter's own metrics, shown after Apache's on the telemetry path."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(_BuildInfo())
    return registry


async def serve(config: Config, stop: asyncio.Event) -> int:
    log.info("starting", extra=fields(**config.redacted()))
    try:
        client = StatusClient(config.client)
    except ConfigurationError as exc:
        log.error("cannot start", extra=fields(error=str(exc)))
        return lifecycle.EXIT_USAGE
    try:
        app = build_app(config, Scraper(client), OwnMetrics(own_metrics()))
        try:
            runner = await start_server(app, config.listen)
        except OSError as exc:
            log.error(
                "cannot listen",
                extra=fields(address=str(config.listen), error=exc.strerror or str(exc)),
            )
            return lifecycle.EXIT_STARTUP
        log.info("listening", extra=fields(address=str(config.listen)))
        # What start-up made lives as long as the process: out of the garbage
        # collector's sight, full collections stay short, and so do the scrapes
        # they would otherwise hold up.
        gc.freeze()
        await stop.wait()
        await runner.cleanup()
    finally:
        await client.close()
    log.info("stopped")
    return lifecycle.EXIT_OK
