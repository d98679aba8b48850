"""What every workload of the workshop promises: probes, resources, a
locked-down securityContext, pinned images, and references that resolve."""

from __future__ import annotations

import re

import pytest

from .manifests import (
    K8S,
    Container,
    Doc,
    all_containers,
    deployable_dirs,
    find,
    project_version,
    render,
    workloads,
)

CONTAINERS = all_containers()


def _ids(container: Container) -> str:
    return container.where


@pytest.mark.parametrize("container", CONTAINERS, ids=_ids)
def test_requests_and_limits(container: Container) -> None:
    resources = container.spec.get("resources", {})
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{part}: {resources}"


@pytest.mark.parametrize("container", CONTAINERS, ids=_ids)
def test_probes(container: Container) -> None:
    if not container.long_running:
        assert not container.spec.keys() & {"livenessProbe", "readinessProbe", "startupProbe"}
        return
    assert "livenessProbe" in container.spec
    assert "readinessProbe" in container.spec
    if container.native_sidecar:
        # What makes the app wait for it: a sidecar counts as started only
        # once its startup probe passes.
        assert "startupProbe" in container.spec


@pytest.mark.parametrize("container", CONTAINERS, ids=_ids)
def test_probes_use_declared_ports(container: Container) -> None:
    ports = {p.get("name"): p["containerPort"] for p in container.spec.get("ports", [])}
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.spec.get(key)
        if probe is None or "exec" in probe:
            continue
        port = (probe.get("httpGet") or probe.get("tcpSocket"))["port"]
        assert port in ports or port in ports.values(), f"{key} on undeclared port {port}"


@pytest.mark.parametrize("container", CONTAINERS, ids=_ids)
def test_security_context(container: Container) -> None:
    pod_context = container.pod.get("securityContext", {})
    context = container.spec.get("securityContext", {})
    assert pod_context.get("runAsNonRoot") is True or context.get("runAsNonRoot") is True
    # A numeric user, so the kubelet can check runAsNonRoot even for images
    # whose USER is a name (prom/prometheus) or root (httpd, postgres).
    user = context.get("runAsUser", pod_context.get("runAsUser"))
    assert isinstance(user, int) and user > 0
    assert pod_context.get("seccompProfile") == {"type": "RuntimeDefault"}
    assert context.get("allowPrivilegeEscalation") is False
    assert context.get("capabilities", {}).get("drop") == ["ALL"]
    assert not context.get("capabilities", {}).get("add")
    assert context.get("readOnlyRootFilesystem") is True
    assert not context.get("privileged")


@pytest.mark.parametrize("container", CONTAINERS, ids=_ids)
def test_images_are_pinned(container: Container) -> None:
    tag = container.image_tag
    assert tag is not None and tag != "latest", container.spec["image"]
    if container.ours:
        assert tag == project_version()
        # Loaded into kind, never pulled.
        assert container.spec["imagePullPolicy"] == "IfNotPresent"
    else:
        # A release, not a moving major tag (PostgreSQL's releases are 17.7).
        assert re.fullmatch(r"v?\d+(\.\d+){1,2}", tag), f"pin a release: {tag}"


@pytest.mark.parametrize("container", CONTAINERS, ids=_ids)
def test_writable_paths_are_volumes(container: Container) -> None:
    """With a read-only root filesystem, /tmp must be a volume for programs
    that write there (git and ssh under HOME=/tmp, Python's tempfile)."""
    mounts = {m["mountPath"] for m in container.spec.get("volumeMounts", [])}
    if container.image_name == "sidecar-patterns/gitpoll":
        assert "/tmp" in mounts
    if container.spec["image"].startswith("httpd:"):
        assert "/var/run/httpd" in mounts


def _workloads() -> list[tuple[str, Doc]]:
    return [(d, w) for d in deployable_dirs() for w in workloads(render(d))]


@pytest.mark.parametrize(
    ("directory", "workload"),
    _workloads(),
    ids=[f"{d}: {w['metadata']['name']}" for d, w in _workloads()],
)
def test_shared_volumes_have_an_fs_group(directory: str, workload: Doc) -> None:
    """A volume one user writes and another reads needs the pod's fsGroup."""
    pod = workload["spec"]["template"]["spec"]
    writers: dict[str, set[int]] = {}
    readers: dict[str, set[int]] = {}
    default_user = pod.get("securityContext", {}).get("runAsUser")
    for container in pod.get("initContainers", []) + pod["containers"]:
        user = container.get("securityContext", {}).get("runAsUser", default_user)
        for mount in container.get("volumeMounts", []):
            target = readers if mount.get("readOnly") else writers
            target.setdefault(mount["name"], set()).add(user)
    for name, users in writers.items():
        if readers.get(name, set()) - users:
            assert "fsGroup" in pod.get("securityContext", {}), f"volume {name}"


@pytest.mark.parametrize(
    ("directory", "workload"),
    _workloads(),
    ids=[f"{d}: {w['metadata']['name']}" for d, w in _workloads()],
)
def test_service_account_token_only_where_used(directory: str, workload: Doc) -> None:
    pod = workload["spec"]["template"]["spec"]
    if "serviceAccountName" in pod:
        assert find(render(directory), "ServiceAccount", pod["serviceAccountName"])
    else:
        assert pod.get("automountServiceAccountToken") is False


@pytest.mark.parametrize(
    ("directory", "workload"),
    _workloads(),
    ids=[f"{d}: {w['metadata']['name']}" for d, w in _workloads()],
)
def test_prometheus_annotations_point_at_a_metrics_port(directory: str, workload: Doc) -> None:
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") != "true":
        return
    pod = workload["spec"]["template"]["spec"]
    ports = {
        port["containerPort"]: container
        for container in pod.get("initContainers", []) + pod["containers"]
        for port in container.get("ports", [])
    }
    container = ports[int(annotations["prometheus.io/port"])]
    assert container["image"].startswith("sidecar-patterns/"), "scrape one of our services"
    assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("directory", deployable_dirs())
def test_references_resolve(directory: str) -> None:
    """Every ConfigMap, Secret and ServiceAccount a pod names is in the render."""
    docs = render(directory)
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert find(docs, "ConfigMap", volume["configMap"]["name"]), volume
            if "secret" in volume:
                assert find(docs, "Secret", volume["secret"]["secretName"]), volume
        for container in pod.get("initContainers", []) + pod["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = find(docs, "Secret", ref["name"])
                    assert secret and ref["key"] in secret["data"], variable


@pytest.mark.parametrize("directory", deployable_dirs())
def test_services_are_cluster_ip_and_reach_a_pod_port(directory: str) -> None:
    docs = render(directory)
    pods = [w["spec"]["template"] for w in workloads(docs)]
    for service in (d for d in docs if d["kind"] == "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "kind gives no LB address"
        selector = service["spec"]["selector"]
        [pod] = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
        named = {
            port["name"]
            for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
            for port in container.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in named, port


def _httpd_configs(directory: str) -> str:
    docs = render(directory)
    [config] = [d for d in docs if d["kind"] == "ConfigMap" and "httpd.conf" in d.get("data", {})]
    text: str = config["data"]["httpd.conf"]
    return text


def test_the_three_git_content_patterns_serve_with_the_same_httpd_config() -> None:
    """init-container, sidecar and its classic variant differ only in how
    the content arrives, so a fix to one httpd.conf must reach the others."""
    configs = {d: _httpd_configs(d) for d in ("init-container", "sidecar", "sidecar/classic")}
    assert len(set(configs.values())) == 1


def test_the_ambassador_overlays_change_only_the_ambassadors_config_map() -> None:
    dev, prod = render("ambassador/overlays/dev"), render("ambassador/overlays/prod")

    def key(doc: Doc) -> tuple[str, str]:
        return doc["kind"], doc["metadata"]["name"]

    assert sorted(map(key, dev)) == sorted(map(key, prod))
    different = [key(d) for d in dev if d != find(prod, *key(d))]
    assert different == [("ConfigMap", "pg-ambassador")]


def test_the_ambassadors_config_map_keeps_its_name() -> None:
    """No hash suffix: switching overlays updates it in place, and
    pg-ambassador reloads it without the pod restarting."""
    for overlay in ("dev", "prod"):
        assert find(render(f"ambassador/overlays/{overlay}"), "ConfigMap", "pg-ambassador")


def test_the_default_repository_is_the_classic_demos() -> None:
    """`make deploy-sidecar GIT_REPO=...` replaces this exact text."""
    for directory in ("init-container", "sidecar", "sidecar/classic"):
        text = (K8S / directory / "deployment.yaml").read_text()
        assert text.count("https://github.com/moficodes/kubernete-second-week-web") == 1
