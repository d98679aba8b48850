"""kubectl, in the workshop's namespace. Every call has a deadline."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

NAMESPACE = "sidecar-patterns"


class KubectlError(Exception):
    """kubectl failed; the message is its last line of error output."""


@dataclass(frozen=True, slots=True)
class Kubectl:
    program: str = "kubectl"
    namespace: str = NAMESPACE
    timeout: float = 60.0

    def run(
        self, *args: str, stdin: str | None = None, timeout: float | None = None, check: bool = True
    ) -> str:
        argv = [self.program, f"--namespace={self.namespace}", *args]
        try:
            result = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout or self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise KubectlError(f"kubectl {' '.join(args)}: no answer in time") from None
        if check and result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["failed"]
            raise KubectlError(f"kubectl {' '.join(args[:3])}: {lines[-1]}")
        return result.stdout

    def stream(self, *args: str, stdin: str | None = None) -> int:
        """Run with its output shown to the person at the terminal."""
        argv = [self.program, f"--namespace={self.namespace}", *args]
        return subprocess.run(argv, input=stdin, text=True, check=False).returncode

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--output=json"))

    def raw(self, path: str, timeout: float = 15.0) -> str:
        """GET through the API server (its proxy to pods and services)."""
        return self.run("get", "--raw", path, timeout=timeout)

    def service_proxy(self, service: str, port: str, path: str) -> str:
        return self.raw(
            f"/api/v1/namespaces/{self.namespace}/services/{service}:{port}/proxy{path}"
        )

    def pod_proxy(self, pod: str, port: int, path: str) -> str:
        return self.raw(f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{port}/proxy{path}")

    def pods(self, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("get", "pods", f"--selector={selector}")["items"]
        return [pod for pod in items if "deletionTimestamp" not in pod["metadata"]]


def ensure_namespace(kubectl: Kubectl) -> None:
    """Create the namespace unless it exists (idempotent, like `apply`)."""
    manifest = json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": kubectl.namespace}}
    )
    kubectl.run("apply", "--filename=-", stdin=manifest)
