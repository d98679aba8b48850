"""The admin HTTP server: /healthz, /readyz, /metrics (shared) and /routes."""

from __future__ import annotations

import datetime
import json

from aiohttp import web

from patterns_common.ops_http import ProbeResult, build_ops_app

from .ambassador import Ambassador
from .listener import Listeners


def routes_document(ambassador: Ambassador) -> dict[str, object]:
    """Each route and the health of its servers, as /routes shows them."""
    routes = []
    active: dict[str, int] = {}
    for session in ambassador.sessions:
        active[session.route.name] = active.get(session.route.name, 0) + 1
    for route in ambassador.settings.routes.values():
        servers = []
        for server in route.servers:
            status = ambassador.health.status(ambassador.check_target(route, server))
            servers.append(
                {
                    "address": str(server),
                    "state": status.state,
                    "role": status.role,
                    "error": status.error,
                    "checked_at": (
                        datetime.datetime.fromtimestamp(status.checked_at, datetime.UTC).isoformat()
                        if status.checked_at is not None
                        else None
                    ),
                }
            )
        routes.append(
            {
                "name": route.name,
                "target": route.target,
                "database": route.database,
                "tls": route.tls,
                "user": route.user,
                "injects_password": route.password_file is not None,
                "active_connections": active.get(route.name, 0),
                "servers": servers,
            }
        )
    return {"draining": ambassador.draining, "routes": routes}


def build_admin_app(ambassador: Ambassador, listeners: Listeners) -> web.Application:
    def liveness() -> ProbeResult:
        return ProbeResult(True)

    def readiness() -> ProbeResult:
        ready = listeners.listening and not ambassador.draining
        return ProbeResult(
            ready,
            {
                "listening": listeners.listening,
                "draining": ambassador.draining,
                "sessions": len(ambassador.sessions),
            },
        )

    app = build_ops_app(ambassador.metrics.registry, liveness=liveness, readiness=readiness)

    async def show_routes(request: web.Request) -> web.StreamResponse:
        return web.json_response(routes_document(ambassador), dumps=lambda o: json.dumps(o))

    app.router.add_get("/routes", show_routes)
    return app
