"""The workshop's manifests as data: files, kustomize renders, pods, containers."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

import gitpoll
import httpd_adapter

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"

Doc = dict[str, Any]

# Kustomizations that are not deployed on their own, and why.
NOT_DEPLOYABLE = {
    "ambassador/base": "its overlays add the ambassador's ConfigMap",
    "adapter/prometheus-operator": "needs prometheus-operator's CRDs",
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")

# Our images, and the package each one carries.
OUR_IMAGES = {
    "sidecar-patterns/gitpoll": "gitpoll",
    "sidecar-patterns/httpd-adapter": "httpd-adapter",
    "sidecar-patterns/pg-ambassador": "pg-ambassador",
}
DOCKERFILES = {
    "sidecar-patterns/gitpoll": REPO / "sidecar-gitpoll" / "Dockerfile",
    "sidecar-patterns/httpd-adapter": REPO / "adapter-metrics" / "Dockerfile",
    "sidecar-patterns/pg-ambassador": REPO / "ambassador-db" / "Dockerfile",
}


def project_version() -> str:
    """The one version every package and image carries."""
    versions = {gitpoll.__version__, httpd_adapter.__version__, version("pg-ambassador")}
    assert len(versions) == 1, f"the packages disagree on the version: {versions}"
    return versions.pop()


def kustomization_dirs() -> list[str]:
    """Every folder under k8s/ with a kustomization, relative to k8s/."""
    return sorted(str(path.parent.relative_to(K8S)) for path in K8S.rglob("kustomization.yaml"))


def deployable_dirs() -> list[str]:
    return [name for name in kustomization_dirs() if name not in NOT_DEPLOYABLE]


def kustomization(directory: str) -> Doc:
    document: Doc = yaml.safe_load((K8S / directory / "kustomization.yaml").read_text())
    return document


def resource_files() -> list[Path]:
    """Every manifest file a kustomization lists as a resource."""
    files = []
    for directory in kustomization_dirs():
        for entry in kustomization(directory).get("resources", []):
            path = (K8S / directory / entry).resolve()
            if path.is_file():
                files.append(path)
    return sorted(set(files))


def generator_inputs() -> list[Path]:
    """Files that generators turn into ConfigMaps and Secrets: data, not manifests."""
    files = []
    for directory in kustomization_dirs():
        document = kustomization(directory)
        for generator in document.get("configMapGenerator", []) + document.get(
            "secretGenerator", []
        ):
            for entry in generator.get("files", []):
                files.append((K8S / directory / entry.split("=")[-1]).resolve())
    return sorted(set(files))


def load_file(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@functools.cache
def _render_text(directory: str) -> str:
    if shutil.which("kubectl") is None:
        raise AssertionError(
            "kubectl (with its built-in kustomize) renders the manifests: install it, "
            "see https://kubernetes.io/docs/tasks/tools/"
        )
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S / directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, f"kubectl kustomize k8s/{directory}:\n{result.stderr}"
    return result.stdout


def render(directory: str) -> list[Doc]:
    """`kubectl kustomize k8s/<directory>`, a fresh copy each call."""
    return [doc for doc in yaml.safe_load_all(_render_text(directory)) if doc]


def find(docs: list[Doc], kind: str, name: str) -> Doc | None:
    return next(
        (d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name),
        None,
    )


@dataclass(frozen=True)
class Container:
    """One container of a workload, with what the test needs around it."""

    where: str
    workload: Doc
    spec: Doc
    init: bool

    @property
    def pod(self) -> Doc:
        pod: Doc = self.workload["spec"]["template"]["spec"]
        return pod

    @property
    def native_sidecar(self) -> bool:
        return self.init and self.spec.get("restartPolicy") == "Always"

    @property
    def long_running(self) -> bool:
        return not self.init or self.native_sidecar

    @property
    def image_name(self) -> str:
        return str(self.spec["image"]).rsplit(":", 1)[0]

    @property
    def image_tag(self) -> str | None:
        _, sep, tag = str(self.spec["image"]).rpartition(":")
        return tag if sep and "/" not in tag else None

    @property
    def ours(self) -> bool:
        return self.image_name in OUR_IMAGES

    def __str__(self) -> str:
        return self.where


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    yield from (doc for doc in docs if doc["kind"] in WORKLOAD_KINDS)


def containers(directory: str, docs: list[Doc] | None = None) -> Iterator[Container]:
    for workload in workloads(docs if docs is not None else render(directory)):
        pod = workload["spec"]["template"]["spec"]
        for init, key in ((True, "initContainers"), (False, "containers")):
            for spec in pod.get(key, []):
                where = f"{directory}: {workload['kind']} {workload['metadata']['name']}"
                yield Container(f"{where}, container {spec['name']}", workload, spec, init)


def all_containers() -> list[Container]:
    return [c for directory in deployable_dirs() for c in containers(directory)]
