"""The httpd.conf of every pattern, run by a real Apache.

The manifests use the official httpd:2.4 image; here Debian's apache2 (the
same 2.4 series) runs the same file, with only what differs between the two
builds translated: ServerRoot and the module directory, modules Debian
compiles in, the pod's mount paths, and the port. So a directive the image's
httpd would refuse, a module left out or a status page that the adapter
cannot read fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.verify import metric_value
from support.apache import APACHE, MODULES_DIR, run_user, shared_directory
from support.httpd_adapter import http_get
from support.net import free_port, port_open
from support.processes import ProcessGroup
from support.wait import wait_until

from .manifests import K8S, containers, render

IMAGE_SERVER_ROOT = "/usr/local/apache2"
PATTERNS = ["init-container", "sidecar", "sidecar/classic", "adapter"]


def built_in_modules() -> set[str]:
    """Modules this apache2 has compiled in (`mod_unixd.c` -> `unixd_module`)."""
    listing = subprocess.run([APACHE, "-l"], capture_output=True, text=True, check=True).stdout
    return {f"{name}_module" for name in re.findall(r"mod_(\w+)\.c", listing)}


def httpd_conf(pattern: str) -> str:
    [config] = [
        d for d in render(pattern) if d["kind"] == "ConfigMap" and "httpd.conf" in d.get("data", {})
    ]
    text: str = config["data"]["httpd.conf"]
    return text


class LocalHttpd:
    """The pattern's httpd.conf, run by the local apache2 in a shared directory."""

    def __init__(self, processes: ProcessGroup, pattern: str, base: Path) -> None:
        self.port = free_port()
        self.base = base
        server_root = base / "server-root"
        (server_root / "conf").mkdir(parents=True)
        (server_root / "htdocs").mkdir()
        (server_root / "htdocs" / "index.html").write_text("<html><body>It works!</body></html>\n")
        (server_root / "modules").symlink_to(MODULES_DIR)
        (server_root / "conf" / "mime.types").symlink_to("/etc/mime.types")
        self.www = base / "www"
        self.run_dir = base / "run"
        self.run_dir.mkdir()
        text = httpd_conf(pattern)
        built_in = built_in_modules()
        lines = [
            line
            for line in text.splitlines()
            if not (line.startswith("LoadModule ") and line.split()[1] in built_in)
        ]
        text = "\n".join(lines) + "\n"
        text = text.replace(IMAGE_SERVER_ROOT, str(server_root))
        text = text.replace("/srv/www", str(self.www)).replace("/var/run/httpd", str(self.run_dir))
        assert re.search(r"^Listen 8080$", text, re.M), "httpd listens on 8080 in the pod"
        text = re.sub(r"^Listen 8080$", f"Listen 127.0.0.1:{self.port}", text, flags=re.M)
        user = run_user()
        if user is not None:  # as root, Apache must be told whom to serve as
            text += f"User {user}\nGroup {user}\n"
        self.config = base / "httpd.conf"
        self.config.write_text(text)
        for path in base.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        syntax = subprocess.run(
            [APACHE, "-t", "-f", str(self.config)], capture_output=True, text=True, check=False
        )
        assert syntax.returncode == 0, syntax.stderr
        self.process = processes.start(
            [APACHE, "-f", str(self.config), "-DFOREGROUND"],
            base / "apache2.out",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
        )
        wait_until(lambda: port_open(self.port) or not self.process.running(), 10)
        assert self.process.running(), self.process.output()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Path]:
    path = shared_directory("workshop-httpd-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(www: Path, commit: str, page: str) -> None:
    """What gitpoll leaves on the volume: a checkout and the `current` link."""
    checkout = www / ".worktrees" / commit
    checkout.mkdir(parents=True)
    (checkout / "index.html").write_text(page)
    link = www / ".current.tmp"
    link.symlink_to(f".worktrees/{commit}")
    link.rename(www / "current")
    for path in [www, *www.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("pattern", ["init-container", "sidecar", "sidecar/classic"])
def test_httpd_serves_what_gitpoll_publishes(
    pattern: str, processes: ProcessGroup, shared: Path
) -> None:
    www = shared / "www"
    www.mkdir()
    publish(www, "a" * 40, "<h1>first</h1>\n")
    httpd = LocalHttpd(processes, pattern, shared)
    answer = http_get(httpd.url + "/")
    assert (answer.status, answer.text) == (200, "<h1>first</h1>\n")
    assert answer.headers["Content-Type"].startswith("text/html")
    publish_again = www / ".worktrees" / ("b" * 40)
    publish_again.mkdir()
    (publish_again / "index.html").write_text("<h1>second</h1>\n")
    publish_again.chmod(0o755)
    (publish_again / "index.html").chmod(0o644)
    (www / ".next").symlink_to(f".worktrees/{'b' * 40}")
    (www / ".next").rename(www / "current")
    assert http_get(httpd.url + "/").text == "<h1>second</h1>\n"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_status_page_is_served_to_localhost(
    pattern: str, processes: ProcessGroup, shared: Path
) -> None:
    (shared / "www").mkdir()
    httpd = LocalHttpd(processes, pattern, shared)
    answer = http_get(httpd.url + "/server-status?auto")
    assert answer.status == 200
    assert "ServerMPM: event" in answer.text
    assert "Total Accesses:" in answer.text  # ExtendedStatus On


def test_the_adapter_pod_reports_apache_up(processes: ProcessGroup, shared: Path) -> None:
    """httpd and httpd-adapter as the adapter pod runs them, ports aside."""
    httpd = LocalHttpd(processes, "adapter", shared)
    assert http_get(httpd.url + "/").text.startswith("<html><body>It works!")
    [adapter] = [c for c in containers("adapter") if c.spec["name"] == "httpd-adapter"]
    metrics_port = free_port()
    args = [
        arg.replace("localhost:8080", f"localhost:{httpd.port}").replace(
            "--listen=:9117", f"--listen=127.0.0.1:{metrics_port}"
        )
        for arg in adapter.spec["args"]
    ]
    assert f"--listen=127.0.0.1:{metrics_port}" in args
    process = processes.start(
        [sys.executable, "-m", "httpd_adapter", *args],
        shared / "httpd-adapter.log",
        env=dict(os.environ),
    )
    wait_until(lambda: port_open(metrics_port) or not process.running(), 15)
    metrics = http_get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert re.search(r"^apache_up 1$", metrics, re.M), metrics[:2000]
    assert re.search(r"^apache_accesses_total \d+", metrics, re.M)
    # What make verify-adapter reads from the same output.
    assert metric_value(metrics, "apache_up") == 1
    # Every series the workshop's Grafana dashboard plots is in this output.
    for name in dashboard_metrics():
        assert re.search(rf"^{name}[{{ ]", metrics, re.M), name


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((K8S / "prometheus" / "grafana" / "httpd-adapter.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = {name for e in expressions for name in re.findall(r"\b(apache_\w+)\{", e)}
    assert len(names) >= 8
    return names


@pytest.mark.parametrize("pattern", ["init-container", "sidecar", "sidecar/classic"])
def test_before_the_first_sync_httpd_runs_and_answers_404(
    pattern: str, processes: ProcessGroup, shared: Path
) -> None:
    """What the classic variant shows while gitpoll has not published yet:
    httpd up, nothing to serve (its readiness probe fails until then)."""
    (shared / "www").mkdir()
    httpd = LocalHttpd(processes, pattern, shared)
    assert http_get(httpd.url + "/").status == 404
    publish(shared / "www", "c" * 40, "<h1>now</h1>\n")
    assert http_get(httpd.url + "/").text == "<h1>now</h1>\n"
    assert httpd.process.running()
