"""Every git operation gitpoll performs, and nothing else.

Commands that talk to the remote or write many files run as asyncio
subprocesses in their own process group: each one is bounded by
`--timeout` and killed (with its ssh or https helper) when it overruns or
when the service stops, which a blocking call in a thread could not do.
(GitPython, whose calls block a thread, was used for the local repository
at first; `git init` and `git fsck` do that job as well, and dropping it
saved 2.8 MiB of the 40 MiB memory budget.)

Nothing secret is ever put in a command's argv: https credentials reach git
through a credential helper that reads the password file at each run, and
ssh options through GIT_SSH_COMMAND.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SyncError, classify_git_failure, classify_os_error
from .processes import kill_process_group
from .refs import RefNotFound, RemoteHead, ls_remote_patterns, parse_ls_remote, select_head
from .remote import Remote

log = logging.getLogger(__name__)

FETCHED_REF = "refs/gitpoll/fetched"
PUBLISHED_REF = "refs/gitpoll/published"
NEARLY_FULL_BYTES = 1024 * 1024

# Reads the password file at every request, so a rotated Secret is used at
# once; line ends are dropped (a secret file's trailing newline, CRLF
# included). The values arrive in the environment, never on a command line.
_CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || return 0; '
    'printf "username=%s\\n" "$GITPOLL_GIT_USERNAME"; '
    'if [ -n "${GITPOLL_GIT_PASSWORD_FILE:-}" ]; then '
    'printf "password=%s\\n" "$(tr -d "\\r\\n" < "$GITPOLL_GIT_PASSWORD_FILE")"; '
    'elif [ -n "${GITPOLL_GIT_PASSWORD:-}" ]; then '
    'printf "password=%s\\n" "$GITPOLL_GIT_PASSWORD"; fi; }; f'
)

# Variables from the outer environment that would redirect our commands.
_INHERITED_GIT_VARIABLES = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_NAMESPACE",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
)


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password_file: Path | None = None
    password: str | None = field(default=None, repr=False)
    ssh_key_file: Path | None = None
    known_hosts_file: Path | None = None


def ssh_command(credentials: Credentials) -> str:
    """GIT_SSH_COMMAND: never prompt; strict host keys when a known-hosts
    file is given, none kept otherwise."""
    options = ["ssh", "-o", "BatchMode=yes"]
    if credentials.ssh_key_file is not None:
        options += ["-i", str(credentials.ssh_key_file), "-o", "IdentitiesOnly=yes"]
    if credentials.known_hosts_file is not None:
        options += [
            "-o",
            f"UserKnownHostsFile={credentials.known_hosts_file}",
            "-o",
            "StrictHostKeyChecking=yes",
        ]
    else:
        options += [
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "LogLevel=ERROR",
        ]
    return shlex.join(options)


def _base_environment(remote: Remote, credentials: Credentials) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_GIT_VARIABLES}
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    if remote.kind == "ssh":
        env["GIT_SSH_COMMAND"] = ssh_command(credentials)
    if remote.kind == "http":
        username = credentials.username or remote.url_username
        if username:
            env["GITPOLL_GIT_USERNAME"] = username
        if credentials.password_file is not None:
            env["GITPOLL_GIT_PASSWORD_FILE"] = str(credentials.password_file)
        elif remote.url_password:
            env["GITPOLL_GIT_PASSWORD"] = remote.url_password
    return env


class Git:
    """The local repository at `git_dir` and the remote it mirrors."""

    def __init__(
        self,
        git_dir: Path,
        remote: Remote,
        credentials: Credentials,
        *,
        depth: int,
        timeout: float,
    ) -> None:
        self.git_dir = git_dir
        self.remote = remote
        self.depth = depth
        self.timeout = timeout
        self._env = _base_environment(remote, credentials)
        self._network_config = ["-c", "credential.helper="]
        if remote.kind == "http":
            self._network_config += ["-c", f"credential.helper={_CREDENTIAL_HELPER}"]
        self._inherited_fds: tuple[int, ...] = ()

    def hold_while_running(self, fd: int) -> None:
        """Pass `fd` (the volume lock) to every git process, so that git
        commands left running by a killed gitpoll keep the volume locked
        until they end."""
        self._inherited_fds = (fd,)

    async def run(
        self,
        operation: str,
        args: Sequence[str],
        *,
        network: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> str:
        """Run one git command; its stdout, or a SyncError naming the cause."""
        argv = [
            "git",
            f"--git-dir={self.git_dir}",
            "-c",
            "safe.directory=*",
            "-c",
            "gc.auto=0",
            "-c",
            "maintenance.auto=false",
            *(self._network_config if network else ()),
            *args,
        ]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**self._env, **env} if env else self._env,
                cwd=self.git_dir.parent,
                start_new_session=True,
                pass_fds=self._inherited_fds,
            )
        except OSError as exc:
            raise classify_os_error(operation, exc) from None
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), self.timeout)
        except TimeoutError:
            await kill_process_group(process)
            raise SyncError(
                "timeout", f"{operation}: no result within {self.timeout:g}s (--timeout)"
            ) from None
        except BaseException:
            await kill_process_group(process)
            raise
        if process.returncode != 0:
            text = stderr.decode("utf-8", "replace")
            error = classify_git_failure(operation, text, process.returncode or 0)
            if error.reason == "git" and self._volume_nearly_full():
                # git reports a failed write without its cause ("unable to write file").
                raise SyncError("volume_full", f"{operation}: the volume is full: {error.message}")
            raise error
        return stdout.decode("utf-8", "replace")

    def _volume_nearly_full(self) -> bool:
        try:
            usage = shutil.disk_usage(self.git_dir.parent)
        except OSError:
            return False
        return usage.free < max(NEARLY_FULL_BYTES, usage.total // 100)

    # -- the local repository ------------------------------------------------

    async def prepare_repository(self) -> None:
        """Make `git_dir` a sound repository: clear what a killed process left
        behind, and rebuild it from scratch when it is damaged. The published
        checkouts do not depend on it, so a rebuild loses nothing served."""
        await asyncio.to_thread(self._remove_leftovers)
        if not self.git_dir.exists():
            await self._create_repository()
            return
        try:
            await self.run("check repository", ["fsck", "--connectivity-only", "--no-progress"])
        except SyncError as exc:
            if exc.reason.startswith("volume"):
                raise
            log.warning("the git directory is damaged; rebuilding it: %s", exc.message)
            try:
                await asyncio.to_thread(shutil.rmtree, self.git_dir)
            except OSError as error:
                raise classify_os_error("remove damaged repository", error) from None
            await self._create_repository()

    async def _create_repository(self) -> None:
        await self.run("create repository", ["init", "--quiet", "--bare"])

    def _remove_leftovers(self) -> None:
        if not self.git_dir.is_dir():
            return
        for path in self.git_dir.rglob("*"):
            name = path.name
            stale = (
                name.endswith(".lock")
                or name.startswith("gitpoll-index")
                or (name.startswith("tmp_") and path.parent.name == "pack")
                or (name.startswith("incoming-") and path.parent.name == "objects")
            )
            if stale:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    # -- talking to the remote -----------------------------------------------

    async def remote_head(self, ref: str | None) -> RemoteHead:
        """What `ref` points at on the remote: one ls-remote, no fetch."""
        output = await self.run(
            "ls-remote", ["ls-remote", self.remote.url, *ls_remote_patterns(ref)], network=True
        )
        try:
            return select_head(ref, parse_ls_remote(output))
        except RefNotFound as exc:
            raise SyncError("ref_not_found", f"ls-remote: {exc}") from None

    async def fetch(self, source: str) -> str:
        """Fetch `source` (a full ref name or a commit id); the commit fetched."""
        args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"]
        if self.depth > 0:
            args.append(f"--depth={self.depth}")
        elif (self.git_dir / "shallow").exists():
            args.append("--unshallow")
        await self.run("fetch", [*args, self.remote.url, f"+{source}:{FETCHED_REF}"], network=True)
        try:
            commit = await self.run(
                "fetch", ["rev-parse", "--verify", "--quiet", f"{FETCHED_REF}^{{commit}}"]
            )
        except SyncError:
            raise SyncError(
                "ref_not_commit", f"fetch: {source} does not point at a commit"
            ) from None
        return commit.strip()

    # -- writing checkouts and housekeeping ----------------------------------

    async def checkout(self, commit: str, destination: Path) -> None:
        """Write the tree of `commit` into the empty directory `destination`.

        A private index file and an explicit work tree leave the repository's
        own state alone and put no `.git` file in the published tree."""
        index = self.git_dir / f"gitpoll-index-{commit}"
        try:
            await self.run(
                "checkout",
                [f"--work-tree={destination}", "read-tree", "--reset", "-u", commit],
                env={"GIT_INDEX_FILE": str(index)},
            )
        finally:
            index.unlink(missing_ok=True)

    async def mark_published(self, commit: str) -> None:
        """Keep the published commit's objects through garbage collection."""
        await self.run("record publish", ["update-ref", PUBLISHED_REF, commit])

    async def collect_garbage(self) -> None:
        await self.run(
            "gc",
            ["reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all"],
        )
        await self.run("gc", ["gc", "--quiet", "--prune=now"])
