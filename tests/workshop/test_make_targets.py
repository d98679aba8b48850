"""The workshop's make targets, without a cluster: those that need one refuse
cleanly, naming what is missing, and change nothing; the others print the
commands they would run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from lab.kube import Kubectl
from lab.patterns import DEFAULT_GIT_REPO, PATTERNS

from .manifests import REPO, project_version

PATTERN_NAMES = sorted(PATTERNS)
CLUSTER_TARGETS = [f"{a}-{p}" for a in ("deploy", "verify", "undeploy") for p in PATTERN_NAMES]


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def no_context(tmp_path: Path) -> dict[str, str]:
    """A kubeconfig with no cluster in it."""
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    return {"KUBECONFIG": str(config)}


def kubeconfig(path: Path, server: str) -> dict[str, str]:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "workshop", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "workshop",
            }
        )
    )
    return {"KUBECONFIG": str(path)}


def test_help_lists_the_workshop_targets() -> None:
    result = make("help")
    assert result.returncode == 0
    for target in ("demo", "test-workshop", "images", "kind-up", "kind-down"):
        assert re.search(rf"^make {target}\b", result.stdout, re.M), target
    for action in ("deploy", "verify", "undeploy"):
        assert f"make {action}-P" in result.stdout
    listed = re.search(r"P is one of: (.*)", result.stdout)
    assert listed is not None and sorted(listed[1].split()) == PATTERN_NAMES


@pytest.mark.parametrize("target", CLUSTER_TARGETS)
def test_cluster_targets_refuse_without_kubectl(target: str) -> None:
    result = make(target, env={"KUBECTL": "/nonexistent/kubectl"})
    assert result.returncode != 0
    assert f"{target}: cannot run: kubectl is not installed" in result.stderr
    assert "/nonexistent/kubectl" in result.stderr


@pytest.mark.parametrize("target", ["deploy-sidecar", "verify-prometheus", "undeploy-ambassador"])
def test_cluster_targets_refuse_without_a_context(target: str, no_context: dict[str, str]) -> None:
    result = make(target, env=no_context)
    assert result.returncode != 0
    assert "kubectl has no current context: run `make kind-up`" in result.stderr


def test_cluster_targets_refuse_when_the_cluster_does_not_answer(tmp_path: Path) -> None:
    from support.net import free_port

    env = kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{free_port()}")
    result = make("deploy-adapter", env=env)
    assert result.returncode != 0
    assert "the cluster of kubectl context 'workshop' is not reachable" in result.stderr


class _VersionHandler(BaseHTTPRequestHandler):
    minor = "28"
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(f"{self.command} {self.path}")
        body = json.dumps({"major": "1", "minor": self.minor, "gitVersion": "v1.28.0"}).encode()
        self.send_response(200 if self.path.startswith("/version") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def old_api_server() -> Iterator[str]:
    """A real HTTP server answering /version as a Kubernetes 1.28 API server."""
    server = HTTPServer(("127.0.0.1", 0), _VersionHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_cluster_targets_refuse_a_cluster_without_native_sidecars(
    old_api_server: str, tmp_path: Path
) -> None:
    _VersionHandler.requests.clear()
    result = make("deploy-sidecar", env=kubeconfig(tmp_path / "kubeconfig", old_api_server))
    assert result.returncode != 0
    assert "runs Kubernetes 1.28; the native sidecars need 1.29 or newer" in result.stderr
    # Refused after asking the version, before applying anything.
    assert _VersionHandler.requests and all(
        r.startswith("GET /version") for r in _VersionHandler.requests
    )


@pytest.mark.parametrize("target", ["kind-up", "kind-down"])
def test_kind_targets_refuse_without_kind(target: str) -> None:
    result = make(target, env={"KIND": "/nonexistent/kind"})
    assert result.returncode != 0
    assert f"{target}: cannot run: kind is not installed" in result.stderr


def test_images_refuses_without_a_container_engine() -> None:
    result = make("images", env={"CONTAINER_ENGINE": "/nonexistent/podman"})
    assert result.returncode != 0
    assert "the container engine '/nonexistent/podman' is not installed" in result.stderr


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_images_builds_the_three_dockerfiles_from_the_root(engine: str) -> None:
    result = make("-n", "images", f"CONTAINER_ENGINE={engine}")
    assert result.returncode == 0, result.stderr
    builds = re.findall(rf"{engine} build (.*?) \.(?: &&|$)", result.stdout)
    assert builds == [
        f"--file {folder}/Dockerfile --build-arg BASE_IMAGE=python:3.12-slim "
        f"--tag docker.io/sidecar-patterns/{image}:{project_version()}"
        for image, folder in (
            ("gitpoll", "sidecar-gitpoll"),
            ("httpd-adapter", "adapter-metrics"),
            ("pg-ambassador", "ambassador-db"),
        )
    ]


def test_kind_up_loads_the_images_it_built() -> None:
    result = make("-n", "kind-up", "CONTAINER_ENGINE=podman")
    assert result.returncode == 0, result.stderr
    saved = re.search(r"podman save --output \$archive (.*?) &&", result.stdout)
    assert saved is not None
    assert saved[1].split() == [
        f"docker.io/sidecar-patterns/{name}:{project_version()}"
        for name in ("gitpoll", "httpd-adapter", "pg-ambassador")
    ]
    assert "kind load image-archive --name sidecar-patterns" in result.stdout
    assert "--image kindest/node:v1.33" in result.stdout


def test_make_passes_the_repository_and_the_environment_on() -> None:
    result = make("-n", "deploy-sidecar", "GIT_REPO=https://git.example.test/site.git")
    assert "--git-repo 'https://git.example.test/site.git'" in result.stdout
    result = make("-n", "deploy-ambassador", "AMBASSADOR_ENV=prod")
    assert "deploy ambassador --ambassador-env prod" in result.stdout


def test_the_makefile_version_is_the_projects() -> None:
    result = make("-n", "--print-data-base", "help")
    assert re.search(rf"^VERSION := {re.escape(project_version())}$", result.stdout, re.M)


def test_git_repo_replaces_the_default_repository_in_the_rendered_manifests() -> None:
    from lab.cluster import render

    kubectl = Kubectl()
    for name in ("init-container", "sidecar", "sidecar-classic"):
        text = render(kubectl, PATTERNS[name], "dev", "https://git.example.test/site.git")
        assert DEFAULT_GIT_REPO not in text
        assert "value: https://git.example.test/site.git" in text
    adapter = render(kubectl, PATTERNS["adapter"], "dev", None)
    assert "httpd-adapter" in adapter
