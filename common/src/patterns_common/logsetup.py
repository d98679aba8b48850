"""Logging set-up: one line per event, as `key=value` text or as JSON.

Services log with the standard library and attach structured fields with
`extra=fields(...)`; the same formatter renders third-party records (aiohttp,
asyncpg) so every line of a container's output has one shape.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import IO, Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")

_FIELDS_KEY = "structured_fields"


def fields(**values: object) -> dict[str, dict[str, object]]:
    """The `extra=` argument that attaches structured fields to a log call."""
    return {_FIELDS_KEY: values}


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _record_fields(record: logging.LogRecord) -> dict[str, object]:
    values: dict[str, object] = dict(getattr(record, _FIELDS_KEY, {}))
    if record.exc_info and record.exc_info[0] is not None:
        values["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return values


def _text_value(value: object) -> str:
    if isinstance(value, float):
        text = f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "NaN"
    else:
        text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t\\'):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678Z info logger: message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record),
            record.levelname.lower(),
            f"{record.name}:",
            record.getMessage(),
        ]
        parts.extend(f"{key}={_text_value(val)}" for key, val in _record_fields(record).items())
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line with `ts`, `level`, `logger`, `msg` and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _record_fields(record).items():
            document.setdefault(key, value)
        return json.dumps(document, default=str, separators=(",", ":"))


def configure_logging(
    log_format: LogFormat = "text", level: str = "info", stream: IO[str] | None = None
) -> None:
    """Send every logger's records to stderr in the chosen format, replacing
    any handlers set before (so calling it twice is harmless)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp logs one line per request at info; that is noise next to our events.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
