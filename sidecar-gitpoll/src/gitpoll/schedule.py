"""When to sync next, and when to give up (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: the n-th consecutive failure waits a
    random time in [d/2, d], where d = first * 2**(n-1) capped at `cap`.
    The jitter keeps a fleet of pods from retrying in lockstep."""

    first: float
    cap: float

    def delay(self, failures: int, jitter: float) -> float:
        """`jitter` is a uniform random number in [0, 1)."""
        if failures < 1:
            raise ValueError("a backoff delay needs at least one failure")
        ceiling = min(self.cap, self.first * 2.0 ** min(failures - 1, 64))
        return ceiling / 2 + ceiling / 2 * jitter


def retry_backoff(period: float) -> Backoff:
    """Failed syncs retry quickly at first, never slower than a normal poll."""
    return Backoff(first=min(1.0, period), cap=period)


def next_delay(period: float, consecutive_failures: int, jitter: float) -> float:
    if consecutive_failures == 0:
        return period
    return retry_backoff(period).delay(consecutive_failures, jitter)


def failure_budget_spent(max_failures: int, consecutive_failures: int) -> bool:
    """`max_failures` -1 never gives up."""
    return max_failures > 0 and consecutive_failures >= max_failures
