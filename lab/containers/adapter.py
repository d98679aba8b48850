"""k8s/adapter under podman: httpd with mod_status, and httpd-adapter
turning its status page into Prometheus metrics, in one pod."""

from __future__ import annotations

from ..verify import CheckFailed, metric_value
from . import security
from .manifests import container, find, kustomize
from .pods import http_get, resolve_port, wait_for
from .report import Report
from .session import Session, check_probes, check_scrape_annotations, get_text, stops_cleanly

DIRECTORY = "adapter"
WORKLOAD = "adapter"
REQUESTS = 25


def run(session: Session) -> Report:
    report = Report("adapter", f"k8s/{DIRECTORY}")
    report.heading("httpd with mod_status, httpd-adapter translating it for Prometheus")
    original = kustomize(DIRECTORY)
    workload = find(original, "Deployment", WORKLOAD)
    httpd, adapter = container(workload, "httpd"), container(workload, "httpd-adapter")
    session.report_images(report, original)
    adapted = session.adapt(original)
    report.adapted(adapted.notes)
    [pod] = session.pods.play(DIRECTORY, adapted.docs)
    ip = session.pods.ip(pod)
    page_url = f"http://{ip}:{resolve_port(httpd, 'http')}"
    metrics_url = f"http://{ip}:{resolve_port(adapter, 'metrics')}/metrics"
    report.run(f"pod {pod.name} ({ip}): httpd and httpd-adapter, sharing the pod's localhost")

    def page() -> str:
        status, body = wait_for(lambda: http_get(f"{page_url}/"), 60, "httpd to answer")
        if status != 200 or b"It works!" not in body:
            raise CheckFailed(f"GET /: {status} {body[:80]!r}")
        return f"GET / 200, {len(body)} bytes"

    if not report.check("httpd serves its page", page):
        return report

    def apache_up() -> str:
        def up() -> str:
            metrics = get_text(metrics_url)
            if metric_value(metrics, "apache_up") != 1:
                raise CheckFailed("apache_up is 0")
            return metrics

        metrics = wait_for(up, 60, "apache_up 1")
        return (
            f"apache_up 1, apache_accesses_total {metric_value(metrics, 'apache_accesses_total'):g}"
        )

    report.check("the adapter's /metrics shows apache_up 1", apache_up)

    def counters_move() -> str:
        before = get_text(metrics_url)
        for _ in range(REQUESTS):
            http_get(f"{page_url}/")
        after = get_text(metrics_url)
        moved = {
            name: (metric_value(before, name), metric_value(after, name))
            for name in ("apache_accesses_total", "apache_sent_kilobytes_total")
        }
        was, now = moved["apache_accesses_total"]
        if now - was < REQUESTS:
            raise CheckFailed(f"{REQUESTS} requests, apache_accesses_total {was:g} -> {now:g}")
        return f"{REQUESTS} requests: " + ", ".join(
            f"{name} {was:g} -> {now:g}" for name, (was, now) in moved.items()
        )

    report.check("the counters move when the page is requested", counters_move)

    def status_page_private() -> str:
        status, _ = http_get(f"{page_url}/server-status?auto")
        if status != 403:
            raise CheckFailed(f"GET /server-status from outside the pod: {status}, not 403")
        return "403 from outside the pod; the adapter reads it over localhost"

    report.check("httpd's status page answers only the pod itself", status_page_private)
    report.check(
        "the prometheus.io annotations point at the adapter's metrics",
        lambda: check_scrape_annotations(workload, ip),
    )
    report.check(
        "every probe of the manifest passes", lambda: check_probes(session, workload, pod, ip)
    )
    report.check(
        "every container runs as the manifest's non-root user, read-only root",
        lambda: security.check_pod(session.podman, workload, pod),
    )
    report.check(
        "the pod stops cleanly: every container exits 0 on its stop signal",
        lambda: stops_cleanly(session.podman, workload, pod),
    )
    return report
