"""The ambassador pattern's app when the database cannot be reached: a page
that says why (the ambassador's SQLSTATE), one log line, and an app that
keeps serving. (Its working path is in test_demo.)"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from support.http import http_get
from support.net import free_port, port_open
from support.processes import Process, ProcessGroup
from support.wait import wait_until

from .manifests import K8S

APP = K8S / "ambassador" / "base" / "app" / "visit_counter.py"


def start_app(processes: ProcessGroup, tmp_path: Path, database_port: int) -> tuple[Process, str]:
    port = free_port()
    app = processes.start(
        [sys.executable, str(APP), "--listen", f"127.0.0.1:{port}", "--timeout", "5s"],
        tmp_path / "app.log",
        env={
            **os.environ,
            "DATABASE_URL": f"postgresql://app@127.0.0.1:{database_port}/visits?sslmode=disable",
        },
    )
    wait_until(lambda: port_open(port) or not app.running(), 15, message="the app's port")
    assert app.running(), app.output()
    return app, f"http://127.0.0.1:{port}"


def test_nothing_listening(processes: ProcessGroup, tmp_path: Path) -> None:
    app, url = start_app(processes, tmp_path, free_port())
    status, body = http_get(url + "/json")
    assert status == 503
    assert json.loads(body)["code"] == "unreachable"
    status, page = http_get(url + "/")
    assert status == 503 and "No visit recorded" in page
    assert http_get(url + "/healthz")[0] == 200
    wait_until(lambda: app.output().count("visit failed") == 2, 5, message="one line per failure")
    assert "Traceback" not in app.output()


def test_the_ambassador_has_no_server_for_it(processes: ProcessGroup, tmp_path: Path) -> None:
    """The ambassador's refusal reaches the page with its SQLSTATE."""
    ambassador_port, admin_port = free_port(), free_port()
    ambassador = processes.start(
        [
            *(sys.executable, "-m", "pg_ambassador"),
            *("--upstream", f"127.0.0.1:{free_port()}"),
            *("--listen", f"127.0.0.1:{ambassador_port}"),
            *("--admin-bind", f"127.0.0.1:{admin_port}"),
        ],
        tmp_path / "ambassador.log",
        env=dict(os.environ),
    )
    wait_until(lambda: port_open(ambassador_port) or not ambassador.running(), 15)
    _, url = start_app(processes, tmp_path, ambassador_port)
    status, body = http_get(url + "/json", timeout=30)
    assert status == 503
    answer = json.loads(body)
    assert answer["code"] == "08006", answer
    assert "visits" in answer["error"]
