"""One scrape: fetch, parse, count failures, log what went wrong."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

from yarl import URL

from patterns_common.logsetup import fields

from .client import FetchError, StatusClient
from .families import ScrapeOutcome
from .status import NotStatusPage, StatusSnapshot, parse_status

log = logging.getLogger("httpd_adapter.scrape")

# /probe targets whose failure counts are remembered; the least recently
# scraped is forgotten first, so a stream of odd targets cannot grow memory.
MAX_TRACKED_TARGETS = 1024


class FailureCounts:
    """Failed scrapes per target, since the process started."""

    def __init__(self, limit: int = MAX_TRACKED_TARGETS) -> None:
        self._limit = limit
        self._counts: OrderedDict[str, int] = OrderedDict()

    def get(self, target: str) -> int:
        return self._counts.get(target, 0)

    def record(self, target: str, failed: bool) -> int:
        """Count this scrape; the target's total afterwards."""
        count = self._counts.pop(target, 0) + (1 if failed else 0)
        self._counts[target] = count
        if len(self._counts) > self._limit:
            self._counts.popitem(last=False)
        return count


class Scraper:
    def __init__(self, client: StatusClient) -> None:
        self._client = client
        self.failures = FailureCounts()

    async def scrape(
        self, url: URL, time_limit: float, host_override: str | None = None
    ) -> ScrapeOutcome:
        """Read `url`'s status page within `time_limit`. Never raises for
        anything the page or the network does: a failure is an outcome with
        no snapshot, counted and logged in one line."""
        target = str(url)
        started = time.perf_counter()
        snapshot: StatusSnapshot | None = None
        error: str | None = None
        try:
            snapshot = parse_status(await self._client.fetch(url, time_limit, host_override))
        except FetchError as exc:
            error = f"{exc.reason}: {exc}"
        except NotStatusPage as exc:
            error = f"not_status_page: {exc}; is the URL mod_status's, with ?auto?"
        duration = time.perf_counter() - started
        if error is not None:
            log.warning(
                "scrape failed",
                extra=fields(target=target, error=error, duration=round(duration, 4)),
            )
        elif snapshot is not None and snapshot.problems:
            log.warning(
                "status page has values that are not numbers; their metrics are left out",
                extra=fields(target=target, problems="; ".join(snapshot.problems)),
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("scraped", extra=fields(target=target, duration=round(duration, 4)))
        failed = error is not None or (snapshot is not None and bool(snapshot.problems))
        return ScrapeOutcome(snapshot, duration, self.failures.record(target, failed), error)
