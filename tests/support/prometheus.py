"""A real Prometheus server on a free loopback port, scraping what a test names."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .net import free_port
from .processes import Process, ProcessGroup
from .wait import wait_until

PROMETHEUS = "/usr/bin/prometheus"


def scrape_job(
    name: str, address: str, metrics_path: str = "/metrics", **params: str
) -> dict[str, Any]:
    """One entry of scrape_configs: the exporter at `address` (host:port),
    `metrics_path`, with `params` as URL parameters (a /probe target)."""
    job: dict[str, Any] = {
        "job_name": name,
        "metrics_path": metrics_path,
        "static_configs": [{"targets": [address]}],
    }
    if params:
        job["params"] = {key: [value] for key, value in params.items()}
    return job


class PrometheusServer:
    """Prometheus scraping `jobs` (see `scrape_job`) every second; its data
    directory is in `base_dir`."""

    def __init__(
        self,
        processes: ProcessGroup,
        base_dir: Path,
        jobs: list[dict[str, Any]],
        *,
        startup_timeout: float = 30.0,
    ) -> None:
        base_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": jobs,
        }
        # JSON is YAML: no YAML library needed to write the configuration.
        (base_dir / "prometheus.yml").write_text(json.dumps(config, indent=2))
        self.process: Process = processes.start(
            [
                PROMETHEUS,
                f"--config.file={base_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={base_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            base_dir / "prometheus.log",
        )
        wait_until(self._ready, startup_timeout, message=f"Prometheus on port {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        if not self.process.running():
            raise AssertionError(f"Prometheus exited:\n{self.process.output()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            document = json.load(response)
        assert document["status"] == "success", document
        return document["data"]

    def active_targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return targets

    def query(self, expression: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) per series."""
        data = self.api("query", query=expression)
        return [(row["metric"], float(row["value"][1])) for row in data["result"]]
