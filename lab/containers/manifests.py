"""The manifests of k8s/, rendered by kustomize, adapted to what `podman kube
play` (Debian's podman 4.3) runs.

Each adaptation stands in for a piece of Kubernetes that podman does not
have, or has differently, and keeps the manifest's meaning; each returns the
note the report prints, so the output says what was changed and why. The
checks read what to expect (users, probes, ports, read-only root file
systems) from the render before adaptation: the manifests as users apply
them.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..patterns import DEFAULT_GIT_REPO, K8S

Doc = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Pod")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
INIT_CONTAINER_TYPE = "io.podman.annotations.init.container.type"


class ManifestError(Exception):
    """The manifests hold something this check cannot run; the message says what."""


def kustomize(directory: str, kubectl: str = "kubectl") -> list[Doc]:
    """`kubectl kustomize k8s/<directory>`, as `make deploy-*` applies it."""
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise ManifestError(f"kubectl kustomize k8s/{directory}: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def dump(docs: list[Doc]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = (
        workload["spec"] if workload["kind"] == "Pod" else workload["spec"]["template"]["spec"]
    )
    return spec


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    yield from (doc for doc in docs if doc["kind"] in WORKLOAD_KINDS)


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise ManifestError(f"no {kind} {name} in the render")


def container(workload: Doc, name: str) -> Doc:
    """The container `name` of a workload, init containers included."""
    for candidate in containers(pod_spec(workload)):
        if candidate["name"] == name:
            return candidate
    raise ManifestError(f"no container {name} in {workload['metadata']['name']}")


def containers(spec: Doc) -> Iterator[Doc]:
    """Every container of a pod spec, init containers first."""
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def is_native_sidecar(container: Doc) -> bool:
    return container.get("restartPolicy") == "Always"


@dataclass(frozen=True, slots=True)
class HostDirectory:
    """A directory as the kubelet makes one for a volume: owner root, group
    the pod's fsGroup (if any), and its files."""

    mode: int
    group: int | None
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    """name -> (content, mode)"""


@dataclass
class Adapted:
    """The docs `podman kube play` gets, and what the check must do around them."""

    docs: list[Doc]
    notes: list[str] = field(default_factory=list)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    """Secrets the pods read through secretKeyRef: name -> key -> value (base64)."""
    directories: dict[Path, HostDirectory] = field(default_factory=dict)
    """Directories standing in for emptyDir and secret volumes, made before playing."""

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


# -- the adaptations -----------------------------------------------------------


def point_images(adapted: Adapted, images: Mapping[str, str]) -> None:
    """Every image to the local build or stand-in; no pull can happen."""
    for workload in workloads(adapted.docs):
        for container in containers(pod_spec(workload)):
            image = container["image"]
            if image not in images:
                raise ManifestError(f"{image} is neither built here nor stood in for")
            container["image"] = images[image]
            container["imagePullPolicy"] = "Never"


def replace_git_repo(adapted: Adapted, url: str) -> None:
    """The sidecar's repository: one the pods can reach (as make deploy-* GIT_REPO=)."""
    for workload in workloads(adapted.docs):
        for container in containers(pod_spec(workload)):
            for variable in container.get("env", []):
                if variable.get("value") == DEFAULT_GIT_REPO:
                    variable["value"] = url
                    adapted.note(f"GIT_REPO={url}, a git daemon pod serving this run's repository")


def statefulsets_to_pods(adapted: Adapted) -> None:
    """podman 4.3 plays no StatefulSet: one Pod per replica, named and with a
    volume per claim template as the StatefulSet controller makes them."""
    docs: list[Doc] = []
    for doc in adapted.docs:
        if doc["kind"] != "StatefulSet":
            docs.append(doc)
            continue
        name = doc["metadata"]["name"]
        replicas = int(doc["spec"].get("replicas", 1))
        for ordinal in range(replicas):
            pod_name = f"{name}-{ordinal}"
            template = copy.deepcopy(doc["spec"]["template"])
            spec = template["spec"]
            spec["hostname"] = pod_name
            spec["subdomain"] = doc["spec"]["serviceName"]
            for claim in doc["spec"].get("volumeClaimTemplates", []):
                claim_name = f"{claim['metadata']['name']}-{pod_name}"
                docs.append(
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim_name},
                        "spec": copy.deepcopy(claim["spec"]),
                    }
                )
                spec.setdefault("volumes", []).append(
                    {
                        "name": claim["metadata"]["name"],
                        "persistentVolumeClaim": {"claimName": claim_name},
                    }
                )
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        **template.get("metadata", {}),
                        "name": pod_name,
                        "namespace": doc["metadata"].get("namespace"),
                    },
                    "spec": spec,
                }
            )
        adapted.note(
            f"StatefulSet {name}: podman 4.3 has none; its {replicas} pods played as Pods "
            f"{name}-0..{replicas - 1}, each with its own volume per claim template"
        )
    adapted.docs = docs


_DEPENDENT = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand_dependent_variables(adapted: Adapted) -> None:
    """`$(VAR)` in command and args, which the kubelet expands from the
    container's environment and podman 4.3 passes on as it is."""
    for workload in workloads(adapted.docs):
        pod_name = workload["metadata"]["name"]
        for container in containers(pod_spec(workload)):
            values: dict[str, str] = {}
            for variable in container.get("env", []):
                if "value" in variable:
                    values[variable["name"]] = str(variable["value"])
                elif variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == (
                    "metadata.name"
                ):
                    if workload["kind"] != "Pod":
                        continue  # a generated name, unknown here
                    values[variable["name"]] = pod_name

            def expand(match: re.Match[str], values: dict[str, str] = values) -> str:
                if match[0] == "$$":
                    return "$"
                return values.get(match[1], match[0])

            for key in ("command", "args"):
                if key in container:
                    expanded = [_DEPENDENT.sub(expand, str(arg)) for arg in container[key]]
                    if expanded != container[key]:
                        container[key] = expanded
                        adapted.note(
                            "$(VAR) in command and args expanded from the container's "
                            "environment, as the kubelet does (podman 4.3 does not)"
                        )


def native_sidecars_first(adapted: Adapted) -> None:
    """podman 4.3 refuses probes on init containers and runs every init
    container to completion before the others: a native sidecar (restartPolicy:
    Always) becomes the first plain container; the check starts it alone and
    the others once its startup probe passes, as the kubelet does."""
    for workload in workloads(adapted.docs):
        spec = pod_spec(workload)
        sidecars = [c for c in spec.get("initContainers", []) if is_native_sidecar(c)]
        if not sidecars:
            continue
        spec["initContainers"] = [c for c in spec["initContainers"] if not is_native_sidecar(c)]
        if not spec["initContainers"]:
            del spec["initContainers"]
        for sidecar in sidecars:
            del sidecar["restartPolicy"]
        spec["containers"] = [*sidecars, *spec["containers"]]
        adapted.note(
            "native sidecar "
            + ", ".join(c["name"] for c in sidecars)
            + ": podman 4.3 has none; a plain container started first, the others "
            "once its startupProbe (run by this check) passes"
        )


def keep_init_containers(adapted: Adapted) -> None:
    """podman 4.3 deletes an init container once it has run (its "once" type):
    of the "always" type, it stays, so the check can see how it ended."""
    for workload in workloads(adapted.docs):
        if pod_spec(workload).get("initContainers"):
            # podman 4.3 reads it from the workload's own metadata (a
            # Deployment's, not its pod template's).
            annotations = workload["metadata"].setdefault("annotations", {})
            annotations[INIT_CONTAINER_TYPE] = "always"
            adapted.note(
                "init containers kept once they have run (podman's annotation "
                f"{INIT_CONTAINER_TYPE}: always), for the check to look at"
            )


def strip_probes(adapted: Adapted) -> None:
    """podman 4.3 turns probes into healthchecks that run curl in the container
    (these images have none) on systemd timers: the check runs them itself."""
    for workload in workloads(adapted.docs):
        for container in containers(pod_spec(workload)):
            for probe in PROBES:
                if container.pop(probe, None) is not None:
                    adapted.note(
                        "probes run by this check against the pod, as the kubelet would; "
                        "podman 4.3 would run them with curl inside the container"
                    )


def unpublished_ports(adapted: Adapted) -> None:
    """podman 4.3 publishes every containerPort on the host's port of the same
    number (every pod with an httpd on 8080 would want the host's 8080): the
    ports are left out; pods are reached at their own address, as in a cluster."""
    for workload in workloads(adapted.docs):
        for container in containers(pod_spec(workload)):
            if container.pop("ports", None):
                adapted.note(
                    "containerPorts left out: podman 4.3 would publish each on the host; "
                    "the pods are reached at their own address, as in a cluster"
                )


def fs_group_as_supplemental_group(adapted: Adapted) -> None:
    """The kubelet adds a pod's fsGroup to every container's groups; podman 4.3
    ignores fsGroup."""
    for workload in workloads(adapted.docs):
        context = pod_spec(workload).get("securityContext", {})
        if "fsGroup" in context:
            groups = context.setdefault("supplementalGroups", [])
            if context["fsGroup"] not in groups:
                groups.append(context["fsGroup"])
            adapted.note("fsGroup added to every container's groups, as the kubelet does")


def secrets_outside_the_yaml(adapted: Adapted, volume_root: Path) -> None:
    """podman 4.3 plays no Secret: those referenced by secretKeyRef become
    podman secrets (made by the check), and a secret volume, which crashes
    podman 4.3, becomes a directory holding the files the kubelet would write
    (mode defaultMode; with an fsGroup, group fsGroup and group-readable)."""
    secrets = {doc["metadata"]["name"]: doc for doc in adapted.docs if doc["kind"] == "Secret"}
    adapted.docs = [doc for doc in adapted.docs if doc["kind"] != "Secret"]
    for name, doc in secrets.items():
        data = dict(doc.get("data", {}))
        for key, value in doc.get("stringData", {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        adapted.secrets[name] = data
    for workload in workloads(adapted.docs):
        spec = pod_spec(workload)
        fs_group = spec.get("securityContext", {}).get("fsGroup")
        for volume in spec.get("volumes", []):
            if "secret" not in volume:
                continue
            source = volume.pop("secret")
            name = source["secretName"]
            if name not in adapted.secrets:
                raise ManifestError(f"secret volume {volume['name']}: no Secret {name}")
            mode = int(source.get("defaultMode", 0o644))
            if fs_group is not None:
                mode |= 0o440
            directory = volume_root / f"{workload['metadata']['name']}-{volume['name']}"
            adapted.directories[directory] = HostDirectory(
                0o755 if fs_group is None else 0o2750,
                fs_group,
                {k: (base64.b64decode(v), mode) for k, v in adapted.secrets[name].items()},
            )
            volume["hostPath"] = {"path": str(directory), "type": "Directory"}
            adapted.note(
                "secret volume as the kubelet writes it (defaultMode, group fsGroup); "
                "podman 4.3 crashes on secret volumes"
            )


def empty_dirs_as_the_kubelet_makes_them(adapted: Adapted, volume_root: Path) -> None:
    """An emptyDir is a fresh directory of the pod, mode 0777 (group fsGroup
    and setgid with one). podman 4.3 makes it a named volume (shared by
    every pod naming a volume alike, kept after the pod), owned as it finds
    the mount point, on the host when the path crosses a symlink such as
    /var/run: the check makes the directories itself."""
    for workload in workloads(adapted.docs):
        spec = pod_spec(workload)
        fs_group = spec.get("securityContext", {}).get("fsGroup")
        for volume in spec.get("volumes", []):
            if "emptyDir" not in volume:
                continue
            if volume.pop("emptyDir").get("medium"):
                raise ManifestError(f"emptyDir {volume['name']}: a medium this check cannot make")
            directory = volume_root / f"{workload['metadata']['name']}-{volume['name']}"
            adapted.directories[directory] = HostDirectory(
                0o777 if fs_group is None else 0o2777, fs_group
            )
            volume["hostPath"] = {"path": str(directory), "type": "Directory"}
            adapted.note(
                "emptyDirs as the kubelet makes them (a fresh directory per pod, mode 0777, "
                "group fsGroup): podman 4.3 shares one among pods and takes a host path's owner"
            )


def drop_services(adapted: Adapted) -> None:
    """podman has no Services; the names pods use are given as hostAliases."""
    if any(doc["kind"] == "Service" for doc in adapted.docs):
        adapted.docs = [doc for doc in adapted.docs if doc["kind"] != "Service"]
        adapted.note("Services left out: podman has none (pods are reached by their address)")


def add_host_aliases(adapted: Adapted, addresses: Mapping[str, str], workload: str) -> None:
    """Cluster DNS names (a Service, a StatefulSet pod's name) as hostAliases
    of `workload`: podman has no cluster DNS."""
    for doc in workloads(adapted.docs):
        if doc["metadata"]["name"] != workload:
            continue
        spec = pod_spec(doc)
        aliases = spec.setdefault("hostAliases", [])
        for hostname, ip in addresses.items():
            aliases.append({"ip": ip, "hostnames": [hostname]})
    adapted.note(
        "cluster DNS names given as hostAliases: " + ", ".join(f"{h}" for h in sorted(addresses))
    )


def adapt(
    docs: list[Doc],
    images: Mapping[str, str],
    volume_root: Path,
    git_repo: str | None = None,
) -> Adapted:
    """The render, for podman 4.3 (the input is left as it is)."""
    adapted = Adapted(copy.deepcopy(docs))
    point_images(adapted, images)
    if git_repo is not None:
        replace_git_repo(adapted, git_repo)
    statefulsets_to_pods(adapted)
    expand_dependent_variables(adapted)
    native_sidecars_first(adapted)
    keep_init_containers(adapted)
    strip_probes(adapted)
    unpublished_ports(adapted)
    fs_group_as_supplemental_group(adapted)
    secrets_outside_the_yaml(adapted, volume_root)
    empty_dirs_as_the_kubelet_makes_them(adapted, volume_root)
    drop_services(adapted)
    return adapted


def make_directories(adapted: Adapted) -> None:
    """The directories standing in for volumes (this runs as root)."""
    for directory, spec in adapted.directories.items():
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, 0, spec.group or 0)
        directory.chmod(spec.mode)
        for name, (content, mode) in spec.files.items():
            path = directory / name
            path.write_bytes(content)
            os.chown(path, 0, spec.group or 0)
            path.chmod(mode)
