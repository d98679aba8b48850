"""A real OpenSSH server on a free loopback port, for git over ssh.

It has a configuration, host key and authorized_keys of its own, and logs
in the current user with the client key it generated; git runs on the
"remote" side as that user, so any repository path the test can read can
be cloned over ssh.
"""

from __future__ import annotations

import getpass
import os
import re
import subprocess
from pathlib import Path

from .net import free_port
from .processes import Process, ProcessGroup
from .wait import wait_until

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it needs an absolute path
PRIVSEP_DIR = Path("/run/sshd")


def generate_key(path: Path) -> Path:
    """A new ed25519 key pair: private key at `path` (mode 0400, which ssh
    insists on), public key at `path`.pub."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    path.chmod(0o400)
    return path


def public_key(private_key: Path) -> str:
    """`ssh-ed25519 AAAA...`: the key type and data, without the comment."""
    key_type, data = Path(f"{private_key}.pub").read_text().split()[:2]
    return f"{key_type} {data}"


class SshServer:
    """sshd accepting the current user with `client_key` only."""

    def __init__(
        self, processes: ProcessGroup, base_dir: Path, *, startup_timeout: float = 10.0
    ) -> None:
        base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir = base_dir
        self.port = free_port()
        self.user = getpass.getuser()
        self.host_key = generate_key(base_dir / "ssh_host_ed25519_key")
        self.client_key = generate_key(base_dir / "client_ed25519")
        self.authorized_keys = base_dir / "authorized_keys"
        self.authorized_keys.write_text(public_key(self.client_key) + "\n")
        self.config_path = base_dir / "sshd_config"
        self.config_path.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {base_dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\n"
            "UsePAM no\n"
            # The test's files are not laid out like a home directory.
            "StrictModes no\n"
            "PrintMotd no\n"
            "LogLevel VERBOSE\n"
        )
        # Debian's sshd chroots its unprivileged child here and will not
        # start without it; a fresh container has no /run/sshd.
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.process: Process = processes.start(
            [SSHD, "-D", "-e", "-f", str(self.config_path)], base_dir / "sshd.log"
        )
        try:
            wait_until(self._listening, startup_timeout, message=f"sshd on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _listening(self) -> bool:
        # sshd says so once it listens; probing the port instead would
        # leave an aborted connection in its log.
        if not self.process.running():
            raise AssertionError(
                f"sshd exited with code {self.process.popen.returncode}:\n{self.process.output()}"
            )
        pattern = rf"Server listening on 127\.0\.0\.1 port {self.port}\b"
        return re.search(pattern, self.process.output()) is not None

    def known_hosts_line(self) -> str:
        """This server's entry for a known_hosts file."""
        return f"[127.0.0.1]:{self.port} {public_key(self.host_key)}"

    def url_for(self, repo_path: Path) -> str:
        """An ssh:// URL of the repository at `repo_path` on this host."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{Path(os.path.abspath(repo_path))}"

    def output(self) -> str:
        return self.process.output()

    def running(self) -> bool:
        return self.process.running()

    def stop(self) -> None:
        self.process.stop()
