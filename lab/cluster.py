"""`make deploy-<pattern>`, `verify-<pattern>` and `undeploy-<pattern>`.

    python -m lab.cluster deploy sidecar [--git-repo URL]
    python -m lab.cluster deploy ambassador --ambassador-env prod
    python -m lab.cluster verify adapter
    python -m lab.cluster undeploy ambassador

Each first checks for kubectl and a reachable cluster (lab.preflight)
and refuses, changing nothing, when one is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .kube import NAMESPACE, Kubectl, KubectlError, ensure_namespace
from .patterns import AMBASSADOR_ENVIRONMENTS, DEFAULT_GIT_REPO, PATTERNS, Pattern
from .preflight import PreflightError, Tools, require_cluster
from .verify import CHECKS, run_checks

EXIT_FAILED = 1
EXIT_REFUSED = 2


def render(kubectl: Kubectl, pattern: Pattern, ambassador_env: str, git_repo: str | None) -> str:
    manifests = kubectl.run("kustomize", str(pattern.kustomization(ambassador_env)))
    if git_repo and pattern.uses_git_repo:
        manifests = manifests.replace(DEFAULT_GIT_REPO, git_repo)
    return manifests


def deploy(kubectl: Kubectl, pattern: Pattern, ambassador_env: str, git_repo: str | None) -> int:
    ensure_namespace(kubectl)
    manifests = render(kubectl, pattern, ambassador_env, git_repo)
    if kubectl.stream("apply", "--filename=-", stdin=manifests) != 0:
        return EXIT_FAILED
    for rollout in pattern.rollouts:
        if kubectl.stream("rollout", "status", rollout, "--timeout=300s") != 0:
            print(f"{rollout} did not become ready: kubectl -n {NAMESPACE} describe {rollout}")
            return EXIT_FAILED
    print(f"\nnext: make verify-{pattern.name}, and try:\n  {pattern.try_this}")
    return 0


def undeploy(kubectl: Kubectl, pattern: Pattern, ambassador_env: str) -> int:
    manifests = kubectl.run("kustomize", str(pattern.kustomization(ambassador_env)))
    code = kubectl.stream(
        "delete", "--filename=-", "--ignore-not-found", "--wait=true", stdin=manifests
    )
    if pattern.name == "ambassador":
        # A StatefulSet leaves its volumes behind on purpose; the workshop's go.
        code |= kubectl.stream("delete", "pvc", "--selector=app=postgres", "--ignore-not-found")
    return EXIT_FAILED if code else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab.cluster", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", choices=("deploy", "verify", "undeploy"))
    parser.add_argument("pattern", choices=sorted(PATTERNS))
    parser.add_argument(
        "--ambassador-env",
        choices=AMBASSADOR_ENVIRONMENTS,
        default="dev",
        help="which overlay of the ambassador pattern",
    )
    parser.add_argument("--git-repo", help=f"instead of {DEFAULT_GIT_REPO}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    target = f"{args.action}-{args.pattern}"
    tools = Tools.from_environment(os.environ)
    try:
        require_cluster(tools)
    except PreflightError as error:
        print(f"{target}: cannot run: {error}", file=sys.stderr)
        return EXIT_REFUSED
    kubectl = Kubectl(tools.kubectl)
    pattern = PATTERNS[args.pattern]
    try:
        if args.action == "deploy":
            return deploy(kubectl, pattern, args.ambassador_env, args.git_repo or None)
        if args.action == "undeploy":
            return undeploy(kubectl, pattern, args.ambassador_env)
        return 0 if run_checks(kubectl, pattern.name, CHECKS[pattern.name]) else EXIT_FAILED
    except KubectlError as error:
        print(f"{target}: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
