"""gitpoll's HTTP endpoints: the shared ops routes plus POST /sync."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from patterns_common.cli import read_secret_file
from patterns_common.logsetup import fields
from patterns_common.ops_http import ProbeResult, build_ops_app

from .metrics import Metrics
from .service import Status
from .webhook import SIGNATURE_HEADER, signature_problem

log = logging.getLogger(__name__)

# GitHub caps webhook payloads at 25 MB; the whole body must be read to check it.
MAX_WEBHOOK_BODY = 25 * 1024 * 1024


def _status_detail(status: Status) -> dict[str, object]:
    return {
        "commit": status.published,
        "consecutive_failures": status.consecutive_failures,
        "last_success": status.last_success,
        "last_error": status.last_error,
    }


def build_app(
    status: Status,
    metrics: Metrics,
    trigger: Callable[[str], None],
    webhook_secret_file: Path | None,
) -> web.Application:
    def liveness() -> ProbeResult:
        return ProbeResult(status.loop_alive, _status_detail(status))

    def readiness() -> ProbeResult:
        return ProbeResult(status.published is not None, _status_detail(status))

    app = build_ops_app(
        metrics.registry,
        liveness=liveness,
        readiness=readiness,
        client_max_size=MAX_WEBHOOK_BODY,
    )

    async def sync(request: web.Request) -> web.Response:
        if webhook_secret_file is None:
            return web.Response(
                status=404,
                text="POST /sync is disabled: start gitpoll with --webhook-secret-file\n",
            )
        body = await request.read()
        try:
            secret = read_secret_file(webhook_secret_file).encode()
        except OSError as exc:
            log.error("cannot read the webhook secret file", extra=fields(error=exc.strerror))
            secret = b""
        problem = signature_problem(secret, body, request.headers.get(SIGNATURE_HEADER))
        if problem is not None:
            metrics.webhook_requests.labels("rejected").inc()
            log.warning("rejected POST /sync", extra=fields(reason=problem, peer=request.remote))
            return web.Response(
                status=401, text=f"rejected: invalid or missing {SIGNATURE_HEADER}\n"
            )
        metrics.webhook_requests.labels("accepted").inc()
        trigger("webhook")
        return web.json_response({"status": "queued"}, status=202)

    app.router.add_post("/sync", sync)
    return app
