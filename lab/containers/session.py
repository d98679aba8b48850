"""What every pattern's run shares: podman, the pods played so far, the
images (ours built, the others stood in for), the state directory."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..verify import CheckFailed
from .engine import Podman
from .gitserver import GitServer
from .images import Built
from .manifests import Adapted, Doc, adapt, containers, make_directories, pod_spec, workloads
from .pods import Pod, Pods, container_state, exited, http_get, probe_once
from .report import Report
from .standins import BaseImage


@dataclass
class Session:
    podman: Podman
    pods: Pods
    state: Path
    built: dict[str, Built]
    """By the name the manifests use (sidecar-patterns/gitpoll:0.1.0)."""
    bases: dict[str, BaseImage]
    """Third-party images, stood in for or pulled, by name (httpd:2.4.65)."""
    base_image: str
    """The BASE_IMAGE the Dockerfiles were built on."""
    adaptations: int = 0
    git_server: GitServer | None = None
    """The git daemon pod, once a pattern needed it."""

    @property
    def images(self) -> dict[str, str]:
        refs = {name: built.ref for name, built in self.built.items()}
        refs.update({name: base.ref for name, base in self.bases.items()})
        return refs

    def ref(self, manifest_image: str) -> str:
        return self.images[manifest_image]

    def adapt(self, docs: list[Doc], git_repo: str | None = None) -> Adapted:
        """The docs for podman, with the directories standing in for their
        volumes made (new ones at each call: a new pod's emptyDirs are empty)."""
        self.adaptations += 1
        adapted = adapt(docs, self.images, self.state / f"volumes-{self.adaptations}", git_repo)
        make_directories(adapted)
        return adapted

    def report_images(self, report: Report, docs: list[Doc]) -> None:
        """One `built` line per image the pods of `docs` run."""
        names = dict.fromkeys(c["image"] for w in workloads(docs) for c in containers(pod_spec(w)))
        for name in names:
            if name in self.built:
                b = self.built[name]
                report.build(
                    f"{b.ref} from {b.image.folder}/Dockerfile, BASE_IMAGE={self.base_image} "
                    f"({b.size_mb:.0f} MB, {b.seconds:.0f}s)"
                )
            elif name in self.bases:
                report.build(f"{name}: {self.bases[name].ref}, {self.bases[name].origin}")


def metric_sum(text: str, name: str, labels: str = "") -> float:
    """The sum of every series of `name` whose labels contain `labels`."""
    total = 0.0
    found = False
    pattern = re.compile(rf"^{re.escape(name)}(?:{{([^}}]*)}})? ([0-9.eE+-]+|NaN)$", re.M)
    for match in pattern.finditer(text):
        if labels in (match[1] or ""):
            total += float(match[2])
            found = True
    if not found:
        raise CheckFailed(f"no {name}{{{labels}}} in the metrics")
    return total


def get_text(url: str, timeout: float = 5.0) -> str:
    status, body = http_get(url, timeout)
    if status != 200:
        raise CheckFailed(f"GET {url}: {status}")
    return body.decode(errors="replace")


def check_probes(session: Session, workload: Doc, pod: Pod, ip: str) -> str:
    """Every probe the manifest gives the pod's containers passes once."""
    passed = []
    for container in containers(pod_spec(workload)):
        if container.get("restartPolicy") != "Always" and container in pod_spec(workload).get(
            "initContainers", []
        ):
            continue
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind not in container:
                continue
            ok, seen = probe_once(
                session.podman, ip, pod.container(container["name"]), container, container[kind]
            )
            if not ok:
                raise CheckFailed(f"{container['name']} {kind}: {seen}")
            passed.append(f"{container['name']} {kind.removesuffix('Probe')}")
    if not passed:
        raise CheckFailed("the manifest gives these containers no probe")
    return ", ".join(passed)


@dataclass
class PageWatcher:
    """Requests a page over and over from a pod, recording every answer, from
    before the server starts until stopped."""

    url: str
    interval: float = 0.05
    answers: list[tuple[float, str, bytes]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = http_get(self.url, timeout=2.0)
                self.answers.append((time.time(), str(status), body))
            except OSError:
                self.answers.append((time.time(), "refused", b""))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def check_scrape_annotations(workload: Doc, ip: str) -> str:
    """The pod's prometheus.io/* annotations lead a scraper to metrics."""
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true":
        raise CheckFailed('the pod is not annotated prometheus.io/scrape: "true"')
    port = annotations.get("prometheus.io/port")
    path = annotations.get("prometheus.io/path", "/metrics")
    text = get_text(f"http://{ip}:{port}{path}")
    families = len(re.findall(r"^# TYPE ", text, re.MULTILINE))
    if not families:
        raise CheckFailed(f":{port}{path} answers, but no Prometheus metrics")
    return f":{port}{path}: {families} metric families"


def stops_cleanly(podman: Podman, workload: Doc, pod: Pod) -> str:
    """Stop the pod as a deletion does (each container's stop signal, then
    SIGKILL after the grace period): every long-running container exits 0."""
    grace = int(pod_spec(workload).get("terminationGracePeriodSeconds", 30))
    began = time.monotonic()
    podman.run("pod", "stop", f"--time={grace}", pod.name, timeout=grace + 60)
    took = time.monotonic() - began
    codes = []
    for container in containers(pod_spec(workload)):
        spec = pod_spec(workload)
        if container in spec.get("initContainers", []) and container.get("restartPolicy") != (
            "Always"
        ):
            continue
        name = pod.container(container["name"])
        code = container_state(podman, name).get("ExitCode")
        if code != 0:
            raise CheckFailed(f"{container['name']}: {exited(podman, name)}")
        codes.append(f"{container['name']} 0")
    return f"stopped in {took:.1f}s: " + ", ".join(codes)
