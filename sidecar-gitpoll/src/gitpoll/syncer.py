"""One sync: ask the remote, fetch if it moved, write a checkout, publish."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from .errors import classify_os_error
from .gitops import Git
from .publish import Volume

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncResult:
    result: Literal["success", "noop"]
    commit: str
    previous: str | None


class Syncer:
    def __init__(self, git: Git, volume: Volume, ref: str | None, ref_is_commit: bool) -> None:
        self.git = git
        self.volume = volume
        self.ref = ref
        self.ref_is_commit = ref_is_commit
        self._prepared = False

    async def prepare(self) -> None:
        """Lock the volume and repair what an earlier run left; done before
        the first sync and retried until it succeeds (a volume may become
        writable later)."""
        if self._prepared:
            return
        try:
            fd = await asyncio.to_thread(self.volume.lock)
            self.git.hold_while_running(fd)
            await asyncio.to_thread(self.volume.remove_leftovers)
        except OSError as exc:
            raise classify_os_error("prepare volume", exc) from None
        await self.git.prepare_repository()
        self._prepared = True

    async def sync(self) -> SyncResult:
        await self.prepare()
        try:
            return await self._sync()
        except OSError as exc:
            raise classify_os_error("publish", exc) from None

    async def _sync(self) -> SyncResult:
        published = self.volume.published_commit()
        if published is None and not self.ref_is_commit:
            # Nothing to compare with: asking the remote first would only add
            # a round trip to the first publish (an init container's whole job).
            commit = await self.git.fetch(self.ref or "HEAD")
        else:
            wanted, source = await self._wanted()
            if wanted == published:
                return SyncResult("noop", wanted, published)
            # A rewind within the grace period finds its checkout still there.
            has_it = self.volume.has_checkout(wanted)
            commit = wanted if has_it else await self.git.fetch(source)
        if not self.volume.has_checkout(commit):
            await self._write_checkout(commit)
        await asyncio.to_thread(self.volume.publish, commit)
        await self.git.mark_published(commit)
        return SyncResult("success", commit, published)

    async def _wanted(self) -> tuple[str, str]:
        """The commit to publish, and what to fetch to get it."""
        if self.ref_is_commit:
            assert self.ref is not None
            return self.ref, self.ref
        head = await self.git.remote_head(self.ref)
        return head.commit, head.refname

    async def _write_checkout(self, commit: str) -> None:
        staging = await asyncio.to_thread(self.volume.new_staging_directory, commit)
        try:
            await self.git.checkout(commit, staging)
            await asyncio.to_thread(self.volume.complete_staging, staging, commit)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.volume.discard, staging))
            raise
