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


def git(*args: str | Path, cwd: Path | None = None, check: bool = True) -> str:
    """Run git; its stdout. With check=False a failure gives an empty string."""
    result = subprocess.run(
        ["git", *map(str, args)],
        cwd=cwd,
        env=_ENV,
        check=check,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip() if result.returncode == 0 else ""


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

    def prepare_commits(self, trees: list[dict[str, str]], message: str = "change") -> list[str]:
        """Create one commit per entry of `trees` (each a change to the files
        it names) on top of HEAD in a single `git fast-import` run, much
        faster than one commit at a time; nothing is pushed. Returns the ids."""
        stream = []
        parent = self.head()
        for number, files in enumerate(trees, 1):
            stream.append(f"commit refs/heads/{self.branch}\nmark :{number}\n")
            stream.append("committer Test Author <author@example.test> 1700000000 +0000\n")
            text = f"{message} {number}\n"
            stream.append(f"data {len(text.encode())}\n{text}")
            stream.append(f"from {parent}\n" if number == 1 else f"from :{number - 1}\n")
            for name, content in files.items():
                data = content.encode()
                stream.append(f"M 100644 inline {name}\ndata {len(data)}\n{content}\n")
        stream.append("done\n")
        marks = self.work / ".git" / "fast-import-marks"
        subprocess.run(
            ["git", "fast-import", "--quiet", "--done", f"--export-marks={marks}"],
            cwd=self.work,
            env=_ENV,
            input="".join(stream),
            text=True,
            check=True,
        )
        by_mark = dict(line.split() for line in marks.read_text().splitlines())
        git("reset", "--quiet", "--hard", f"refs/heads/{self.branch}", cwd=self.work)
        return [by_mark[f":{number}"] for number in range(1, len(trees) + 1)]

    def push_commit(self, commit: str, *, force: bool = False) -> None:
        """Make the upstream branch point at `commit`."""
        args = ["push", "--quiet", *(["--force"] if force else [])]
        git(*args, "origin", f"{commit}:refs/heads/{self.branch}", cwd=self.work)

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
