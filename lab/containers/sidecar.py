"""k8s/sidecar under podman: httpd serving what gitpoll, a native sidecar,
publishes from a git repository the pod reaches over the network."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from gitpoll.cli import load_config

from ..verify import CheckFailed
from . import security
from .gitserver import GIT_SERVER, URL, SiteRepository, git_server_pod
from .manifests import Doc, add_host_aliases, container, find, kustomize
from .pods import http_get, probe_once, resolve_port, wait_for, wait_for_startup_probe
from .report import Report
from .session import PageWatcher, Session, check_probes, get_text, metric_sum

DIRECTORY = "sidecar"
WORKLOAD = "sidecar"


def page(number: int) -> dict[str, bytes]:
    """The files of the repository's n-th commit."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return {
        "index.html": (
            f"<!doctype html>\n<title>Sidecar Patterns: page {number}</title>\n"
            f"<h1>Page {number}</h1>\n<p>Committed by make test-containers at {stamp}.</p>\n"
        ).encode(),
        "css/site.css": f"h1 {{ color: #{number * 111111 % 0xFFFFFF:06x}; }}\n".encode(),
    }


def gitpoll_period(gitpoll: Doc) -> float:
    """The period the manifest gives gitpoll, as gitpoll itself reads it."""
    environ = {v["name"]: str(v["value"]) for v in gitpoll.get("env", []) if "value" in v}
    return float(load_config([str(a) for a in gitpoll.get("args", [])], environ).period)


def served(base: str, files: dict[str, bytes]) -> str:
    """Every file of the commit, as httpd serves it, equals the repository's."""
    for path, content in files.items():
        status, body = http_get(f"{base}/{path}")
        if status != 200 or body != content:
            raise CheckFailed(f"/{path}: {status}, {len(body)} bytes, not the commit's")
    status, body = http_get(f"{base}/")
    if status != 200 or body != files["index.html"]:
        raise CheckFailed(f"/: {status}, not the commit's index.html")
    return f"/ and {', '.join('/' + p for p in sorted(files))}"


def run(session: Session) -> Report:
    report = Report("sidecar", f"k8s/{DIRECTORY}")
    report.heading("httpd serving what gitpoll, a native sidecar, syncs from git")
    original = kustomize(DIRECTORY)
    workload = find(original, "Deployment", WORKLOAD)
    gitpoll, httpd = container(workload, "gitpoll"), container(workload, "httpd")
    period = gitpoll_period(gitpoll)
    http_port = resolve_port(httpd, "http")
    session.report_images(report, original)

    repository = SiteRepository(session.state / "sidecar-repository")
    first_files = page(1)
    first = repository.commit(first_files, "page 1")
    [git_pod] = session.pods.play(
        "git-server",
        git_server_pod(session.ref(gitpoll["image"]), repository.served),
    )
    git_ip = session.pods.ip(git_pod)

    adapted = session.adapt(original, git_repo=URL)
    add_host_aliases(adapted, {GIT_SERVER: git_ip}, WORKLOAD)
    report.adapted(adapted.notes)
    [pod] = session.pods.play(DIRECTORY, adapted.docs, start=False)
    session.podman.run("start", pod.container("gitpoll"))
    ip = session.pods.ip(pod)
    page_url = f"http://{ip}:{http_port}"
    watcher = PageWatcher(f"{page_url}/")
    watcher.start()
    report.run(
        f"pod {pod.name} ({ip}): gitpoll, alone until its startup probe passes, then httpd; "
        f"pod {git_pod.name} ({git_ip}): git daemon serving {URL} (published after the "
        f"first sync attempt)"
    )
    gitpoll_url = f"http://{ip}:{resolve_port(gitpoll, 'gitpoll')}"

    def held_back() -> str:
        def failed_once() -> float:
            return metric_sum(get_text(f"{gitpoll_url}/metrics"), "gitpoll_sync_errors_total")

        wait_for(failed_once, 60, "gitpoll's first sync to fail")
        passed, seen = probe_once(
            session.podman, ip, pod.container("gitpoll"), gitpoll, gitpoll["startupProbe"]
        )
        if passed:
            raise CheckFailed(f"the startup probe passed with nothing published ({seen})")
        readiness = json.loads(http_get(f"{gitpoll_url}/readyz")[1])
        return f"first sync: {readiness.get('last_error')}; startup probe: {seen}"

    report.check("gitpoll's startup probe fails while nothing is published", held_back)

    def startup() -> str:
        repository.publish()
        attempts, seconds, seen = wait_for_startup_probe(
            session.podman, ip, pod.container("gitpoll"), gitpoll, gitpoll["startupProbe"]
        )
        readiness = json.loads(http_get(f"{gitpoll_url}/readyz")[1])
        if readiness.get("commit") != first:
            raise CheckFailed(f"/readyz says {readiness}, the repository has {first}")
        session.podman.run("pod", "start", pod.name)
        return (
            f"commit {first[:12]} published; {seen} after {seconds:.1f}s, "
            f"attempt {attempts}; httpd started then"
        )

    if not report.check(
        "the startup probe passes once the first commit is published; httpd starts then",
        startup,
    ):
        return report

    report.check(
        "the page httpd serves equals the repository's content",
        lambda: wait_for(lambda: served(page_url, first_files), 60, "the first commit served"),
    )
    watcher.stop()
    report.check(
        "httpd never served before the first sync",
        lambda: never_served_early(watcher, first_files["index.html"]),
    )
    report.check(
        f"a new commit is served within one period ({period:g}s), without a trigger",
        lambda: new_commit_served(repository, page_url, period, trigger=None),
    )
    report.check(
        "a new commit is served at once after a trigger (SIGHUP to gitpoll)",
        lambda: new_commit_served(
            repository,
            page_url,
            period,
            trigger=lambda: session.podman.run("kill", "--signal=HUP", pod.container("gitpoll")),
        ),
    )
    report.check(
        "gitpoll's /readyz and /metrics name the commit served",
        lambda: gitpoll_reports(gitpoll_url, repository),
    )
    report.check(
        "every probe of the manifest passes", lambda: check_probes(session, workload, pod, ip)
    )
    report.check(
        "every container runs as the manifest's non-root user, read-only root",
        lambda: security.check_pod(session.podman, workload, pod),
    )
    return report


def never_served_early(watcher: PageWatcher, first_page: bytes) -> str:
    """From gitpoll's start on, httpd's port refused until httpd started, then
    answered the published page: never a 404, an empty or another page."""
    refused = 0
    pages = 0
    for at, status, body in watcher.answers:
        if status == "refused" and not pages:
            refused += 1
        elif status == "200" and body == first_page:
            pages += 1
        else:
            when = time.strftime("%H:%M:%S", time.localtime(at))
            raise CheckFailed(f"at {when} httpd answered {status} with {body[:60]!r}")
    if not pages:
        raise CheckFailed(f"{refused} requests, none answered with the page")
    return f"{refused} requests refused before httpd started, then {pages} with the page"


def new_commit_served(
    repository: SiteRepository, page_url: str, period: float, trigger: Callable[[], object] | None
) -> str:
    files = page(repository.commits + 1)
    commit = repository.commit(files, f"page {repository.commits + 1}")
    repository.push()
    pushed = time.monotonic()
    if trigger is not None:
        trigger()
    # Without a trigger: within one period, plus the time a sync takes.
    # With one: well before the next poll is due.
    limit = period / 2 if trigger else period + 5
    wait_for(lambda: served(page_url, files), limit, f"commit {commit[:12]} served")
    return f"commit {commit[:12]} served {time.monotonic() - pushed:.1f}s after the push"


def gitpoll_reports(gitpoll_url: str, repository: SiteRepository) -> str:
    head = repository.head()
    readiness = json.loads(get_text(f"{gitpoll_url}/readyz"))
    if readiness.get("commit") != head:
        raise CheckFailed(f"/readyz says {readiness.get('commit')}, the repository has {head}")
    metrics = get_text(f"{gitpoll_url}/metrics")
    if metric_sum(metrics, "gitpoll_commit_info", f'commit="{head}"') != 1:
        raise CheckFailed(f"gitpoll_commit_info has no commit={head}")
    published = metric_sum(metrics, "gitpoll_syncs_total", 'result="success"')
    return f"commit {head[:12]}; gitpoll_syncs_total{{result=success}} {published:g}"
