"""Why a sync failed, in words and as a metric label (pure).

Every expected failure becomes a SyncError with a short `reason` (the value
of the `reason` label of `gitpoll_sync_errors_total`) and a one-line
message naming the cause. git's own wording is matched with LC_ALL=C set on
every git command, so the patterns below are stable.
"""

from __future__ import annotations

import errno

from .remote import redact_url

_GIT_PATTERNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "volume_full",
        "the volume is full",
        ("No space left on device", "Disk quota exceeded"),
    ),
    ("volume_read_only", "the volume is read-only", ("Read-only file system",)),
    (
        "host_key",
        "the server's ssh host key is not in the known-hosts file or has changed",
        ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED"),
    ),
    (
        "ssh_key",
        "ssh cannot use the private key file (mount it with mode 0400 and check its format)",
        ("UNPROTECTED PRIVATE KEY FILE", "Load key", "invalid format"),
    ),
    (
        "auth",
        "the repository refused the credentials",
        (
            "Authentication failed",
            "could not read Username",
            "could not read Password",
            "Permission denied (publickey",
            "Permission denied, please try again",
            "HTTP Basic: Access denied",
            "returned error: 401",
            "returned error: 403",
        ),
    ),
    (
        "volume_permission",
        "permission denied on the volume; check its owner or the pod's fsGroup",
        ("Permission denied", "insufficient permission"),
    ),
    (
        "tls",
        "the TLS connection to the repository failed",
        ("SSL certificate problem", "server certificate verification failed", "SSL_ERROR"),
    ),
    (
        "unreachable",
        "cannot reach the repository's server",
        (
            "Could not resolve host",
            "Could not resolve hostname",
            "Name or service not known",
            "Temporary failure in name resolution",
            "Connection refused",
            "Failed to connect",
            "Couldn't connect to server",
            "Connection timed out",
            "No route to host",
            "Network is unreachable",
            "Connection reset",
            "Connection closed by",
            "the remote end hung up unexpectedly",
        ),
    ),
    (
        "not_found",
        "the repository does not exist (or is not a git repository)",
        (
            "does not appear to be a git repository",
            "Repository not found",
            "returned error: 404",
            # git's own wording for a smart-HTTP 404: "repository '<url>' not found"
            "' not found",
            "not a git repository",
        ),
    ),
    ("ref_not_found", "the ref does not exist on the remote", ("couldn't find remote ref",)),
)


class SyncError(Exception):
    """An expected sync failure: a label for metrics and one line for logs."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _salient_line(stderr: str) -> str:
    """The line of git's output that says what went wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for prefix in ("fatal:", "error:"):
        for line in lines:
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
    return lines[-1] if lines else "no output"


def classify_git_failure(operation: str, stderr: str, exit_code: int) -> SyncError:
    detail = redact_url(_salient_line(stderr))
    for reason, summary, needles in _GIT_PATTERNS:
        if any(needle in stderr for needle in needles):
            return SyncError(reason, f"{operation}: {summary}: {detail}")
    return SyncError("git", f"{operation}: git exited with code {exit_code}: {detail}")


def classify_os_error(operation: str, exc: OSError) -> SyncError:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SyncError("volume_full", f"{operation}: the volume is full{where}")
    if exc.errno == errno.EROFS:
        return SyncError("volume_read_only", f"{operation}: the volume is read-only{where}")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return SyncError(
            "volume_permission",
            f"{operation}: permission denied{where}; check the volume's owner or fsGroup",
        )
    return SyncError("volume", f"{operation}: {exc.strerror or exc}{where}")
