"""The layout on the shared volume, and the atomic swap that publishes.

    ROOT/.git/                   the repository (gitpoll's alone)
    ROOT/.worktrees/<sha>/       one complete checkout per published commit
    ROOT/.worktrees/.tmp-*       a checkout being written (never published)
    ROOT/.worktrees/.trash-*     an old checkout being deleted
    ROOT/<link> -> .worktrees/<sha>

The contract shared with git-sync: basename(readlink(ROOT/<link>)) is the
full commit id. A checkout is written under a staging name and renamed to
`<sha>` only when complete, so `.worktrees/<sha>` existing means complete;
the link is then replaced with rename(2), so every lookup through it lands
in one complete commit. Everything here is synchronous file-system work:
callers run it in a thread when it may be slow.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from .config import is_full_sha
from .errors import SyncError

WORKTREES = ".worktrees"
_STAGING = ".tmp-"
_TRASH = ".trash-"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class VolumeBusy(SyncError):
    def __init__(self, root: Path) -> None:
        super().__init__(
            "volume_busy",
            f"another gitpoll (or git commands it left running) is using {root}",
        )


class Volume:
    def __init__(self, root: Path, link: str) -> None:
        self.root = root
        self.link = root / link
        self.git_dir = root / ".git"
        self.worktrees = root / WORKTREES
        self._directory_mode = 0o777 & ~_current_umask()
        self._lock_fd: int | None = None

    # -- start-up ------------------------------------------------------------

    def lock(self) -> int:
        """Take the volume for this process; the descriptor is kept open (and
        handed to git children) for the life of the process."""
        if self._lock_fd is not None:
            return self._lock_fd
        self.root.mkdir(parents=True, exist_ok=True)
        # The directory itself is locked: no lock file to leave behind, and no
        # descriptor open for writing that would stop a remount read-only.
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise VolumeBusy(self.root) from None
            raise
        self._lock_fd = fd
        return fd

    def remove_leftovers(self) -> None:
        """Delete what a killed process left: staging and trash directories
        (never published, or already retired) and half-made links."""
        self.worktrees.mkdir(exist_ok=True)
        for entry in self.worktrees.iterdir():
            if entry.name.startswith((_STAGING, _TRASH)):
                shutil.rmtree(entry, ignore_errors=True)
        for entry in self.root.glob(f".{self.link.name}.tmp-*"):
            entry.unlink(missing_ok=True)

    # -- reading the published state -----------------------------------------

    def published_commit(self) -> str | None:
        """The commit ROOT/<link> points at, if it points at a checkout."""
        try:
            target = os.readlink(self.link)
        except (FileNotFoundError, OSError):
            return None
        commit = os.path.basename(target.rstrip("/"))
        if is_full_sha(commit) and self.has_checkout(commit):
            return commit
        return None

    def checkout_path(self, commit: str) -> Path:
        return self.worktrees / commit

    def has_checkout(self, commit: str) -> bool:
        return self.checkout_path(commit).is_dir()

    # -- publishing ----------------------------------------------------------

    def new_staging_directory(self, commit: str) -> Path:
        self.worktrees.mkdir(exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{_STAGING}{commit[:12]}-", dir=self.worktrees))
        # mkdtemp makes it private; the web server reads it under another uid.
        path.chmod(self._directory_mode)
        return path

    def complete_staging(self, staging: Path, commit: str) -> Path:
        """Give a fully written checkout its final name."""
        final = self.checkout_path(commit)
        os.rename(staging, final)
        return final

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def publish(self, commit: str) -> None:
        """Point the link at `.worktrees/<commit>` in one rename(2)."""
        if self.link.exists() and not self.link.is_symlink():
            raise SyncError(
                "volume",
                f"publish: {self.link} exists and is not a symlink; "
                "move it away so gitpoll can manage it",
            )
        previous = self.published_commit()
        temporary = self.root / f".{self.link.name}.tmp-{os.getpid()}"
        temporary.unlink(missing_ok=True)
        os.symlink(os.path.join(WORKTREES, commit), temporary)
        os.replace(temporary, self.link)
        self._sync_directory(self.root)
        if previous is not None and previous != commit:
            # The retired checkout's mtime starts its grace period.
            os.utime(self.checkout_path(previous))

    def _sync_directory(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- retiring old checkouts ----------------------------------------------

    def retired_checkouts(self) -> list[tuple[Path, float]]:
        """Checkouts other than the published one, with the time each was retired."""
        current = self.published_commit()
        retired = []
        try:
            entries = list(self.worktrees.iterdir())
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name == current or entry.name.startswith((_STAGING, _TRASH)):
                continue
            try:
                retired.append((entry, entry.lstat().st_mtime))
            except FileNotFoundError:
                continue
        return retired

    def next_expiry(self, grace: float) -> float | None:
        """When (wall-clock) the next retired checkout passes its grace period."""
        times = [mtime + grace for _, mtime in self.retired_checkouts()]
        return min(times) if times else None

    def move_expired_to_trash(self, grace: float, now: float | None = None) -> list[Path]:
        """Rename checkouts past their grace period out of the way (fast and
        atomic, so it can hold the sync lock); `empty_trash` deletes them."""
        now = time.time() if now is None else now
        moved = []
        for path, retired_at in self.retired_checkouts():
            if retired_at + grace <= now:
                trash = path.with_name(f"{_TRASH}{path.name}-{os.getpid()}-{time.monotonic_ns()}")
                os.rename(path, trash)
                moved.append(trash)
        return moved

    def empty_trash(self, paths: list[Path]) -> None:
        for path in paths:
            shutil.rmtree(path, ignore_errors=True)
