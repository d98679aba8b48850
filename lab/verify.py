"""`make verify-<pattern>`: check in the cluster what the guide says you
should see. One PASS or FAIL line per check; the exit code says whether all
passed. Requests reach pods and Services through the API server's proxy, so
no port-forward is needed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .kube import Kubectl, KubectlError

RETRY_FOR = 90.0


class CheckFailed(Exception):
    """The check did not see what it should; the message says what it saw."""


@dataclass(frozen=True, slots=True)
class Check:
    title: str
    run: Callable[[Kubectl], str]
    """Returns a short detail on success; raises CheckFailed or KubectlError."""


def eventually(attempt: Callable[[], str], timeout: float = RETRY_FOR) -> str:
    """Retry while the cluster settles (a first sync, a first scrape)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except (CheckFailed, KubectlError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def run_checks(kubectl: Kubectl, pattern: str, checks: list[Check]) -> bool:
    passed = True
    for check in checks:
        try:
            detail = check.run(kubectl)
        except (CheckFailed, KubectlError, ValueError, KeyError) as error:
            print(f"FAIL  {pattern}: {check.title}: {error}", flush=True)
            passed = False
        else:
            print(
                f"PASS  {pattern}: {check.title}" + (f" ({detail})" if detail else ""), flush=True
            )
    return passed


# -- helpers -----------------------------------------------------------------


def the_pod(kubectl: Kubectl, app: str) -> dict[str, Any]:
    pods = kubectl.pods(f"app={app}")
    if len(pods) != 1:
        raise CheckFailed(f"expected one pod with app={app}, found {len(pods)}")
    return pods[0]


def pod_ready(app: str) -> Check:
    def run(kubectl: Kubectl) -> str:
        kubectl.run(
            "wait",
            "--for=condition=Ready",
            "pod",
            f"--selector=app={app}",
            "--timeout=180s",
            timeout=200,
        )
        return str(the_pod(kubectl, app)["metadata"]["name"])

    return Check(f"pod app={app} is Ready", run)


def metric_value(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.eE+-]+)$"
    match = re.search("^" + pattern, text, re.MULTILINE)
    if match is None:
        raise CheckFailed(f"no {name}{{{labels}}} in the metrics")
    return float(match[1])


def page_served(service: str, expect: str = "") -> Check:
    def run(kubectl: Kubectl) -> str:
        def attempt() -> str:
            body = kubectl.service_proxy(service, "http", "/")
            if not body.strip() or expect not in body:
                raise CheckFailed(f"service {service} answered {body[:80]!r}")
            title = re.search(r"<title>(.*?)</title>", body, re.I | re.S)
            return f"{len(body)} bytes" + (f", <title>{title[1].strip()}</title>" if title else "")

        return eventually(attempt)

    return Check(f"service {service} serves the page", run)


def _started_at(status: dict[str, Any]) -> str:
    running = status.get("state", {}).get("running")
    if not running:
        raise CheckFailed(f"container {status['name']} is not running: {status.get('state')}")
    return str(running["startedAt"])


# -- the patterns ------------------------------------------------------------


def gitpoll_published(app: str) -> Check:
    def run(kubectl: Kubectl) -> str:
        pod = the_pod(kubectl, app)["metadata"]["name"]

        def attempt() -> str:
            status = json.loads(kubectl.pod_proxy(pod, 8081, "/readyz"))
            if status.get("status") != "ok" or not re.fullmatch(
                r"[0-9a-f]{40}", str(status.get("commit"))
            ):
                raise CheckFailed(f"/readyz says {status}")
            metrics = kubectl.pod_proxy(pod, 8081, "/metrics")
            if metric_value(metrics, "gitpoll_syncs_total", 'result="success"') < 1:
                raise CheckFailed("gitpoll_syncs_total{result=success} is 0")
            return f"commit {status['commit'][:12]}"

        return eventually(attempt)

    return Check("gitpoll published a commit", run)


def native_sidecar_started_first(kubectl: Kubectl) -> str:
    pod = the_pod(kubectl, "sidecar")
    [gitpoll] = [
        s for s in pod["status"].get("initContainerStatuses", []) if s["name"] == "gitpoll"
    ]
    [httpd] = [s for s in pod["status"]["containerStatuses"] if s["name"] == "httpd"]
    if not gitpoll.get("started"):
        raise CheckFailed("gitpoll has not passed its startup probe")
    gitpoll_start, httpd_start = _started_at(gitpoll), _started_at(httpd)
    if httpd_start < gitpoll_start:  # RFC 3339 in UTC: compares as text
        raise CheckFailed(f"httpd started at {httpd_start}, before gitpoll at {gitpoll_start}")
    return f"gitpoll {gitpoll_start}, httpd {httpd_start}"


def init_container_completed(kubectl: Kubectl) -> str:
    pod = the_pod(kubectl, "init-container")
    [gitpoll] = [
        s for s in pod["status"].get("initContainerStatuses", []) if s["name"] == "gitpoll"
    ]
    terminated = gitpoll.get("state", {}).get("terminated") or {}
    if terminated.get("exitCode") != 0:
        raise CheckFailed(f"gitpoll --one-time: {gitpoll.get('state')}")
    names = [s["name"] for s in pod["status"]["containerStatuses"]]
    if names != ["httpd"]:
        raise CheckFailed(f"containers running: {names}")
    return "gitpoll --one-time exited 0; only httpd runs"


def adapter_reports_apache_up(kubectl: Kubectl) -> str:
    pod = the_pod(kubectl, "adapter")["metadata"]["name"]

    def attempt() -> str:
        metrics = kubectl.pod_proxy(pod, 9117, "/metrics")
        if metric_value(metrics, "apache_up") != 1:
            raise CheckFailed("apache_up is 0")
        accesses = metric_value(metrics, "apache_accesses_total")
        return f"apache_up 1, apache_accesses_total {accesses:g}"

    return eventually(attempt)


def postgres_ready(kubectl: Kubectl) -> str:
    kubectl.run("rollout", "status", "statefulset/postgres", "--timeout=300s", timeout=320)
    return "2 servers"


def visit_answered_by_the_route(kubectl: Kubectl) -> str:
    pod = the_pod(kubectl, "visit-counter")["metadata"]["name"]

    def attempt() -> str:
        routes = json.loads(kubectl.pod_proxy(pod, 9187, "/routes"))["routes"]
        [route] = [r for r in routes if r["name"] == "visits"]
        visit = json.loads(kubectl.service_proxy("visit-counter", "http", "/json"))
        if "error" in visit:
            raise CheckFailed(f"the app got {visit['code']}: {visit['error']}")
        servers = [s["address"].split(".")[0] for s in route["servers"]]
        tls = route["tls"] != "disable"
        if visit["server"] not in servers or visit["database"] != route["database"]:
            raise CheckFailed(f"visit answered by {visit}, the route says {route}")
        if visit["tls"] != tls:
            raise CheckFailed(f"the server leg's TLS is {visit['tls']}, the route says {tls}")
        leg = "TLS" if tls else "plaintext"
        return f"visit {visit['visit']} by {visit['server']}/{visit['database']}, {leg}"

    return eventually(attempt)


def prometheus_targets_up(kubectl: Kubectl) -> str:
    def attempt() -> str:
        answer = json.loads(kubectl.service_proxy("prometheus", "web", "/api/v1/targets"))
        targets = [
            t for t in answer["data"]["activeTargets"] if t["labels"]["job"] == "kubernetes-pods"
        ]
        if not targets:
            raise CheckFailed("no annotated pod discovered (deploy a pattern first)")
        down = [
            f"{t['labels'].get('pod')}: {t['health']} {t['lastError']}"
            for t in targets
            if t["health"] != "up"
        ]
        if down:
            raise CheckFailed("; ".join(down))
        return ", ".join(sorted(f"{t['labels'].get('pod')} {t['scrapeUrl']}" for t in targets))

    return eventually(attempt, timeout=120)


CHECKS: dict[str, list[Check]] = {
    "init-container": [
        pod_ready("init-container"),
        Check("gitpoll cloned once, as an init container", init_container_completed),
        page_served("init-container"),
    ],
    "sidecar": [
        pod_ready("sidecar"),
        Check("gitpoll is a native sidecar, started before httpd", native_sidecar_started_first),
        gitpoll_published("sidecar"),
        page_served("sidecar"),
    ],
    "sidecar-classic": [
        pod_ready("sidecar-classic"),
        gitpoll_published("sidecar-classic"),
        page_served("sidecar-classic"),
    ],
    "adapter": [
        pod_ready("adapter"),
        page_served("adapter", expect="It works!"),
        Check("httpd-adapter reports apache_up 1", adapter_reports_apache_up),
    ],
    "ambassador": [
        Check("both PostgreSQL servers are ready", postgres_ready),
        pod_ready("visit-counter"),
        Check("a visit is answered where the ambassador's route says", visit_answered_by_the_route),
    ],
    "prometheus": [
        pod_ready("prometheus"),
        Check("every annotated pod is scraped and up", prometheus_targets_up),
    ],
}
