"""Checks before a target that needs a tool or a cluster: each failure is one
sentence saying what is missing and what to do, and exit code 2, before
anything is changed.

    python -m lab.preflight cluster      kubectl, a current context, a reachable API server >= 1.29
    python -m lab.preflight kind         kind and kubectl installed
    python -m lab.preflight engine       the container engine installed and answering
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# Native sidecars (initContainers with restartPolicy: Always) are on by
# default from 1.29 (beta), GA in 1.33.
MIN_SERVER_MINOR = 29
TIMEOUT = 10.0


class PreflightError(Exception):
    """Something a target needs is missing; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Tools:
    kubectl: str = "kubectl"
    kind: str = "kind"
    engine: str = "docker"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Tools:
        return cls(
            kubectl=environ.get("KUBECTL") or "kubectl",
            kind=environ.get("KIND") or "kind",
            engine=environ.get("CONTAINER_ENGINE") or "docker",
        )


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), 124, "", f"no answer in {TIMEOUT:g}s")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def require_program(program: str, what: str, install: str) -> None:
    if shutil.which(program) is None:
        raise PreflightError(f"{what} is not installed ({program!r} is not on PATH): {install}")


def require_kubectl(tools: Tools) -> None:
    require_program(
        tools.kubectl, "kubectl", "see https://kubernetes.io/docs/tasks/tools/ (or set KUBECTL=)"
    )


def require_kind(tools: Tools) -> None:
    require_program(
        tools.kind,
        "kind",
        "see https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or set KIND=)",
    )


def require_engine(tools: Tools) -> None:
    require_program(
        tools.engine,
        f"the container engine {tools.engine!r}",
        "install Docker or Podman (CONTAINER_ENGINE=podman)",
    )
    result = _run([tools.engine, "info"])
    if result.returncode != 0:
        raise PreflightError(
            f"{tools.engine} is installed but does not answer ({tools.engine} info: "
            f"{_last_line(result.stderr or result.stdout)}): start its daemon or service"
        )


def require_cluster(tools: Tools) -> str:
    """The current context's name, once its API server has answered."""
    require_kubectl(tools)
    context = _run([tools.kubectl, "config", "current-context"])
    if context.returncode != 0 or not context.stdout.strip():
        raise PreflightError(
            "kubectl has no current context: run `make kind-up` for a local cluster, "
            "or `kubectl config use-context NAME`"
        )
    name = context.stdout.strip()
    version = _run([tools.kubectl, "version", "--output=json", f"--request-timeout={TIMEOUT:g}s"])
    try:
        server = json.loads(version.stdout)["serverVersion"]
    except (ValueError, KeyError, TypeError):
        server = None
    if version.returncode != 0 or server is None:
        raise PreflightError(
            f"the cluster of kubectl context {name!r} is not reachable "
            f"({_last_line(version.stderr)}): start it (`make kind-up`) or pick another context"
        )
    minor = int("".join(c for c in str(server.get("minor", "0")) if c.isdigit()) or 0)
    if str(server.get("major")) == "1" and minor < MIN_SERVER_MINOR:
        raise PreflightError(
            f"the cluster of context {name!r} runs Kubernetes 1.{minor}; the native sidecars "
            f"need 1.{MIN_SERVER_MINOR} or newer (`make kind-up` makes a 1.33 cluster)"
        )
    return name


def require_kind_and_kubectl(tools: Tools) -> None:
    require_kind(tools)
    require_kubectl(tools)


CHECKS: dict[str, Callable[[Tools], object]] = {
    "cluster": require_cluster,
    "kind": require_kind_and_kubectl,
    "engine": require_engine,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.preflight", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("needs", nargs="+", choices=sorted(CHECKS))
    parser.add_argument("--target", default="this target", help="the make target, for messages")
    args = parser.parse_args(argv)
    tools = Tools.from_environment(os.environ)
    try:
        for need in args.needs:
            CHECKS[need](tools)
    except PreflightError as error:
        print(f"{args.target}: cannot run: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
