"""The patterns of the workshop: where their manifests are and what runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"

# What `make deploy-sidecar GIT_REPO=...` replaces in the manifests.
DEFAULT_GIT_REPO = "https://github.com/moficodes/kubernete-second-week-web"
AMBASSADOR_ENVIRONMENTS = ("dev", "prod")


@dataclass(frozen=True, slots=True)
class Pattern:
    name: str
    directory: str
    """The kustomization, relative to k8s/."""
    rollouts: tuple[str, ...]
    """What to wait for after applying, as kubectl rollout status names them."""
    try_this: str
    """What to type next, printed after a deploy."""
    uses_git_repo: bool = False

    def kustomization(self, ambassador_env: str = "dev") -> Path:
        return K8S / self.directory.format(env=ambassador_env)


PATTERNS = {
    pattern.name: pattern
    for pattern in (
        Pattern(
            "init-container",
            "init-container",
            ("deployment/init-container",),
            "kubectl -n sidecar-patterns port-forward service/init-container 8082:80",
            uses_git_repo=True,
        ),
        Pattern(
            "sidecar",
            "sidecar",
            ("deployment/sidecar",),
            "kubectl -n sidecar-patterns port-forward service/sidecar 8080:80",
            uses_git_repo=True,
        ),
        Pattern(
            "sidecar-classic",
            "sidecar/classic",
            ("deployment/sidecar-classic",),
            "kubectl -n sidecar-patterns port-forward service/sidecar-classic 8081:80",
            uses_git_repo=True,
        ),
        Pattern(
            "adapter",
            "adapter",
            ("deployment/adapter",),
            "kubectl -n sidecar-patterns port-forward service/adapter 8083:80 9117:9117",
        ),
        Pattern(
            "ambassador",
            "ambassador/overlays/{env}",
            ("statefulset/postgres", "deployment/visit-counter"),
            "kubectl -n sidecar-patterns port-forward service/visit-counter 8084:80",
        ),
        Pattern(
            "prometheus",
            "prometheus",
            ("deployment/prometheus",),
            "kubectl -n sidecar-patterns port-forward service/prometheus 9090:9090",
        ),
    )
}
