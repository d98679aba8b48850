"""`make demo`, run headless: what it tells the person at the terminal to
try works, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from lab.verify import metric_value
from support.ambassador import psql
from support.http import http_get
from support.processes import Process, ProcessGroup
from support.wait import wait_until

from .manifests import REPO

STARTUP_TIMEOUT = 120.0


def start_demo(processes: ProcessGroup, tmp_path: Path) -> tuple[Process, dict[str, Any]]:
    state_file = tmp_path / "demo.json"
    demo = processes.start(
        [sys.executable, "-m", "lab.demo", "--headless", "--state-file", str(state_file)],
        tmp_path / "demo.log",
        env={**os.environ, "PYTHONPATH": "tests"},
        cwd=REPO,
    )
    wait_until(
        lambda: state_file.exists() or not demo.running(),
        STARTUP_TIMEOUT,
        0.1,
        message="the demo to start",
    )
    assert demo.running(), f"the demo exited:\n{demo.output()}"
    state: dict[str, Any] = json.loads(state_file.read_text())
    return demo, state


def commit(site: Path, message: str) -> str:
    """`git commit -am` as the instructions say; the hook's output."""
    result = subprocess.run(
        ["git", "-C", str(site), "commit", "-am", message],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"},
    )
    return result.stdout + result.stderr


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_the_demo_does_what_it_says(processes: ProcessGroup, tmp_path: Path) -> None:
    demo, state = start_demo(processes, tmp_path)

    # Sidecar: the sample page, then an edit and a commit served at once.
    status, page = http_get(state["page"])
    assert status == 200 and "<h1>Hello from git</h1>" in page
    site = Path(state["site"])
    index = site / "index.html"
    index.write_text(index.read_text().replace("Hello from git", "Edited by the test"))
    hook_output = commit(site, "an edit")
    assert "gitpoll asked to sync now" in hook_output
    # gitpoll polls every 5 minutes here: only the commit's trigger can
    # publish the edit within this wait.
    wait_until(
        lambda: "<h1>Edited by the test</h1>" in http_get(state["page"])[1],
        20,
        0.05,
        message="the edit to be served",
    )
    _, metrics = http_get(state["gitpoll"] + "/metrics")
    assert re.search(r'^gitpoll_webhook_requests_total\{result="accepted"\} 1\.0$', metrics, re.M)
    # What make verify-sidecar reads from gitpoll's metrics: two publishes.
    assert metric_value(metrics, "gitpoll_syncs_total", 'result="success"') == 2

    # Adapter: Apache's status page as Prometheus metrics.
    _, adapter_metrics = http_get(state["adapter_metrics"])
    assert re.search(r"^apache_up 1$", adapter_metrics, re.M)

    # Ambassador: psql with no password reaches the local server as `visits`.
    conninfo = (
        f"host={state['ambassador_host']} port={state['ambassador_port']} "
        f"dbname={state['database']} user=anyone"
    )
    result = psql(conninfo, "select current_setting('cluster_name'), current_user")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "demo-local|visits"

    async def through_asyncpg() -> int:
        connection = await asyncpg.connect(
            host=state["ambassador_host"],
            port=state["ambassador_port"],
            database=state["database"],
            user="anyone",
            ssl=False,
            timeout=20,
        )
        try:
            port: int = await connection.fetchval("select inet_server_port()")
        finally:
            await connection.close()
        return port

    assert asyncio.run(through_asyncpg()) == state["postgres_port"]

    # The app counts visits through the ambassador.
    first = json.loads(http_get(state["app"] + "json")[1])
    second = json.loads(http_get(state["app"] + "json")[1])
    assert (first["server"], first["database"], first["db_user"]) == (
        "demo-local",
        "visits",
        "visits",
    )
    assert second["visit"] == first["visit"] + 1
    assert "Answered by server <b>demo-local</b>" in http_get(state["app"])[1]

    # Ctrl-C: everything stops, by PID, and the temporary files go.
    demo.signal(signal.SIGINT)
    assert demo.wait(60) == 0, demo.output()
    assert [pid for pid in state["pids"] if not gone(pid)] == []
    assert [d for d in state["temp_dirs"] if Path(d).exists()] == []
