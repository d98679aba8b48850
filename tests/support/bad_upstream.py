"""A small HTTP server that misbehaves on purpose, one way per path.

    /slow        answers a valid status page after `slow_seconds` (20 s)
    /500, /404   that status, with a short HTML body
    /redirect    301 to /page/status
    /huge        200 text/plain, no Content-Length, streams up to 64 MiB
    /huge-announced  200 with Content-Length: 64 MiB, then streams
    /html        200 text/html: mod_status without ?auto
    /empty       200, empty body
    /garbage     200 text/plain, not a status page
    /page/<name> 200 with `pages[name]`, which a test may change at any time

It runs in a thread of the test process and counts the requests per path.
`close()` releases a /slow request still waiting, so teardown is quick.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HUGE = 64 * 1024 * 1024
_CHUNK = b"Scoreboard: " + b"_" * (64 * 1024 - 13) + b"\n"


class BadUpstream:
    def __init__(self, status_page: str, *, slow_seconds: float = 20.0) -> None:
        self.pages: dict[str, str] = {"status": status_page}
        self.slow_seconds = slow_seconds
        self.requests: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self._release = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test reads `requests`, not stderr

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                upstream.requests[path] = upstream.requests[path] + 1
                upstream.headers.append(dict(self.headers))
                with contextlib.suppress(OSError):
                    upstream._answer(self, path)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _answer(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        if path == "/slow":
            self._release.wait(self.slow_seconds)
            _send(handler, 200, "text/plain", self.pages["status"])
        elif path in ("/500", "/404"):
            _send(handler, int(path[1:]), "text/html", "<html><body>error</body></html>")
        elif path == "/redirect":
            handler.send_response(301)
            handler.send_header("Location", self.url("/page/status"))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif path in ("/huge", "/huge-announced"):
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            if path == "/huge-announced":
                handler.send_header("Content-Length", str(HUGE))
            else:
                handler.send_header("Connection", "close")
            handler.end_headers()
            for _ in range(HUGE // len(_CHUNK)):
                if self._release.is_set():
                    break
                handler.wfile.write(_CHUNK)
        elif path == "/html":
            page = "<!DOCTYPE html>\n<html><head><title>Apache Status</title></head>\n"
            _send(handler, 200, "text/html", page + "<body><h1>Apache Server Status</h1></body>")
        elif path == "/empty":
            _send(handler, 200, "text/plain", "")
        elif path == "/garbage":
            _send(handler, 200, "text/plain", "Hello, world!\nThis is not: mod_status\n")
        elif path.startswith("/page/") and path[6:] in self.pages:
            _send(handler, 200, "text/plain; charset=ISO-8859-1", self.pages[path[6:]])
        else:
            _send(handler, 404, "text/plain", "no such page\n")

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: str) -> None:
    data = body.encode("latin-1")
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
