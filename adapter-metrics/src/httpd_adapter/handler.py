"""HTTP endpoints: the telemetry path, /probe, /, and the shared /healthz and /readyz.

Each scrape is fetched here, in the request's own task, then rendered by a
collector made for that request alone; `collect()` does no I/O.
"""

from __future__ import annotations

import html
import logging
import math
import time
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from patterns_common.logsetup import fields
from patterns_common.ops_http import ProbeResult, build_ops_app

from .config import Config
from .exposition import CONTENT_TYPE, encode
from .families import ScrapeCollector, ScrapeOutcome
from .scrape import Scraper
from .targets import allowed, status_url

log = logging.getLogger("httpd_adapter.http")

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
# Kept back from Prometheus's scrape timeout for the answer's way back.
TIMEOUT_MARGIN = 0.5


def scrape_timeout(configured: float, header: str | None) -> float:
    """--timeout, lowered to fit Prometheus's own scrape timeout when it
    sends one: that less TIMEOUT_MARGIN, or half of it when it is short."""
    if header is None:
        return configured
    try:
        offered = float(header)
    except ValueError:
        return configured
    if not offered > 0 or offered == float("inf"):
        return configured
    return min(configured, max(offered - TIMEOUT_MARGIN, offered / 2))


def _exposition(collector: Collector, trailer: bytes = b"") -> web.Response:
    # apache_exporter answers in the classic text format only, whatever the
    # Accept header asks for; so do we.
    body = encode(collector.collect()) + trailer
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


class OwnMetrics:
    """The adapter's own metrics (process_*, build info), encoded at most
    once per `max_age` seconds: reading /proc for them at every scrape cost
    a fifth of the scrape, and a process's memory needs no finer grain."""

    def __init__(self, registry: CollectorRegistry, max_age: float = 1.0) -> None:
        self.registry = registry
        self._max_age = max_age
        self._encoded = b""
        self._taken = -math.inf

    def encoded(self) -> bytes:
        now = time.monotonic()
        if now - self._taken >= self._max_age:
            self._encoded, self._taken = encode(self.registry.collect()), now
        return self._encoded


@dataclass(slots=True)
class DefaultTargetStatus:
    """How the last scrape of --scrape-uri went, for /healthz."""

    time: float | None = None
    up: bool | None = None
    error: str | None = None

    def record(self, outcome: ScrapeOutcome) -> None:
        self.time, self.up, self.error = time.time(), outcome.up, outcome.error


def build_app(config: Config, scraper: Scraper, own_metrics: OwnMetrics) -> web.Application:
    status = DefaultTargetStatus()

    def health() -> ProbeResult:
        return ProbeResult(
            True,
            {
                "scrape_uri": str(config.scrape_url),
                "last_scrape": {"time": status.time, "up": status.up, "error": status.error},
            },
        )

    # Ready as soon as it serves: Apache being down is apache_up 0 for
    # Prometheus to see, not a reason to take the adapter out of service.
    app = build_ops_app(own_metrics.registry, liveness=health, readiness=health, metrics_path=None)

    async def metrics(request: web.Request) -> web.Response:
        timeout = scrape_timeout(config.timeout, request.headers.get(TIMEOUT_HEADER))
        outcome = await scraper.scrape(config.scrape_url, timeout, config.host_override)
        status.record(outcome)
        return _exposition(ScrapeCollector(outcome), own_metrics.encoded())

    async def probe(request: web.Request) -> web.Response:
        if not config.allow_targets:
            return _refuse(403, "GET /probe is disabled: start httpd-adapter with --allow-target")
        target = request.query.get("target")
        if not target:
            return _refuse(400, "GET /probe needs ?target=URL or ?target=host:port")
        try:
            url = status_url(target)
        except ValueError as exc:
            return _refuse(400, f"target: {exc}")
        if url.raw_user or url.raw_password:
            return _refuse(400, "target: no credentials in the URL; use --password-file")
        if not allowed(url, config.allow_targets):
            log.warning("probe refused", extra=fields(target=str(url), peer=request.remote))
            return _refuse(403, f"target {url} does not match any --allow-target")
        timeout = scrape_timeout(config.timeout, request.headers.get(TIMEOUT_HEADER))
        return _exposition(ScrapeCollector(await scraper.scrape(url, timeout)))

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=_index_page(config), content_type="text/html")

    app.router.add_get(config.telemetry_path, metrics)
    app.router.add_get("/probe", probe)
    app.router.add_get("/", index)
    return app


def _refuse(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")


def _index_page(config: Config) -> str:
    path = html.escape(config.telemetry_path)
    scrape_uri = html.escape(str(config.scrape_url))
    if config.allow_targets:
        patterns = ", ".join(f"<code>{html.escape(p.text)}</code>" for p in config.allow_targets)
        probe = f'<a href="/probe?target=localhost">/probe?target=URL</a> for {patterns}'
    else:
        probe = "/probe: disabled (no --allow-target)"
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>httpd-adapter</title></head>
<body>
<h1>httpd-adapter</h1>
<p>Apache httpd's status page <code>{scrape_uri}</code> as Prometheus metrics.</p>
<ul>
<li><a href="{path}">{path}</a>: metrics of <code>{scrape_uri}</code></li>
<li>{probe}</li>
<li><a href="/healthz">/healthz</a>: health, and how the last scrape went</li>
</ul>
</body></html>
"""
