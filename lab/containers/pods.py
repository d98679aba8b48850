"""Pods played with `podman kube play`, and what the kubelet would do
around them that podman 4.3 does not: start a native sidecar first and the
others once its startup probe passes, and run the probes.

`Pods` records every pod, volume, secret and network it creates, by name,
and `remove_all` removes exactly those (`podman kube down` for each file
played, then what is left of them by name).
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..verify import CheckFailed
from .engine import Podman, PodmanError
from .manifests import Doc, dump

NETWORK = "sidecar-patterns-test"
KUBE_TIMEOUT = 300.0


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """(status, body) of a GET to a pod, whatever the status; OSError when
    nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http://<pod>
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `condition` until it returns something truthy; CheckFailed after
    `timeout` seconds, saying what it waited for and the last error seen."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = condition()
            if result:
                return result
            last = result
        except (OSError, CheckFailed, ValueError, KeyError) as error:
            last = error
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {timeout:g}s (last: {last})")
        time.sleep(interval)


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    containers: dict[str, str]
    """The manifest's container name -> podman's container name."""

    def container(self, name: str) -> str:
        return self.containers[name]


@dataclass
class Pods:
    """What the run made, by name, written to <state>/created.json as it
    goes (so `--remove STATE` can remove a kept or interrupted run's)."""

    podman: Podman
    state: Path
    played: list[str] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    network: str | None = None

    @property
    def record(self) -> Path:
        return self.state / "created.json"

    def _save(self) -> None:
        fields = ("played", "pods", "volumes", "secrets", "network")
        self.record.write_text(json.dumps({name: getattr(self, name) for name in fields}))

    @classmethod
    def recorded(cls, podman: Podman, state: Path) -> Pods:
        pods = cls(podman, state)
        if pods.record.is_file():
            for name, value in json.loads(pods.record.read_text()).items():
                setattr(pods, name, value)
        return pods

    def create_network(self) -> None:
        self.network = NETWORK
        self._save()
        self.podman.run("network", "create", NETWORK)

    def create_secret(self, name: str, data: dict[str, str]) -> None:
        """A podman secret in the form podman 4.3's secretKeyRef reads: a JSON
        object of base64 values."""
        path = self.state / f"secret-{name}.json"
        path.write_text(json.dumps(data))
        path.chmod(0o600)
        self.secrets.append(name)
        self._save()
        try:
            self.podman.run("secret", "create", name, str(path))
        finally:
            path.unlink()

    def _volumes(self) -> set[str]:
        return set(self.podman.output("volume", "ls", "--quiet").split())

    def play(self, name: str, docs: list[Doc], start: bool = True) -> list[Pod]:
        """`podman kube play --replace` of `docs` (written to <state>/<name>.yaml,
        kept for `podman kube down`). Returns the pods it made."""
        path = self.state / f"{name}.yaml"
        path.write_text(dump(docs))
        if str(path) not in self.played:
            self.played.append(str(path))
        self.pods.extend(n for n in pod_names(docs) if n not in self.pods)
        self._save()
        before = self._volumes()
        try:
            output = self.podman.output(
                "kube",
                "play",
                "--replace",
                f"--network={self.network}",
                f"--start={'true' if start else 'false'}",
                str(path),
                timeout=KUBE_TIMEOUT,
            )
        finally:
            self.volumes.extend(sorted(self._volumes() - before - set(self.volumes)))
            self._save()
        return [self.inspect(pod_id) for pod_id in _section(output, "Pod")]

    def inspect(self, pod: str) -> Pod:
        info = self.podman.json("pod", "inspect", pod)
        info = info[0] if isinstance(info, list) else info
        name = str(info["Name"])
        containers = {
            str(c["Name"]).removeprefix(f"{name}-"): str(c["Name"])
            for c in info["Containers"]
            if c["Id"] != info.get("InfraContainerID")
        }
        return Pod(name, containers)

    def ip(self, pod: Pod) -> str:
        info = self.podman.json("pod", "inspect", pod.name)
        info = info[0] if isinstance(info, list) else info
        infra = self.podman.json("container", "inspect", info["InfraContainerID"])[0]
        networks = infra["NetworkSettings"]["Networks"]
        address = str(networks[self.network]["IPAddress"]) if self.network in networks else ""
        if not address:
            raise CheckFailed(f"pod {pod.name} has no address on {self.network}")
        return address

    def remove_all(self) -> list[str]:
        """Remove what this run made, by name; returns what could not be removed."""
        problems: list[str] = []

        def attempt(*args: str) -> None:
            try:
                self.podman.run(*args, timeout=KUBE_TIMEOUT)
            except PodmanError as error:
                problems.append(str(error).splitlines()[0])

        # What `kube down` leaves (a file played only in part) goes by name next.
        for path in reversed(self.played):
            if Path(path).is_file():
                self.podman.run("kube", "down", path, check=False, timeout=KUBE_TIMEOUT)
        remaining = [p for p in self.pods if self.podman.exists("pod", p)]
        if remaining:
            attempt("pod", "rm", "--force", "--time=5", *remaining)
        volumes = [v for v in self.volumes if self.podman.exists("volume", v)]
        if volumes:
            attempt("volume", "rm", "--force", *volumes)
        if self.secrets:
            attempt("secret", "rm", *self.secrets)
        if self.network is not None and self.podman.exists("network", self.network):
            attempt("network", "rm", self.network)
        return problems


def pod_names(docs: list[Doc]) -> list[str]:
    """The pods `podman kube play` (4.3) makes of `docs`: a Pod by its name,
    a Deployment's as <name>-pod-<n>."""
    names = []
    for doc in docs:
        if doc["kind"] == "Pod":
            names.append(str(doc["metadata"]["name"]))
        elif doc["kind"] == "Deployment":
            replicas = int(doc["spec"].get("replicas", 1))
            names += [f"{doc['metadata']['name']}-pod-{n}" for n in range(replicas)]
    return names


def _section(output: str, title: str) -> list[str]:
    """The lines under `Title:` in podman kube play's output, up to a blank line."""
    lines = output.splitlines()
    found: list[str] = []
    inside = False
    for line in lines:
        if line.strip() == f"{title}:":
            inside = True
        elif inside and line.strip() and not line.strip().endswith(":"):
            found.append(line.strip())
        elif inside:
            inside = False
    return found


# -- containers: state, start, probes ------------------------------------------


def container_state(podman: Podman, container: str) -> dict[str, Any]:
    info = podman.json("container", "inspect", container)[0]
    state: dict[str, Any] = info["State"]
    return state


def exited(podman: Podman, container: str) -> str:
    """How a container ended: its exit code and last lines of output."""
    state = container_state(podman, container)
    logs = podman.run("logs", "--tail=8", container, check=False)
    lines = (logs.stdout + logs.stderr).strip()
    return f"exit code {state.get('ExitCode')}, its output ends with:\n{lines}"


def timestamp(stamp: str) -> float:
    """A time podman reports (RFC 3339, nanoseconds) as a Unix time."""
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", str(stamp).replace("Z", "+00:00"))
    return datetime.fromisoformat(stamp).timestamp()


def started_at(podman: Podman, container: str) -> float:
    """When the container last started, as a Unix time."""
    return timestamp(container_state(podman, container)["StartedAt"])


def resolve_port(container: Doc, port: int | str) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise CheckFailed(f"container {container['name']}: no port named {port!r}")


def probe_once(
    podman: Podman, ip: str, podman_name: str, container: Doc, probe: Doc
) -> tuple[bool, str]:
    """One attempt of a probe, as the kubelet makes it: (passed, what it saw)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    if "httpGet" in probe:
        action = probe["httpGet"]
        port = resolve_port(container, action["port"])
        url = f"http://{ip}:{port}{action.get('path', '/')}"
        try:
            status, _ = http_get(url, timeout=timeout)
        except OSError as error:
            return False, f"GET {url}: {error}"
        return 200 <= status < 400, f"GET :{port}{action.get('path', '/')} {status}"
    if "tcpSocket" in probe:
        port = resolve_port(container, probe["tcpSocket"]["port"])
        try:
            with socket.create_connection((ip, port), timeout=timeout):
                return True, f"TCP :{port} open"
        except OSError as error:
            return False, f"TCP :{port}: {error}"
    if "exec" in probe:
        command = [str(word) for word in probe["exec"]["command"]]
        result = podman.run("exec", podman_name, *command, check=False, timeout=max(timeout, 10.0))
        return result.returncode == 0, f"{' '.join(command)}: exit {result.returncode}"
    raise CheckFailed(f"container {container['name']}: a probe this check cannot run: {probe}")


def wait_for_startup_probe(
    podman: Podman, ip: str, podman_name: str, container: Doc, probe: Doc
) -> tuple[int, float, str]:
    """Run a startup probe as the kubelet does (initialDelaySeconds, then every
    periodSeconds, up to failureThreshold failures). Returns (attempts,
    seconds, last answer); CheckFailed when it never passes."""
    period = float(probe.get("periodSeconds", 10))
    threshold = int(probe.get("failureThreshold", 3))
    began = time.monotonic()
    time.sleep(float(probe.get("initialDelaySeconds", 0)))
    seen = ""
    for attempt in range(1, threshold + 1):
        tried = time.monotonic()
        passed, seen = probe_once(podman, ip, podman_name, container, probe)
        if passed:
            return attempt, time.monotonic() - began, seen
        if not container_state(podman, podman_name).get("Running"):
            raise CheckFailed(f"{container['name']} exited; {exited(podman, podman_name)}")
        time.sleep(max(0.0, period - (time.monotonic() - tried)))
    raise CheckFailed(
        f"the startup probe of {container['name']} failed {threshold} times (last: {seen})"
    )
