"""The patterns that serve a git repository: k8s/sidecar (gitpoll as a
native sidecar), k8s/sidecar/classic (two plain containers) and
k8s/init-container (the baseline: gitpoll --one-time as an init container),
each syncing from a repository of its own that the pod reaches over the
network."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from gitpoll.cli import load_config

from ..verify import CheckFailed
from . import security
from .gitserver import GIT_SERVER, GitServer, SiteRepository
from .manifests import Doc, add_host_aliases, container, find, kustomize
from .pods import (
    Pod,
    http_get,
    probe_once,
    resolve_port,
    timestamp,
    wait_for,
    wait_for_startup_probe,
)
from .report import Report
from .session import (
    PageWatcher,
    Session,
    check_probes,
    check_scrape_annotations,
    get_text,
    metric_sum,
    stops_cleanly,
)


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


def new_commit_served(
    repository: SiteRepository,
    page_url: str,
    period: float,
    trigger: Callable[[], object] | None,
) -> str:
    commit, files = repository.commit_page()
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


class GitPattern:
    """One of the three: rendered, its repository, its pod played."""

    def __init__(self, session: Session, report: Report, directory: str, workload: str) -> None:
        self.session = session
        self.report = report
        self.original = kustomize(directory)
        self.workload = find(self.original, "Deployment", workload)
        self.gitpoll = container(self.workload, "gitpoll")
        self.httpd = container(self.workload, "httpd")
        self.directory = directory
        session.report_images(report, self.original)
        if session.git_server is None:
            session.git_server = GitServer(
                session.pods, session.ref(self.gitpoll["image"]), session.state / "git"
            )
        self.git_server = session.git_server
        self.repository = self.git_server.repository(workload)
        self.pod: Pod | None = None
        self.ip = ""

    def play(self, start: bool) -> Pod:
        adapted = self.session.adapt(self.original, git_repo=self.repository.url)
        add_host_aliases(
            adapted, {GIT_SERVER: self.git_server.start()}, self.workload["metadata"]["name"]
        )
        self.report.adapted(adapted.notes)
        [self.pod] = self.session.pods.play(self.directory.replace("/", "-"), adapted.docs, start)
        return self.pod

    @property
    def page_url(self) -> str:
        return f"http://{self.ip}:{resolve_port(self.httpd, 'http')}"

    @property
    def gitpoll_url(self) -> str:
        return f"http://{self.ip}:{resolve_port(self.gitpoll, 'gitpoll')}"

    def common_checks(self, period_checks: bool) -> None:
        """What every variant must do once its page is served."""
        assert self.pod is not None
        pod = self.pod
        report = self.report
        period = gitpoll_period(self.gitpoll)
        if period_checks:
            report.check(
                f"a new commit is served within one period ({period:g}s), without a trigger",
                lambda: new_commit_served(self.repository, self.page_url, period, trigger=None),
            )
            report.check(
                "a new commit is served at once after a trigger (SIGHUP to gitpoll)",
                lambda: new_commit_served(
                    self.repository,
                    self.page_url,
                    period,
                    trigger=lambda: self.session.podman.run(
                        "kill", "--signal=HUP", pod.container("gitpoll")
                    ),
                ),
            )
            report.check(
                "gitpoll's /readyz and /metrics name the commit served",
                lambda: gitpoll_reports(self.gitpoll_url, self.repository),
            )
            report.check(
                "the prometheus.io annotations point at gitpoll's metrics",
                lambda: check_scrape_annotations(self.workload, self.ip),
            )
        report.check(
            "every probe of the manifest passes",
            lambda: check_probes(self.session, self.workload, pod, self.ip),
        )
        report.check(
            "every container runs as the manifest's non-root user, read-only root",
            lambda: security.check_pod(self.session.podman, self.workload, pod),
        )
        report.check(
            "the pod stops cleanly: every container exits 0 on its stop signal",
            lambda: stops_cleanly(self.session.podman, self.workload, pod),
        )


def run_native(session: Session) -> Report:
    report = Report("sidecar", "k8s/sidecar")
    report.heading("httpd serving what gitpoll, a native sidecar, syncs from git")
    pattern = GitPattern(session, report, "sidecar", "sidecar")
    first, first_files = pattern.repository.commit_page()
    gitpoll = pattern.gitpoll
    pod = pattern.play(start=False)
    session.podman.run("start", pod.container("gitpoll"))
    pattern.ip = session.pods.ip(pod)
    watcher = PageWatcher(f"{pattern.page_url}/")
    watcher.start()
    report.run(
        f"pod {pod.name} ({pattern.ip}): gitpoll alone until its startup probe passes, "
        f"then httpd; pod {GIT_SERVER} ({pattern.git_server.ip}): git daemon serving "
        f"{pattern.repository.url}, published after gitpoll's first attempt"
    )

    def held_back() -> str:
        def failed_once() -> float:
            metrics = get_text(f"{pattern.gitpoll_url}/metrics")
            return metric_sum(metrics, "gitpoll_sync_errors_total")

        wait_for(failed_once, 60, "gitpoll's first sync to fail")
        passed, seen = probe_once(
            session.podman, pattern.ip, pod.container("gitpoll"), gitpoll, gitpoll["startupProbe"]
        )
        if passed:
            raise CheckFailed(f"the startup probe passed with nothing published ({seen})")
        readiness = json.loads(http_get(f"{pattern.gitpoll_url}/readyz")[1])
        return f"first sync: {readiness.get('last_error')}; startup probe: {seen}"

    report.check("gitpoll's startup probe fails while nothing is published", held_back)

    def startup() -> str:
        pattern.repository.publish()
        attempts, seconds, seen = wait_for_startup_probe(
            session.podman, pattern.ip, pod.container("gitpoll"), gitpoll, gitpoll["startupProbe"]
        )
        readiness = json.loads(http_get(f"{pattern.gitpoll_url}/readyz")[1])
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
        watcher.stop()
        return report
    report.check(
        "the page httpd serves equals the repository's content",
        lambda: wait_for(
            lambda: served(pattern.page_url, first_files), 60, "the first commit served"
        ),
    )
    watcher.stop()
    report.check(
        "httpd never served before the first sync",
        lambda: never_served_early(watcher, first_files["index.html"]),
    )
    pattern.common_checks(period_checks=True)
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


def run_classic(session: Session) -> Report:
    report = Report("sidecar-classic", "k8s/sidecar/classic")
    report.heading("the same as two plain containers, started together")
    pattern = GitPattern(session, report, "sidecar/classic", "sidecar-classic")
    _, files = pattern.repository.commit_page()
    pattern.repository.publish()
    pod = pattern.play(start=True)
    pattern.ip = session.pods.ip(pod)
    report.run(f"pod {pod.name} ({pattern.ip}): httpd and gitpoll, started together")
    if not report.check(
        "the page httpd serves equals the repository's content",
        lambda: wait_for(lambda: served(pattern.page_url, files), 60, "the commit served"),
    ):
        return report
    pattern.common_checks(period_checks=True)
    return report


def run_init_container(session: Session) -> Report:
    report = Report("init-container", "k8s/init-container")
    report.heading("the baseline: gitpoll --one-time as an init container, then httpd")
    pattern = GitPattern(session, report, "init-container", "init-container")
    _, files = pattern.repository.commit_page()
    pattern.repository.publish()
    pod = pattern.play(start=True)
    pattern.ip = session.pods.ip(pod)
    report.run(f"pod {pod.name} ({pattern.ip}): gitpoll --one-time to completion, then httpd")

    def init_ran_first() -> str:
        init = session.podman.json("container", "inspect", pod.container("gitpoll"))[0]["State"]
        httpd = session.podman.json("container", "inspect", pod.container("httpd"))[0]["State"]
        if init["Running"] or init["ExitCode"] != 0:
            raise CheckFailed(f"gitpoll: {init['Status']}, exit code {init['ExitCode']}")
        if not httpd["Running"]:
            raise CheckFailed(f"httpd: {httpd['Status']}")
        ended, began = timestamp(init["FinishedAt"]), timestamp(httpd["StartedAt"])
        if ended > began:
            raise CheckFailed(f"httpd started {ended - began:.2f}s before gitpoll ended")
        return f"gitpoll exited 0; httpd started {began - ended:.2f}s after"

    report.check("gitpoll ran to completion (exit 0) before httpd started", init_ran_first)
    report.check(
        "the page httpd serves equals the repository's content",
        lambda: wait_for(lambda: served(pattern.page_url, files), 60, "the commit served"),
    )
    pattern.common_checks(period_checks=False)
    return report
