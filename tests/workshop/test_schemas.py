"""Every manifest, and every kustomize render, against Kubernetes 1.33's
OpenAPI schemas in strict mode (unknown fields are errors), offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from kubernetes_validate.utils import SchemaNotFoundError  # type: ignore[import-untyped]

from .manifests import (
    K8S,
    Doc,
    find,
    generator_inputs,
    kustomization_dirs,
    load_file,
    render,
    resource_files,
    workloads,
)

KUBERNETES_VERSION = "1.33"

# Kinds that come from CRDs, absent from the core schemas: each is checked by
# a function of its own below instead.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "PodMonitor")}


def validate(doc: Doc) -> None:
    """Raise kubernetes_validate.ValidationError unless `doc` is valid."""
    if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
        check_pod_monitor(doc)
        return
    validated = kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert validated == KUBERNETES_VERSION, f"validated against {validated}"


def check_pod_monitor(doc: Doc) -> None:
    """The fields of monitoring.coreos.com/v1 PodMonitor this project uses,
    with prometheus-operator's types; anything else is refused."""
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}, sorted(doc)
    spec = doc["spec"]
    assert set(spec) <= {"selector", "podMetricsEndpoints", "namespaceSelector"}, sorted(spec)
    assert isinstance(spec["selector"]["matchLabels"], dict)
    endpoints = spec["podMetricsEndpoints"]
    assert isinstance(endpoints, list) and endpoints
    for endpoint in endpoints:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}, endpoint
        assert isinstance(endpoint["port"], str), "port is a container port's name"
        assert str(endpoint.get("path", "/metrics")).startswith("/")


def all_manifest_files() -> list[Path]:
    return resource_files()


def test_every_yaml_file_is_a_manifest_a_kustomization_or_generator_input() -> None:
    """So that nothing under k8s/ escapes the validation below."""
    known = set(resource_files()) | set(generator_inputs())
    known |= {K8S / d / "kustomization.yaml" for d in kustomization_dirs()}
    stray = [
        str(path.relative_to(K8S))
        for path in K8S.rglob("*.yaml")
        if path.resolve() not in {p.resolve() for p in known}
    ]
    assert stray == []


@pytest.mark.parametrize("path", all_manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_file_is_valid(path: Path) -> None:
    docs = load_file(path)
    assert docs, f"{path} holds no object"
    for doc in docs:
        validate(doc)


@pytest.mark.parametrize("directory", kustomization_dirs())
def test_kustomize_render_is_valid(directory: str) -> None:
    docs = render(directory)
    assert docs
    for doc in docs:
        validate(doc)
        assert doc["metadata"].get("namespace") == "sidecar-patterns", doc["metadata"]


def _mutated(mutate: Any) -> Doc:
    deployment = copy.deepcopy(next(workloads(render("sidecar"))))
    mutate(deployment)
    return deployment


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imagePullPolcy="Always"),
        lambda d: d["spec"].update(replicas="one"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
    ],
    ids=["misspelt field", "wrong type", "missing required field"],
)
def test_the_validation_catches_broken_manifests(mutate: Any) -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(_mutated(mutate))


def test_an_unknown_kind_is_not_silently_accepted() -> None:
    with pytest.raises(SchemaNotFoundError):
        validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


def test_the_pod_monitor_scrapes_the_adapters_metrics_port() -> None:
    [monitor] = render("adapter/prometheus-operator")
    docs = render("adapter")
    [pod_template] = [w["spec"]["template"] for w in workloads(docs)]
    labels = pod_template["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {
        port["name"]: container
        for container in pod_template["spec"]["containers"]
        for port in container.get("ports", [])
    }
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert ports[endpoint["port"]]["name"] == "httpd-adapter"
    assert endpoint["path"] == pod_template["metadata"]["annotations"]["prometheus.io/path"]


def test_the_pod_monitor_checker_refuses_an_unknown_field() -> None:
    [monitor] = render("adapter/prometheus-operator")
    monitor["spec"]["podMetricEndpoints"] = monitor["spec"].pop("podMetricsEndpoints")
    with pytest.raises((AssertionError, KeyError)):
        check_pod_monitor(monitor)


@pytest.mark.parametrize("directory", ["init-container", "sidecar", "sidecar/classic", "adapter"])
def test_the_deployment_file_holds_the_config_it_needs(directory: str) -> None:
    """`kubectl apply -f deployment.yaml` works on its own, as in the classic demo."""
    docs = load_file(K8S / directory / "deployment.yaml")
    for workload in workloads(docs):
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                assert find(docs, "ConfigMap", volume["configMap"]["name"]) is not None, volume
