"""The git repositories the sidecar patterns' pods sync from.

Each is a working repository on the host, where the check commits, and a
bare one in a directory that a git daemon serves: the daemon runs in a pod
of its own on the pods' network (no port on the host), from the gitpoll
image (which has git), with that directory mounted read-only. A repository
is published by renaming a complete bare clone into the directory, so until
then the daemon answers "no such repository"; later commits are pushed.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from ..verify import CheckFailed
from .manifests import Doc
from .pods import Pods

GIT_SERVER = "git-server"
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "make test-containers",
    "GIT_AUTHOR_EMAIL": "test-containers@example.test",
    "GIT_COMMITTER_NAME": "make test-containers",
    "GIT_COMMITTER_EMAIL": "test-containers@example.test",
}


def _git(*args: str, cwd: Path) -> str:
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**os.environ, **_GIT_ENV},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"git {' '.join(args)}: no answer in 60s") from None
    if result.returncode != 0:
        raise CheckFailed(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def _readable(root: Path) -> None:
    """The daemon runs as gitpoll's user: everything readable by others."""
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)


def page(number: int) -> dict[str, bytes]:
    """The files of a repository's n-th commit: a page and a stylesheet."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return {
        "index.html": (
            f"<!doctype html>\n<title>Sidecar Patterns: page {number}</title>\n"
            f"<h1>Page {number}</h1>\n<p>Committed by make test-containers at {stamp}.</p>\n"
        ).encode(),
        "css/site.css": f"h1 {{ color: #{number * 111111 % 0xFFFFFF:06x}; }}\n".encode(),
    }


class SiteRepository:
    def __init__(self, name: str, work: Path, served: Path) -> None:
        self.name = name
        self.work = work
        self.bare = served / f"{name}.git"
        self.url = f"git://{GIT_SERVER}/{name}.git"
        self.work.mkdir(parents=True)
        _git("init", "--quiet", "--initial-branch=main", cwd=self.work)
        self.files: dict[str, bytes] = {}
        self.commits = 0

    def commit_page(self) -> tuple[str, dict[str, bytes]]:
        """Commit the next page; (commit id, its files)."""
        files = page(self.commits + 1)
        for relative, content in files.items():
            path = self.work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        self.files.update(files)
        _git("add", "--all", cwd=self.work)
        _git("commit", "--quiet", f"--message=page {self.commits + 1}", cwd=self.work)
        self.commits += 1
        return self.head(), files

    def head(self) -> str:
        return _git("rev-parse", "HEAD", cwd=self.work)

    def publish(self) -> None:
        """Make the repository appear where the daemon serves, at once, complete."""
        staging = self.work.parent / f"{self.name}.git.staging"
        _git("clone", "--quiet", "--bare", str(self.work), str(staging), cwd=self.work.parent)
        _readable(staging)
        staging.rename(self.bare)

    def push(self) -> None:
        _git("push", "--quiet", str(self.bare), "main", cwd=self.work)
        _readable(self.bare)


class GitServer:
    """The git daemon pod, played on first use; one repository per pattern."""

    def __init__(self, pods: Pods, image: str, base: Path) -> None:
        self.pods = pods
        self.image = image
        self.base = base
        self.served = base / "served"
        self.ip = ""

    def start(self) -> str:
        if not self.ip:
            self.served.mkdir(parents=True)
            _readable(self.base)
            [pod] = self.pods.play("git-server", git_server_pod(self.image, self.served))
            self.ip = self.pods.ip(pod)
        return self.ip

    def repository(self, name: str) -> SiteRepository:
        self.start()
        return SiteRepository(name, self.base / "work" / name, self.served)


def git_server_pod(image: str, served: Path) -> list[Doc]:
    """A pod running `git daemon` on the served directory, mounted read-only.
    safe.directory: the repositories belong to root on the host, and the
    daemon runs as gitpoll's user."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": GIT_SERVER, "labels": {"app": GIT_SERVER}},
            "spec": {
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                "containers": [
                    {
                        "name": "git-daemon",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": [
                            "git",
                            "-c",
                            "safe.directory=*",
                            "daemon",
                            "--reuseaddr",
                            "--export-all",
                            "--informative-errors",
                            "--base-path=/srv/git",
                            "--port=9418",
                            "/srv/git",
                        ],
                        "securityContext": {"readOnlyRootFilesystem": True},
                        "volumeMounts": [
                            {"name": "repositories", "mountPath": "/srv/git", "readOnly": True}
                        ],
                    }
                ],
                "volumes": [
                    {
                        "name": "repositories",
                        "hostPath": {"path": str(served), "type": "Directory"},
                    }
                ],
            },
        }
    ]
