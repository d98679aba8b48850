"""Real git repositories for tests: a bare upstream and a clone to commit in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.test",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.test",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "LC_ALL": "C",
}


def git(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *map(str, args)],
        cwd=cwd,
        env=_ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


class Upstream:
    """A bare repository (what gitpoll syncs from) and a working clone."""

    def __init__(self, base: Path, branch: str = "main") -> None:
        self.bare = base / "upstream.git"
        self.work = base / "upstream-work"
        self.branch = branch
        git("init", "--quiet", "--bare", f"--initial-branch={branch}", self.bare)
        git("init", "--quiet", f"--initial-branch={branch}", self.work)
        git("remote", "add", "origin", self.bare, cwd=self.work)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, files: dict[str, str | bytes], message: str = "change") -> str:
        """Write `files` (path: content; None deletes), commit and return its id.
        Does not push."""
        for name, content in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        return self.head()

    def remove(self, *names: str) -> None:
        git("rm", "--quiet", *names, cwd=self.work)

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work)

    def push(self, ref: str | None = None, *, force: bool = False) -> None:
        target = ref or self.branch
        args = ["push", "--quiet"]
        if force:
            args.append("--force")
        git(*args, "origin", f"HEAD:refs/heads/{target}", cwd=self.work)

    def commit_and_push(self, files: dict[str, str | bytes], message: str = "change") -> str:
        sha = self.commit(files, message)
        self.push()
        return sha

    def reset(self, commit: str) -> None:
        git("reset", "--quiet", "--hard", commit, cwd=self.work)

    def tag(self, name: str, *, annotated: bool = False, force: bool = False) -> None:
        args = ["tag"]
        if annotated:
            args += ["-a", "-m", f"tag {name}"]
        if force:
            args.append("-f")
        git(*args, name, cwd=self.work)
        git("push", "--quiet", "--force", "origin", f"refs/tags/{name}", cwd=self.work)

    def remote_sha(self, ref: str) -> str:
        return git("rev-parse", ref, cwd=self.bare)
