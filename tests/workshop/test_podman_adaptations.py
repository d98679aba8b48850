"""What `make test-containers` changes in the rendered manifests before
`podman kube play` (lab/containers/manifests.py), without podman: each
adaptation keeps what the manifest means, and nothing it plays can pull an
image or publish a port on the host."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from lab.containers.manifests import (
    INIT_CONTAINER_TYPE,
    Adapted,
    Doc,
    ManifestError,
    adapt,
    containers,
    expand_dependent_variables,
    find,
    kustomize,
    pod_spec,
    workloads,
)
from lab.containers.pods import pod_names
from lab.containers.standins import HTTPD, PYTHON, StandIn, host_mirrors

IMAGES = {
    "sidecar-patterns/gitpoll:0.1.0": "docker.io/sidecar-patterns/gitpoll:0.1.0",
    "sidecar-patterns/httpd-adapter:0.1.0": "docker.io/sidecar-patterns/httpd-adapter:0.1.0",
    "sidecar-patterns/pg-ambassador:0.1.0": "docker.io/sidecar-patterns/pg-ambassador:0.1.0",
    "httpd:2.4.65": "localhost/stand-in-httpd:test",
    "postgres:17.7": "localhost/stand-in-postgres:test",
}
DIRECTORIES = ["init-container", "sidecar", "sidecar/classic", "adapter", "ambassador/overlays/dev"]


def adapted(directory: str, tmp_path: Path, git_repo: str | None = None) -> Adapted:
    return adapt(kustomize(directory), IMAGES, tmp_path, git_repo)


def all_containers(docs: list[Doc]) -> list[Doc]:
    return [c for w in workloads(docs) for c in containers(pod_spec(w))]


@pytest.mark.parametrize("directory", DIRECTORIES)
def test_nothing_played_can_pull_an_image_or_publish_a_port(directory: str, tmp_path: Path) -> None:
    docs = adapted(directory, tmp_path).docs
    for container in all_containers(docs):
        assert container["image"] in IMAGES.values()
        assert container["imagePullPolicy"] == "Never"
        assert "ports" not in container
        assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(container)
    assert not [d for d in docs if d["kind"] in ("Service", "Secret", "StatefulSet")]


def test_an_image_neither_built_nor_stood_in_for_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"httpd:2\.4\.65"):
        adapt(kustomize("adapter"), {}, tmp_path)


def test_the_native_sidecar_becomes_the_first_plain_container(tmp_path: Path) -> None:
    original = kustomize("sidecar")
    result = adapt(original, IMAGES, tmp_path, git_repo="git://git-server/site.git")
    spec = pod_spec(find(result.docs, "Deployment", "sidecar"))
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["gitpoll", "httpd"]
    assert "restartPolicy" not in spec["containers"][0]
    [repo] = [e["value"] for e in spec["containers"][0]["env"] if e["name"] == "GIT_REPO"]
    assert repo == "git://git-server/site.git"
    # The render the checks read expectations from is left as it was.
    original_spec = pod_spec(find(original, "Deployment", "sidecar"))
    assert original_spec["initContainers"][0]["restartPolicy"] == "Always"
    assert "startupProbe" in original_spec["initContainers"][0]


def test_an_init_container_that_runs_once_stays_an_init_container(tmp_path: Path) -> None:
    deployment = find(adapted("init-container", tmp_path).docs, "Deployment", "init-container")
    assert [c["name"] for c in pod_spec(deployment)["initContainers"]] == ["gitpoll"]
    assert deployment["metadata"]["annotations"][INIT_CONTAINER_TYPE] == "always"


def test_empty_dirs_are_fresh_directories_as_the_kubelet_makes_them(tmp_path: Path) -> None:
    result = adapted("sidecar", tmp_path)
    volumes = {
        v["name"]: v for v in pod_spec(find(result.docs, "Deployment", "sidecar"))["volumes"]
    }
    www = Path(volumes["www"]["hostPath"]["path"])
    assert www.parent == tmp_path
    # fsGroup 10001: group-owned, setgid, writable by all, like the kubelet's.
    assert (result.directories[www].mode, result.directories[www].group) == (0o2777, 10001)
    spec = pod_spec(find(result.docs, "Deployment", "sidecar"))
    assert 10001 in spec["securityContext"]["supplementalGroups"]


def test_the_statefulset_becomes_its_pods_each_with_its_claim(tmp_path: Path) -> None:
    docs = adapted("ambassador/overlays/dev", tmp_path).docs
    for ordinal in (0, 1):
        pod = find(docs, "Pod", f"postgres-{ordinal}")
        [postgres] = pod["spec"]["containers"]
        # $(POD_NAME) expanded as the kubelet does: each server knows its name.
        assert postgres["args"] == ["-c", f"cluster_name=postgres-{ordinal}"]
        claims = [v for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
        assert claims == [
            {"name": "data", "persistentVolumeClaim": {"claimName": f"data-postgres-{ordinal}"}}
        ]
        find(docs, "PersistentVolumeClaim", f"data-postgres-{ordinal}")
    assert pod_names(docs) == ["visit-counter-pod-0", "postgres-0", "postgres-1"]


def test_secret_files_are_written_as_the_kubelet_writes_them(tmp_path: Path) -> None:
    result = adapted("ambassador/overlays/dev", tmp_path)
    spec = pod_spec(find(result.docs, "Deployment", "visit-counter"))
    [credentials] = [v for v in spec["volumes"] if v["name"] == "db-credentials"]
    directory = result.directories[Path(credentials["hostPath"]["path"])]
    # defaultMode 0400 with fsGroup 10002: group-readable by the pod's group.
    assert directory.group == 10002
    content, mode = directory.files["dev-password"]
    assert (content, mode) == (b"workshop-dev", 0o440)
    [secret] = result.secrets.values()
    assert base64.b64decode(secret["prod-password"]) == b"workshop-prod"


def test_dependent_variables_are_expanded_like_the_kubelet_does() -> None:
    pod: Doc = {
        "kind": "Pod",
        "metadata": {"name": "p-0"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "env": [
                        {"name": "A", "value": "a"},
                        {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "args": ["$(A)-$(ME)", "$$(A)", "$(UNDEFINED)"],
                }
            ]
        },
    }
    result = Adapted([pod])
    expand_dependent_variables(result)
    assert pod["spec"]["containers"][0]["args"] == ["a-p-0", "$(A)", "$(UNDEFINED)"]


def test_a_stand_in_is_cached_by_what_goes_into_it() -> None:
    assert PYTHON.key() == PYTHON.key()
    assert PYTHON.key() != HTTPD.key()
    more = StandIn(PYTHON.name, PYTHON.replaces, (*PYTHON.packages, "git"), config=PYTHON.config)
    assert more.key() != PYTHON.key()
    assert more.archive_name() != PYTHON.archive_name()


def test_the_hosts_debian_mirrors_come_from_its_apt_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# a comment\ndeb http://mirror.example/debian bookworm main\n"
    )
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security/\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    mirrors = host_mirrors(tmp_path)
    assert (mirrors.debian, mirrors.security) == (
        "http://mirror.example/debian",
        "http://security.example/debian-security",
    )
    assert host_mirrors(tmp_path / "none").debian == "http://deb.debian.org/debian"
