"""Wiring: build the parts from the Config, run them, stop them in order."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from patterns_common import lifecycle
from patterns_common.logsetup import configure_logging, fields

from .config import Config
from .gitops import Credentials, Git
from .hooks import Hooks
from .publish import Volume
from .service import Cleaner, Poller, Schedule
from .syncer import Syncer

if TYPE_CHECKING:
    from .metrics import Metrics

# aiohttp (the ops server, --notify-url) and prometheus_client are imported
# only by the code that uses them: aiohttp adds about half a second of
# start-up and 11 MiB of memory that a --one-time run, or one without
# --http-bind, never needs; prometheus_client adds about 0.07 s (a quarter of
# the time before the first git command), which --one-time, serving nothing,
# never needs.
log = logging.getLogger("gitpoll")


def run(config: Config) -> int:
    configure_logging(config.log_format, config.log_level)
    return lifecycle.run(lambda stop: serve(config, stop))


def _credentials(config: Config) -> Credentials:
    return Credentials(
        username=config.username,
        password_file=config.password_file,
        password=config.remote.url_password,
        ssh_key_file=config.ssh_key_file,
        known_hosts_file=config.known_hosts_file,
    )


async def serve(config: Config, stop: asyncio.Event) -> int:
    log.info("starting", extra=fields(**config.redacted()))
    volume = Volume(config.root, config.link)
    git = Git(
        volume.git_dir,
        config.remote,
        _credentials(config),
        depth=config.depth,
        timeout=config.timeout,
    )
    if config.one_time:
        return await _sync_once(config, volume, git, stop)
    return await _keep_in_sync(config, volume, git, stop)


def _hooks(config: Config, volume: Volume, metrics: Metrics | None) -> Hooks:
    return Hooks(
        metrics,
        exec_command=config.exec_on_sync,
        exec_timeout=config.exec_timeout,
        checkout_of=volume.checkout_path,
        notify_url=config.notify_url,
        notify_timeout=config.notify_timeout,
        ref=config.ref,
    )


def _poller(
    config: Config,
    git: Git,
    volume: Volume,
    metrics: Metrics | None,
    lock: asyncio.Lock,
    on_publish: Callable[[str], None],
) -> Poller:
    return Poller(
        Syncer(git, volume, config.ref, config.ref_is_commit),
        Schedule(config.period, config.one_time, config.max_failures, config.ref_is_commit),
        metrics,
        lock,
        ref_label=config.ref or "HEAD",
        on_publish=on_publish,
    )


async def _sync_once(config: Config, volume: Volume, git: Git, stop: asyncio.Event) -> int:
    """--one-time: sync, run the hooks once, exit. Nothing is served, so no
    metrics are kept (nor prometheus_client imported)."""
    hooks = _hooks(config, volume, None)
    poller = _poller(config, git, volume, None, asyncio.Lock(), on_publish=lambda _commit: None)
    code = await poller.run(stop)
    if code == lifecycle.EXIT_OK and poller.status.published:
        await hooks.run_once(poller.status.published)
    await hooks.close()
    return code


async def _keep_in_sync(config: Config, volume: Volume, git: Git, stop: asyncio.Event) -> int:
    from .metrics import Metrics

    metrics = Metrics()
    lock = asyncio.Lock()
    cleaner = Cleaner(volume, git, lock, metrics, config.worktree_grace, config.gc_interval)
    hooks = _hooks(config, volume, metrics)

    def on_publish(commit: str) -> None:
        cleaner.wake()
        hooks.submit(commit)

    poller = _poller(config, git, volume, metrics, lock, on_publish)

    http_runner = None
    if config.http_bind is not None:
        from patterns_common.ops_http import start_server

        from .http import build_app

        app = build_app(poller.status, metrics, poller.trigger, config.webhook_secret_file)
        try:
            http_runner = await start_server(app, config.http_bind)
        except OSError as exc:
            log.error(
                "cannot listen for HTTP",
                extra=fields(address=str(config.http_bind), error=exc.strerror),
            )
            return lifecycle.EXIT_STARTUP

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, poller.trigger, "SIGHUP")
    background = [asyncio.create_task(cleaner.run()), *hooks.start()]
    try:
        code = await poller.run(stop)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if http_runner is not None:
            await http_runner.cleanup()
        await hooks.close()
    log.info("stopped", extra=fields(exit_code=code))
    return code
