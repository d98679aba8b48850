"""The operations HTTP server every service runs on its own port.

`GET /healthz` (is the process working), `GET /readyz` (can it do its job),
`GET /metrics` (its own registry, never the global one). A service adds its
own routes to the application before starting it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .cli import HostPort


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: dict[str, object] = field(default_factory=dict)


Probe = Callable[[], ProbeResult]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _probe_handler(probe: Probe) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        result = probe()
        body = {"status": "ok" if result.ok else "unavailable", **result.detail}
        return web.json_response(
            body, status=200 if result.ok else 503, dumps=lambda obj: json.dumps(obj, default=str)
        )

    return handle


def _metrics_handler(registry: CollectorRegistry) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        response = web.Response(body=encoder(registry))
        response.headers["Content-Type"] = content_type
        return response

    return handle


def build_ops_app(
    registry: CollectorRegistry,
    *,
    liveness: Probe,
    readiness: Probe,
    metrics_path: str | None = "/metrics",
    client_max_size: int = 1024**2,
) -> web.Application:
    """`metrics_path=None` leaves the metrics route to the service, for one
    that must do I/O before it can answer (an exporter's scrape)."""
    app = web.Application(client_max_size=client_max_size)
    app.router.add_get("/healthz", _probe_handler(liveness))
    app.router.add_get("/readyz", _probe_handler(readiness))
    if metrics_path is not None:
        app.router.add_get(metrics_path, _metrics_handler(registry))
    return app


async def start_server(app: web.Application, bind: HostPort) -> web.AppRunner:
    """Start serving `app` on `bind`; raises OSError when the port is taken.
    The caller stops it with `await runner.cleanup()`."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, bind.host or None, bind.port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
