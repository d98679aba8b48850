"""Podman with a configuration and a storage of its own.

Every podman call of `make test-containers` goes through `Podman`, which
points podman at a containers.conf and a storage.conf written into the run's
state directory (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF). Images,
containers, volumes, secrets and networks therefore live in that directory
only: the machine's own podman configuration and storage are never read or
touched, and removing the directory at the end removes what the run made.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Why each setting (all of them were needed, or chosen, on a sandboxed CI VM
# without systemd, with a capped RLIMIT_NOFILE and with Debian's podman 4.3):
CONTAINERS_CONF = """\
# Written by make test-containers (lab/containers/engine.py) for its own podman.
[containers]
# Podman asks the runtime for RLIMIT_NOFILE=1048576 by default; where the
# machine caps the hard limit lower (sandboxes, CI runners) every container
# then fails with "error setting rlimits ... operation not permitted".
# No default ulimits: containers inherit podman's own limits.
default_ulimits = []
# Logs in files that `podman logs` reads back: no journald needed.
log_driver = "k8s-file"

[engine]
# crun is podman's first choice when installed; runc is the runtime this
# check is known to work with, here and in CI.
runtime = "runc"
# No systemd to delegate cgroups to or to read events from: podman manages the
# cgroups itself, and writes its events to a file.
cgroup_manager = "cgroupfs"
events_logger = "file"
# Podman's run-time state (locks, the events file), next to the storage.
tmp_dir = "{state}/run/libpod"

[network]
# Networks (the one this run creates, and the default network `podman kube
# play` would otherwise create in /etc/containers/networks) stay in here.
network_config_dir = "{state}/networks"
"""

STORAGE_CONF = """\
# Written by make test-containers (lab/containers/engine.py) for its own podman.
[storage]
# overlay needs a kernel overlayfs on the state directory's file system; vfs
# works everywhere, but copies every layer in full (slow, and GBs of disk).
driver = "{driver}"
graphroot = "{state}/storage"
runroot = "{state}/run/storage"
"""

DEFAULT_TIMEOUT = 120.0


class PodmanError(Exception):
    """A podman command failed; the message has its last lines of output."""


def _tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) or "no output"


@dataclass(frozen=True, slots=True)
class Podman:
    state: Path
    """The run's state directory: configuration, storage, networks."""
    storage_driver: str = "overlay"
    program: str = "podman"
    env: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        containers_conf = self.state / "containers.conf"
        storage_conf = self.state / "storage.conf"
        containers_conf.write_text(CONTAINERS_CONF.format(state=self.state))
        storage_conf.write_text(STORAGE_CONF.format(state=self.state, driver=self.storage_driver))
        env = {
            **os.environ,
            "CONTAINERS_CONF": str(containers_conf),
            "CONTAINERS_STORAGE_CONF": str(storage_conf),
        }
        # A registries.conf of the user's must not send a short name anywhere.
        env.pop("CONTAINERS_REGISTRIES_CONF", None)
        object.__setattr__(self, "env", env)

    def shell_env(self) -> str:
        """What to export to use this podman by hand (printed with --keep)."""
        return (
            f"export CONTAINERS_CONF={self.env['CONTAINERS_CONF']} "
            f"CONTAINERS_STORAGE_CONF={self.env['CONTAINERS_STORAGE_CONF']}"
        )

    def run(
        self,
        *args: str,
        stdin: str | bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.program, *args]
        try:
            result = subprocess.run(
                argv,
                input=stdin.decode() if isinstance(stdin, bytes) else stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=dict(self.env),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PodmanError(f"podman {' '.join(args[:3])}: no answer in {timeout:g}s") from None
        if check and result.returncode != 0:
            raise PodmanError(
                f"podman {' '.join(args[:3])} failed (exit {result.returncode}):\n"
                + _tail(result.stderr or result.stdout)
            )
        return result

    def output(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self.run(*args, timeout=timeout).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.output(*args, "--format=json"))

    def to_log(self, log: Path, *args: str, timeout: float) -> None:
        """Run with all output to `log` (builds: long, and only read on failure)."""
        with log.open("w") as out:
            try:
                result = subprocess.run(
                    [self.program, *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    env=dict(self.env),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise PodmanError(
                    f"podman {' '.join(args[:2])}: not done in {timeout:g}s (log: {log})"
                ) from None
        if result.returncode != 0:
            raise PodmanError(
                f"podman {' '.join(args[:2])} failed (exit {result.returncode}); "
                f"{log} ends with:\n{_tail(log.read_text(errors='replace'), 25)}"
            )

    def version(self) -> str:
        return self.output("version", "--format={{.Client.Version}}").strip()

    def exists(self, kind: str, name: str) -> bool:
        """`podman <kind> exists NAME` (kind: image, pod, container, volume...)."""
        return self.run(kind, "exists", name, check=False).returncode == 0
