"""Actions after a publish: a shell command and an HTTP notification.

Each hook has its own runner that works on the newest published commit
only: a publish during a slow or failing hook replaces the pending work
instead of queueing behind it, and failures retry with backoff. Nothing
here ever delays the next sync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from patterns_common.logsetup import fields

from .processes import kill_process_group
from .schedule import Backoff

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger(__name__)

HookAction = Callable[[str], Awaitable[None]]
HOOK_RETRY = Backoff(first=1.0, cap=60.0)
HOOK_RESULTS = ("success", "error")


class HookFailed(Exception):
    pass


class LatestCommitRunner:
    def __init__(
        self,
        name: str,
        action: HookAction,
        metrics: Metrics | None,
        backoff: Backoff = HOOK_RETRY,
    ) -> None:
        self.name = name
        self._action = action
        self._metrics = metrics
        self._backoff = backoff
        self._latest: str | None = None
        self._wake = asyncio.Event()
        if metrics is not None:
            for result in HOOK_RESULTS:
                metrics.hook_runs.labels(name, result)

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.hook_runs.labels(self.name, result).inc()

    def submit(self, commit: str) -> None:
        self._latest = commit
        self._wake.set()

    async def run_once(self, commit: str) -> bool:
        """One attempt, logged and counted; True on success."""
        try:
            await self._action(commit)
        except HookFailed as exc:
            self._count("error")
            log.error(
                "hook failed",
                extra=fields(hook=self.name, commit=commit, error=str(exc)),
            )
            return False
        self._count("success")
        log.info("hook succeeded", extra=fields(hook=self.name, commit=commit))
        return True

    async def run(self) -> None:
        """Serve submissions until cancelled."""
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            commit = self._latest
            if commit is None:
                continue
            if await self.run_once(commit):
                failures = 0
                continue
            failures += 1
            delay = self._backoff.delay(failures, random.random())
            try:
                # A newer publish cuts the wait short and takes the retry's place.
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                self._wake.set()


def exec_action(command: str, checkout_of: Callable[[str], Path], timeout: float) -> HookAction:
    """`sh -c command` in the commit's checkout, with GITPOLL_COMMIT set."""

    async def run(commit: str) -> None:
        checkout = checkout_of(commit)
        env = {**os.environ, "GITPOLL_COMMIT": commit, "GITPOLL_CHECKOUT": str(checkout)}
        try:
            process = await asyncio.create_subprocess_exec(
                "sh",
                "-c",
                command,
                cwd=checkout,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise HookFailed(f"cannot start the command: {exc}") from None
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            await kill_process_group(process)
            raise HookFailed(f"timed out after {timeout:g}s (--exec-timeout)") from None
        except BaseException:
            await kill_process_group(process)
            raise
        if process.returncode != 0:
            lines = output.decode("utf-8", "replace").strip().splitlines()
            last = f": {lines[-1]}" if lines else ""
            raise HookFailed(f"exited with code {process.returncode}{last}")

    return run


class Notifier:
    """POSTs to `url` with the commit in the Gitpoll-Commit header (and in
    git-sync's Gitsync-Hash, so receivers written for it work unchanged)."""

    def __init__(self, url: str, timeout: float, ref: str | None) -> None:
        # Imported here, while the service is being wired, not at module
        # load: only a --notify-url needs aiohttp's client (see app.py).
        import aiohttp

        self._aiohttp = aiohttp
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ref = ref
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, commit: str) -> None:
        aiohttp = self._aiohttp
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Gitpoll-Commit": commit, "Gitsync-Hash": commit}
        body = {"commit": commit, "ref": self._ref}
        try:
            async with self._session.post(self._url, headers=headers, json=body) as response:
                if response.status >= 300:
                    raise HookFailed(f"the endpoint answered HTTP {response.status}")
        except TimeoutError:
            total = self._timeout.total
            raise HookFailed(f"no answer within {total:g}s (--notify-timeout)") from None
        except aiohttp.ClientError as exc:
            raise HookFailed(f"request failed: {exc.__class__.__name__}: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Hooks:
    """The hooks configured for this process, each with its runner."""

    def __init__(
        self,
        metrics: Metrics | None,
        *,
        exec_command: str | None,
        exec_timeout: float,
        checkout_of: Callable[[str], Path],
        notify_url: str | None,
        notify_timeout: float,
        ref: str | None,
    ) -> None:
        self._runners: list[LatestCommitRunner] = []
        self._notifier: Notifier | None = None
        if exec_command:
            action = exec_action(exec_command, checkout_of, exec_timeout)
            self._runners.append(LatestCommitRunner("exec", action, metrics))
        if notify_url:
            self._notifier = Notifier(notify_url, notify_timeout, ref)
            self._runners.append(LatestCommitRunner("notify", self._notifier, metrics))

    def submit(self, commit: str) -> None:
        for runner in self._runners:
            runner.submit(commit)

    async def run_once(self, commit: str) -> None:
        """Each hook once, without retries (for --one-time)."""
        for runner in self._runners:
            await runner.run_once(commit)

    def start(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(runner.run()) for runner in self._runners]

    async def close(self) -> None:
        if self._notifier is not None:
            await self._notifier.close()
