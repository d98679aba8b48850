"""A smart-HTTP git server: `git http-backend` behind Apache, with basic auth."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path

from .apache import ApacheServer, shared_directory
from .processes import ProcessGroup

GIT_HTTP_BACKEND = Path("/usr/lib/git-core/git-http-backend")

MODULES = (
    "authz_user",  # Require valid-user
    "authn_core",  # AuthType, AuthName
    "authn_file",  # AuthUserFile
    "auth_basic",
    "alias",  # ScriptAlias
    "env",  # SetEnv
    "cgid",  # mod_cgi is for prefork; event needs the cgid daemon
)


def htpasswd_line(username: str, password: str) -> str:
    """Apache's unsalted {SHA} scheme: computed here, because `htpasswd -b`
    would put the password in a process's argv, which the tests scan for."""
    digest = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    return f"{username}:{{SHA}}{base64.b64encode(digest).decode()}\n"


def share_repository(repo: Path, repos_dir: Path) -> str:
    """Move the repository `repo` into `repos_dir` and leave a symlink in its
    place, so that whatever knows the old path (a clone pushing to it, say)
    keeps working while the server's user, who may not be able to enter the
    old location, reads it in `repos_dir`. Its name for `url_for`."""
    moved = repos_dir / repo.name
    shutil.move(repo, moved)
    repo.symlink_to(moved, target_is_directory=True)
    return repo.name


class GitHttpServer:
    """Serves every repository under `repos_dir` at /git/<path>, to
    `username` with the current password only. `repos_dir` must be readable
    by Apache's run user: see `shared_directory` and `share_repository`.
    Config, logs and Apache's output go to `base_dir`."""

    def __init__(
        self,
        processes: ProcessGroup,
        base_dir: Path,
        repos_dir: Path,
        username: str,
        password: str,
    ) -> None:
        self.username = username
        self.password = password
        self.repos_dir = repos_dir.resolve()
        # Read by Apache's children at each request, so not in base_dir.
        self._auth_dir: Path | None = shared_directory("git-http-auth-")
        self.htpasswd = self._auth_dir / "htpasswd"
        self._write_htpasswd(password)
        config = f"""\
SetEnv GIT_PROJECT_ROOT {self.repos_dir}
SetEnv GIT_HTTP_EXPORT_ALL 1
# Apache's children run as another user than the one owning the test's
# repositories, which git refuses unless the repository is declared safe.
SetEnv GIT_CONFIG_COUNT 1
SetEnv GIT_CONFIG_KEY_0 safe.directory
SetEnv GIT_CONFIG_VALUE_0 *
ScriptAlias /git/ {GIT_HTTP_BACKEND}/

<Location /git/>
    AuthType Basic
    AuthName "git"
    AuthBasicProvider file
    AuthUserFile {self.htpasswd}
    Require valid-user
</Location>
"""
        try:
            self.apache = ApacheServer(processes, base_dir, config, MODULES)
        except BaseException:
            self._remove_auth_dir()
            raise

    @property
    def port(self) -> int:
        return self.apache.port

    def url_for(self, name: str) -> str:
        """The clone URL of the repository at `repos_dir/name`."""
        return f"{self.apache.url}/git/{name}"

    def set_password(self, new: str) -> None:
        """Change the password; mod_authn_file reads the file at every
        request, so the next request already needs the new one."""
        self._write_htpasswd(new)
        self.password = new

    def _write_htpasswd(self, password: str) -> None:
        # Replaced in one rename, so no request sees a half-written file.
        staging = self.htpasswd.with_name(self.htpasswd.name + ".new")
        staging.write_text(htpasswd_line(self.username, password))
        staging.chmod(0o644)
        os.replace(staging, self.htpasswd)

    def requests(self) -> list[str]:
        """The access log: one line per HTTP request (a git fetch makes
        several), each written just after its response."""
        return self.apache.access_log_lines()

    def stop(self) -> None:
        """Stop Apache and remove the password file; idempotent."""
        self.apache.stop()
        self._remove_auth_dir()

    def _remove_auth_dir(self) -> None:
        auth_dir, self._auth_dir = self._auth_dir, None
        if auth_dir is not None:
            shutil.rmtree(auth_dir, ignore_errors=True)
