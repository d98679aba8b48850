"""GitHub-style webhook signatures: `X-Hub-Signature-256: sha256=<hex>` (pure)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The header value a sender computes for `body`."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_problem(secret: bytes, body: bytes, header: str | None) -> str | None:
    """None when `header` is a valid signature of `body`, else why not.
    The comparison takes the same time wherever the strings differ."""
    if not secret:
        return "the webhook secret file is empty"
    if header is None:
        return f"no {SIGNATURE_HEADER} header"
    if not header.startswith(_PREFIX):
        return f"{SIGNATURE_HEADER} is not of the form sha256=<hex>"
    expected = sign(secret, body).encode("ascii")
    if not hmac.compare_digest(expected, header.strip().lower().encode("utf-8", "replace")):
        return "signature mismatch"
    return None
