"""The long-running parts: the sync loop and the cleaner of old checkouts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from patterns_common.lifecycle import EXIT_FAILURE, EXIT_OK
from patterns_common.logsetup import fields

from .errors import SyncError
from .gitops import Git
from .publish import Volume
from .schedule import failure_budget_spent, next_delay
from .syncer import Syncer, SyncResult

if TYPE_CHECKING:
    from .metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Status:
    """What the health endpoints report."""

    published: str | None = None
    consecutive_failures: int = 0
    last_success: float | None = None
    last_error: str | None = None
    loop_alive: bool = True


@dataclass(frozen=True, slots=True)
class Schedule:
    period: float
    one_time: bool
    max_failures: int
    ref_is_commit: bool


class Poller:
    """Syncs every period, at once when triggered, with backoff after failures.

    Triggers that arrive while a sync runs are coalesced into one follow-up
    sync. The sync itself runs under `lock`, which the cleaner also takes, so
    git never collects garbage while a fetch is writing objects. `metrics` is
    None when nothing could read them (--one-time)."""

    def __init__(
        self,
        syncer: Syncer,
        schedule: Schedule,
        metrics: Metrics | None,
        lock: asyncio.Lock,
        ref_label: str,
        on_publish: Callable[[str], None],
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._syncer = syncer
        self._schedule = schedule
        self._metrics = metrics
        self._lock = lock
        self._ref_label = ref_label
        self._on_publish = on_publish
        self._jitter = jitter
        self._wake = asyncio.Event()
        self.status = Status(published=syncer.volume.published_commit())

    def trigger(self, source: str) -> None:
        log.debug("sync requested", extra=fields(source=source))
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> int:
        try:
            return await self._loop(stop)
        finally:
            self.status.loop_alive = False

    async def _loop(self, stop: asyncio.Event) -> int:
        schedule = self._schedule
        while True:
            self._wake.clear()
            succeeded = await _unless_stopped(self._sync_once(), stop)
            if succeeded is None:
                if schedule.one_time:
                    # An init container stopped half-way has published nothing.
                    log.error("stopped before the one-time sync finished")
                    return EXIT_FAILURE
                return EXIT_OK
            if schedule.one_time:
                return EXIT_OK if succeeded else EXIT_FAILURE
            failures = self.status.consecutive_failures
            if failure_budget_spent(schedule.max_failures, failures):
                log.error(
                    "giving up after consecutive failed syncs",
                    extra=fields(consecutive_failures=failures, max_failures=schedule.max_failures),
                )
                return EXIT_FAILURE
            if succeeded and schedule.ref_is_commit:
                log.info("the ref is a commit id: it cannot move, so polling stops")
                await stop.wait()
                return EXIT_OK
            delay = next_delay(schedule.period, failures, self._jitter())
            if await _wait_for_any(self._wake, stop, delay) is stop:
                return EXIT_OK

    async def _sync_once(self) -> bool:
        """One sync, logged and counted; whether it succeeded."""
        started = time.monotonic()
        async with self._lock:
            try:
                result = await self._syncer.sync()
            except SyncError as exc:
                return self._record_failure(exc.reason, exc.message, started)
            except Exception as exc:  # a bug, not an expected failure: keep the traceback
                log.exception("sync failed unexpectedly")
                return self._record_failure("internal", f"unexpected {exc!r}", started)
        self._record_success(result, time.monotonic() - started)
        return True

    def _record_success(self, result: SyncResult, duration: float) -> None:
        metrics, status = self._metrics, self.status
        now = time.time()
        if metrics is not None:
            metrics.syncs.labels(result.result).inc()
            metrics.sync_duration.labels(result.result).observe(duration)
            metrics.last_success.set(now)
            metrics.consecutive_failures.set(0)
            metrics.commit.labels(self._ref_label).info({"commit": result.commit})
            if result.result != "noop":
                metrics.last_publish.set(now)
        status.consecutive_failures = 0
        status.last_success = now
        status.last_error = None
        status.published = result.commit
        values: dict[str, object] = {
            "result": result.result,
            "commit": result.commit,
            "duration": duration,
            "ref": self._ref_label,
        }
        if result.result == "noop":
            log.info("already up to date", extra=fields(**values))
            return
        log.info(
            "published a new commit", extra=fields(**values, previous=result.previous or "none")
        )
        self._on_publish(result.commit)

    def _record_failure(self, reason: str, message: str, started: float) -> Literal[False]:
        duration = time.monotonic() - started
        metrics, status = self._metrics, self.status
        status.consecutive_failures += 1
        status.last_error = message
        if metrics is not None:
            metrics.syncs.labels("error").inc()
            metrics.sync_errors.labels(reason).inc()
            metrics.sync_duration.labels("error").observe(duration)
            metrics.consecutive_failures.set(status.consecutive_failures)
        log.error(
            "sync failed",
            extra=fields(
                result="error",
                reason=reason,
                error=message,
                duration=duration,
                consecutive_failures=status.consecutive_failures,
                serving=status.published or "nothing yet",
            ),
        )
        return False


class Cleaner:
    """Deletes retired checkouts once their grace period is over, whether or
    not another sync happens, then collects git garbage (at most once per
    `gc_interval`) so the volume does not grow without bound."""

    def __init__(
        self,
        volume: Volume,
        git: Git,
        lock: asyncio.Lock,
        metrics: Metrics,
        grace: float,
        gc_interval: float,
    ) -> None:
        self._volume = volume
        self._git = git
        self._lock = lock
        self._metrics = metrics
        self._grace = grace
        self._gc_interval = gc_interval
        self._wake = asyncio.Event()
        self._gc_due = False
        self._last_gc = -float("inf")

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self._wait_for_work()
                await self._remove_expired()
                await self._collect_garbage_if_due()
            except (OSError, SyncError) as exc:
                message = exc.message if isinstance(exc, SyncError) else str(exc)
                log.warning("cleanup failed; will retry", extra=fields(error=message))
                await asyncio.sleep(max(self._grace, 1.0))

    async def _wait_for_work(self) -> None:
        deadlines = []
        expiry = await asyncio.to_thread(self._volume.next_expiry, self._grace)
        if expiry is not None:
            deadlines.append(expiry - time.time())
        if self._gc_due:
            deadlines.append(self._last_gc + self._gc_interval - time.monotonic())
        timeout = max(0.0, min(deadlines)) if deadlines else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _remove_expired(self) -> None:
        async with self._lock:
            moved = await asyncio.to_thread(self._volume.move_expired_to_trash, self._grace)
        if not moved:
            return
        await asyncio.to_thread(self._volume.empty_trash, moved)
        self._metrics.checkouts_removed.inc(len(moved))
        log.info("removed retired checkouts", extra=fields(count=len(moved)))
        self._gc_due = True

    async def _collect_garbage_if_due(self) -> None:
        if not self._gc_due or time.monotonic() - self._last_gc < self._gc_interval:
            return
        async with self._lock:
            started = time.monotonic()
            await self._git.collect_garbage()
        self._last_gc = time.monotonic()
        self._gc_due = False
        log.info("collected git garbage", extra=fields(duration=self._last_gc - started))


async def _wait_for_any(wake: asyncio.Event, stop: asyncio.Event, delay: float) -> object:
    """Whichever event is set first (`stop` winning ties), or None on timeout."""
    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
    try:
        await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if stop.is_set():
        return stop
    return wake if wake.is_set() else None


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """The result of `work`, or None when `stop` is set first (the work is
    then cancelled, which kills any git command it was running)."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        stopper.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
