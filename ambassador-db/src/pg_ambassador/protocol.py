"""The PostgreSQL wire format of the start-up phase, as pure functions on bytes.

The ambassador parses only what it must: the client's first packets
(SSLRequest, GSSENCRequest, CancelRequest, StartupMessage) and the server's
messages until ReadyForQuery. After that it relays bytes without looking.
Everything here maps bytes to values and back, so it can be fuzzed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

PROTOCOL_MAJOR = 3
SSL_REQUEST_CODE = 80877103  # 1234 << 16 | 5679
GSSENC_REQUEST_CODE = 80877104  # 1234 << 16 | 5680
CANCEL_REQUEST_CODE = 80877102  # 1234 << 16 | 5678

MAX_STARTUP_PACKET = 10_000
"""PostgreSQL's own limit (MAX_STARTUP_PACKET_LENGTH): anything longer is refused."""
MIN_CANCEL_SECRET, MAX_CANCEL_SECRET = 4, 256
"""Protocol 3.0 has 4-byte secrets; 3.2 allows up to 256 bytes."""
MAX_SERVER_STARTUP_MESSAGE = 1 << 20
"""Limit for one server message before ReadyForQuery (errors, parameters, SASL)."""

# Authentication request codes ('R' messages).
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

_INT32 = struct.Struct("!i")
_TWO_INT32 = struct.Struct("!ii")


class ProtocolViolation(ValueError):
    """Bytes that break the protocol; the message says how."""


@dataclass(frozen=True, slots=True)
class SSLRequest:
    pass


@dataclass(frozen=True, slots=True)
class GSSENCRequest:
    pass


@dataclass(frozen=True, slots=True)
class CancelRequest:
    pid: int
    secret: bytes

    @property
    def key(self) -> tuple[int, bytes]:
        return (self.pid, self.secret)


@dataclass(frozen=True, slots=True)
class StartupMessage:
    version: int
    parameters: Mapping[str, str]

    @property
    def user(self) -> str:
        return self.parameters["user"]

    @property
    def database(self) -> str:
        """As the server does: without `database`, the user name."""
        return self.parameters.get("database") or self.parameters["user"]


StartupPacket = SSLRequest | GSSENCRequest | CancelRequest | StartupMessage


def startup_packet_length(header: bytes | bytearray | memoryview) -> int:
    """The length a start-up packet's first four bytes announce (it counts
    itself), refused at once when outside what PostgreSQL itself accepts."""
    length: int = _INT32.unpack_from(header)[0]
    if not 8 <= length <= MAX_STARTUP_PACKET:
        raise ProtocolViolation(
            f"invalid start-up packet length {length} (must be 8 to {MAX_STARTUP_PACKET})"
        )
    return length


def split_startup_packet(buffer: bytes | bytearray) -> tuple[StartupPacket, int] | None:
    """The first complete start-up packet in `buffer` and its length, or None
    while more bytes are needed."""
    if len(buffer) < 4:
        return None
    length = startup_packet_length(buffer)
    if len(buffer) < length:
        return None
    return parse_startup_packet(bytes(buffer[:length])), length


def parse_startup_packet(packet: bytes) -> StartupPacket:
    """Classify one whole start-up packet (length prefix included)."""
    length = startup_packet_length(packet)
    if length != len(packet):
        raise ProtocolViolation(f"start-up packet of {len(packet)} bytes announces {length}")
    (code,) = _INT32.unpack_from(packet, 4)
    if code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
        if length != 8:
            raise ProtocolViolation(f"encryption request of {length} bytes (must be 8)")
        return SSLRequest() if code == SSL_REQUEST_CODE else GSSENCRequest()
    if code == CANCEL_REQUEST_CODE:
        secret = packet[12:]
        if len(packet) < 12 or not MIN_CANCEL_SECRET <= len(secret) <= MAX_CANCEL_SECRET:
            raise ProtocolViolation(f"cancel request of {length} bytes")
        (pid,) = _INT32.unpack_from(packet, 8)
        return CancelRequest(pid, secret)
    major = code >> 16
    if major != PROTOCOL_MAJOR:
        raise ProtocolViolation(
            f"unsupported frontend protocol {major}.{code & 0xFFFF}: "
            f"server supports {PROTOCOL_MAJOR}.0 to {PROTOCOL_MAJOR}.2"
        )
    return StartupMessage(code, _parse_parameters(packet[8:]))


def _parse_parameters(body: bytes) -> dict[str, str]:
    # name\0value\0 ... \0: without the list's terminator, every field ends in \0.
    if not body.endswith(b"\0") or (len(body) > 1 and not body.endswith(b"\0\0")):
        raise ProtocolViolation("start-up parameters are not terminated")
    fields = body[:-2].split(b"\0") if len(body) > 1 else []
    if len(fields) % 2:
        raise ProtocolViolation("start-up parameter without a value")
    parameters: dict[str, str] = {}
    for raw_name, raw_value in zip(fields[::2], fields[1::2], strict=True):
        try:
            name, value = raw_name.decode(), raw_value.decode()
        except UnicodeDecodeError:
            raise ProtocolViolation("start-up parameter is not valid UTF-8") from None
        if not name:
            raise ProtocolViolation("start-up parameter with an empty name")
        parameters[name] = value
    if not parameters.get("user"):
        raise ProtocolViolation("no PostgreSQL user name specified in startup packet")
    return parameters


def encode_startup_message(parameters: Mapping[str, str], version: int = 196608) -> bytes:
    body = b"".join(
        name.encode() + b"\0" + value.encode() + b"\0" for name, value in parameters.items()
    )
    body += b"\0"
    return _INT32.pack(len(body) + 8) + _INT32.pack(version) + body


def encode_ssl_request() -> bytes:
    return _TWO_INT32.pack(8, SSL_REQUEST_CODE)


def encode_gssenc_request() -> bytes:
    return _TWO_INT32.pack(8, GSSENC_REQUEST_CODE)


def encode_cancel_request(pid: int, secret: bytes) -> bytes:
    return _TWO_INT32.pack(12 + len(secret), CANCEL_REQUEST_CODE) + _INT32.pack(pid) + secret


# -- messages with a type byte -----------------------------------------------


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _INT32.pack(len(body) + 4) + body


def split_message(
    buffer: bytes | bytearray, start: int = 0, max_length: int = MAX_SERVER_STARTUP_MESSAGE
) -> tuple[bytes, int, int] | None:
    """(type byte, body start, end) of the message at `start`, or None while
    it is incomplete. A length outside 4..max_length is a violation."""
    if len(buffer) - start < 5:
        return None
    (length,) = _INT32.unpack_from(buffer, start + 1)
    if not 4 <= length <= max_length:
        raise ProtocolViolation(f"message length {length} out of range (4 to {max_length})")
    end = start + 1 + length
    if len(buffer) < end:
        return None
    return bytes(buffer[start : start + 1]), start + 5, end


def iter_messages(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, body) of each whole message in `data`; for tests and tools."""
    start = 0
    while (found := split_message(data, start)) is not None:
        kind, body_start, end = found
        yield kind, data[body_start:end]
        start = end
    if start != len(data):
        raise ProtocolViolation(f"{len(data) - start} trailing bytes after the last message")


# ErrorResponse/NoticeResponse field codes.
FIELD_SEVERITY = b"S"
FIELD_SEVERITY_NONLOCALIZED = b"V"
FIELD_SQLSTATE = b"C"
FIELD_MESSAGE = b"M"
FIELD_DETAIL = b"D"
FIELD_HINT = b"H"


def error_response(
    sqlstate: str,
    text: str,
    *,
    severity: str = "FATAL",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    """An ErrorResponse ('E') as PostgreSQL itself would send it."""
    if len(sqlstate) != 5:
        raise ValueError(f"SQLSTATE {sqlstate!r} must have 5 characters")
    fields = [
        (FIELD_SEVERITY, severity),
        (FIELD_SEVERITY_NONLOCALIZED, severity),
        (FIELD_SQLSTATE, sqlstate),
        (FIELD_MESSAGE, text),
    ]
    if detail is not None:
        fields.append((FIELD_DETAIL, detail))
    if hint is not None:
        fields.append((FIELD_HINT, hint))
    body = b"".join(code + value.replace("\0", " ").encode() + b"\0" for code, value in fields)
    return message(b"E", body + b"\0")


def parse_error_fields(body: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse or NoticeResponse body, by code letter."""
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def parse_authentication(body: bytes) -> tuple[int, bytes]:
    """(request code, data) of an Authentication ('R') message body."""
    if len(body) < 4:
        raise ProtocolViolation("authentication request without a code")
    (code,) = _INT32.unpack_from(body)
    return code, body[4:]


def parse_sasl_mechanisms(data: bytes) -> list[str]:
    return [name.decode(errors="replace") for name in data.split(b"\0") if name]


def parse_backend_key_data(body: bytes) -> tuple[int, bytes]:
    """(process id, secret key) of a BackendKeyData ('K') message body."""
    secret = body[4:]
    if not MIN_CANCEL_SECRET <= len(secret) <= MAX_CANCEL_SECRET:
        raise ProtocolViolation(f"BackendKeyData with a {len(secret)}-byte secret")
    (pid,) = _INT32.unpack_from(body)
    return pid, secret


def password_message(password: bytes) -> bytes:
    return message(b"p", password + b"\0")


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return message(b"p", mechanism.encode() + b"\0" + _INT32.pack(len(data)) + data)


def sasl_response(data: bytes) -> bytes:
    return message(b"p", data)


AUTHENTICATION_OK = message(b"R", _INT32.pack(AUTH_OK))
