"""k8s/prometheus's scrape configuration against the workshop's own pods.

Its pod discovery is replayed on every pod the manifests make (the labels
Prometheus's `role: pod` discovery gives each declared container port), so
the test sees the targets Prometheus would scrape: exactly one per annotated
pod, on the annotated port and path, and none for the others.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .manifests import Doc, deployable_dirs, find, render, workloads

POD_IP = "10.244.0.7"


def prometheus_config() -> dict[str, Any]:
    config_map = find(render("prometheus"), "ConfigMap", "prometheus")
    assert config_map is not None
    document: dict[str, Any] = yaml.safe_load(config_map["data"]["prometheus.yml"])
    return document


def _label_name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


def discovered(pod: Doc, name: str) -> list[dict[str, str]]:
    """What `kubernetes_sd_configs: role: pod` yields: a target per container port."""
    base = {
        "__meta_kubernetes_namespace": "sidecar-patterns",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_phase": "Running",
    }
    for key, value in pod["metadata"].get("labels", {}).items():
        base[f"__meta_kubernetes_pod_label_{_label_name(key)}"] = value
    for key, value in pod["metadata"].get("annotations", {}).items():
        base[f"__meta_kubernetes_pod_annotation_{_label_name(key)}"] = value
    spec = pod["spec"]
    return [
        {**base, "__address__": f"{POD_IP}:{port['containerPort']}"}
        for container in spec.get("initContainers", []) + spec["containers"]
        for port in container.get("ports", [])
    ]


def _go_replacement(template: str) -> str:
    return re.sub(r"\$\{?(\d+)\}?", r"\\g<\1>", template)


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus's relabelling, for the actions the config uses."""
    labels = dict(labels)
    for rule in rules:
        action = rule.get("action", "replace")
        regex = re.compile(rule.get("regex", "(.*)"))
        sources = rule.get("source_labels", [])
        value = rule.get("separator", ";").join(labels.get(s, "") for s in sources)
        match = regex.fullmatch(value)
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            replacement = _go_replacement(rule.get("replacement", "$1"))
            labels[rule["target_label"]] = match.expand(replacement)
        if action == "labelmap":
            for key, val in list(labels.items()):
                mapped = regex.fullmatch(key)
                if mapped:
                    labels[mapped.expand(_go_replacement(rule.get("replacement", "$1")))] = val
        assert action in ("keep", "drop", "replace", "labelmap"), action
    labels.setdefault("__metrics_path__", "/metrics")
    return {k: v for k, v in labels.items() if not k.startswith("__meta_")}


def scrape_targets() -> dict[str, set[tuple[str, str]]]:
    """Pod name -> the (address, path) pairs Prometheus would scrape."""
    [job] = [j for j in prometheus_config()["scrape_configs"] if j["job_name"] == "kubernetes-pods"]
    targets: dict[str, set[tuple[str, str]]] = {}
    for directory in deployable_dirs():
        for workload in workloads(render(directory)):
            name = workload["metadata"]["name"]
            for labels in discovered(workload["spec"]["template"], name):
                result = relabel(labels, job["relabel_configs"])
                if result is not None:
                    targets.setdefault(name, set()).add(
                        (result["__address__"], result["__metrics_path__"])
                    )
    return targets


def test_discovery_is_limited_to_prometheus_own_namespace() -> None:
    [job] = [j for j in prometheus_config()["scrape_configs"] if j["job_name"] == "kubernetes-pods"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"own_namespace": True}}]
    role = find(render("prometheus"), "Role", "prometheus")
    assert role is not None
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]


def test_each_annotated_pod_is_one_target_on_its_metrics_port() -> None:
    targets = scrape_targets()
    assert targets == {
        "sidecar": {(f"{POD_IP}:8081", "/metrics")},
        "sidecar-classic": {(f"{POD_IP}:8081", "/metrics")},
        "adapter": {(f"{POD_IP}:9117", "/metrics")},
        "visit-counter": {(f"{POD_IP}:9187", "/metrics")},
    }


def test_pods_that_are_not_running_are_not_scraped() -> None:
    [job] = [j for j in prometheus_config()["scrape_configs"] if j["job_name"] == "kubernetes-pods"]
    [adapter] = list(workloads(render("adapter")))
    labels = discovered(adapter["spec"]["template"], "adapter")[0]
    for phase in ("Pending", "Succeeded", "Failed"):
        phased = {**labels, "__meta_kubernetes_pod_phase": phase}
        assert relabel(phased, job["relabel_configs"]) is None


def test_promtool_accepts_the_configuration(tmp_path: Path) -> None:
    """Debian's promtool is built without Kubernetes discovery, so the
    discovery block is swapped for a static target; everything else (the
    relabelling, its regular expressions) is checked as Prometheus parses it."""
    config = prometheus_config()
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["localhost:9117"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
