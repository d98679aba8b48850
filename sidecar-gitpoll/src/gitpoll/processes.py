"""Child processes are started in their own process group, so that killing
the group also stops what they started (ssh, git-remote-https, a hook's
own children)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal


async def kill_process_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()
