"""The git repository the sidecar pods sync from.

A working repository on the host, where the check commits; and a git
daemon in a pod of its own on the pods' network (podman network, no host
port), serving a directory of the host read-only. The repository is
published into that directory by renaming a bare clone into it, so until
then the daemon answers "no such repository"; later commits are pushed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .manifests import Doc

GIT_SERVER = "git-server"
REPOSITORY = "site.git"
URL = f"git://{GIT_SERVER}/{REPOSITORY}"
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_AUTHOR_NAME": "make test-containers",
    "GIT_AUTHOR_EMAIL": "test-containers@example.test",
    "GIT_COMMITTER_NAME": "make test-containers",
    "GIT_COMMITTER_EMAIL": "test-containers@example.test",
}


def _git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_GIT_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


class SiteRepository:
    def __init__(self, base: Path) -> None:
        self.work = base / "site"
        self.served = base / "git"
        self.bare = self.served / REPOSITORY
        self.work.mkdir(parents=True)
        self.served.mkdir()
        # The daemon runs as a non-root user: everything readable by others.
        for path in (base, self.served):
            path.chmod(0o755)
        _git("init", "--quiet", "--initial-branch=main", cwd=self.work)
        self.files: dict[str, bytes] = {}
        self.commits = 0

    def commit(self, files: dict[str, bytes], message: str) -> str:
        """Write `files` (relative path -> content), commit; the new commit id."""
        for relative, content in files.items():
            path = self.work / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        self.files.update(files)
        _git("add", "--all", cwd=self.work)
        _git("commit", "--quiet", f"--message={message}", cwd=self.work)
        self.commits += 1
        return self.head()

    def head(self) -> str:
        return _git("rev-parse", "HEAD", cwd=self.work)

    @property
    def published(self) -> bool:
        return self.bare.exists()

    def publish(self) -> None:
        """Make the repository appear at once, complete, where the daemon serves."""
        staging = self.served.parent / "site.git.staging"
        _git("clone", "--quiet", "--bare", str(self.work), str(staging), cwd=self.served.parent)
        for path in [staging, *staging.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        staging.rename(self.bare)

    def push(self) -> None:
        _git("push", "--quiet", str(self.bare), "main", cwd=self.work)
        for path in self.bare.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)

    def remove(self) -> None:
        shutil.rmtree(self.work.parent, ignore_errors=True)


def git_server_pod(image: str, served: Path) -> list[Doc]:
    """A pod running `git daemon` (from the gitpoll image, which has git) on
    the served directory, mounted read-only. safe.directory: the repository
    belongs to root on the host, the daemon runs as gitpoll's user."""
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
                            "--verbose",
                            "--base-path=/srv/git",
                            "--port=9418",
                            "/srv/git",
                        ],
                        "ports": [{"name": "git", "containerPort": 9418}],
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
