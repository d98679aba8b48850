"""The client side of PostgreSQL password authentication, pure.

SCRAM-SHA-256 (RFC 5802/7677, without channel binding, as PostgreSQL does
it) and the older MD5 scheme. The ambassador uses these to log in to the
server itself when a route injects credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata

SCRAM_SHA_256 = "SCRAM-SHA-256"
_GS2_HEADER = b"n,,"  # no channel binding; the user name is taken from the start-up packet
MIN_ITERATIONS = 4096


class AuthenticationFailed(Exception):
    """The exchange cannot go on; the message says why (never the password)."""


def saslprep(password: str) -> str:
    """RFC 4013 preparation, falling back to the raw password where it is not
    a valid string, exactly as PostgreSQL does (so both sides agree)."""
    if password.isascii():
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in password
        if not stringprep.in_table_b1(ch)
    )
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized:
        return password
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    if any(check(ch) for ch in normalized for check in prohibited):
        return password
    has_randalcat = any(stringprep.in_table_d1(ch) for ch in normalized)
    if has_randalcat and (
        any(stringprep.in_table_d2(ch) for ch in normalized)
        or not stringprep.in_table_d1(normalized[0])
        or not stringprep.in_table_d1(normalized[-1])
    ):
        return password
    return normalized


def _parse_attributes(message: bytes) -> dict[str, str]:
    try:
        text = message.decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed("the server's SCRAM message is not ASCII") from None
    attributes: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or len(name) != 1:
            raise AuthenticationFailed(f"malformed SCRAM attribute {part[:20]!r}")
        attributes[name] = value
    return attributes


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


class ScramSha256Client:
    """One SCRAM-SHA-256 exchange: `client_first()`, then `client_final()`
    with the server's first message, then `verify_server_final()`."""

    def __init__(self, password: str, nonce: str | None = None) -> None:
        self._password = saslprep(password).encode()
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self._first_bare = f"n=,r={self._nonce}".encode()
        self._server_signature: bytes | None = None

    def client_first(self) -> bytes:
        return _GS2_HEADER + self._first_bare

    def client_final(self, server_first: bytes) -> bytes:
        attributes = _parse_attributes(server_first)
        try:
            nonce, salt_text, iterations_text = attributes["r"], attributes["s"], attributes["i"]
            salt = base64.b64decode(salt_text, validate=True)
            iterations = int(iterations_text)
        except (KeyError, ValueError):
            raise AuthenticationFailed("the server's SCRAM challenge is incomplete") from None
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise AuthenticationFailed("the server's SCRAM nonce does not extend ours")
        if iterations < MIN_ITERATIONS:
            raise AuthenticationFailed(f"the server asks for only {iterations} SCRAM iterations")
        salted = hashlib.pbkdf2_hmac("sha256", self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = b"c=" + base64.b64encode(_GS2_HEADER) + b",r=" + nonce.encode()
        auth_message = self._first_bare + b"," + server_first + b"," + without_proof
        client_signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def verify_server_final(self, server_final: bytes) -> None:
        """Raises unless the server proved that it knows the password too."""
        attributes = _parse_attributes(server_final)
        if "e" in attributes:
            raise AuthenticationFailed(f"the server rejected the SCRAM proof: {attributes['e']}")
        if self._server_signature is None:
            raise AuthenticationFailed("SCRAM final message before the challenge")
        try:
            signature = base64.b64decode(attributes.get("v", ""), validate=True)
        except ValueError:
            raise AuthenticationFailed("the server's SCRAM signature is not base64") from None
        if not hmac.compare_digest(signature, self._server_signature):
            raise AuthenticationFailed("the server's SCRAM signature is wrong")


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """PostgreSQL's MD5 response: "md5" + md5(md5(password + user) + salt)."""
    inner = hashlib.md5(password.encode() + user.encode(), usedforsecurity=False).hexdigest()
    outer = hashlib.md5(inner.encode() + salt, usedforsecurity=False).hexdigest()
    return b"md5" + outer.encode()
