"""Process lifecycle: the event loop, stop signals and exit codes.

Exit codes shared by the services: 0 clean stop (SIGTERM included), 1 a
runtime failure, 2 a usage or configuration error, 3 a start-up failure
(a port already taken, a volume that cannot be used).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Coroutine
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_STARTUP = 3

log = logging.getLogger(__name__)


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(
    main: Callable[[asyncio.Event], Coroutine[Any, Any, int]], *, use_uvloop: bool = False
) -> int:
    """Run `main(stop)` until it returns an exit code.

    SIGTERM and SIGINT set `stop`; `main` is expected to wind down and
    return promptly. A second signal means the operator has lost patience:
    the process exits at once with code 1.
    """

    async def supervised() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: signal.Signals) -> None:
            if stop.is_set():
                log.warning("second %s: exiting immediately", signum.name)
                os._exit(EXIT_FAILURE)
            log.info("%s received: stopping", signum.name)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        return await main(stop)

    with asyncio.Runner(loop_factory=_loop_factory(use_uvloop)) as runner:
        return runner.run(supervised())
