"""Prometheus's classic text format (0.0.4), written fast. Pure.

prometheus_client's generate_latest validates and escapes every name on
every sample for the newer UTF-8 formats; for our ~60 samples that was most
of a scrape's own time (about 0.5 ms of 1). Names here are fixed ASCII
identifiers, so this writer only escapes what can vary: HELP texts and label
values (a balancer member's name, Apache's version string). It writes gauges
and counters; a collection with anything else goes to generate_latest
whole. Values are printed as Go's exporters print them: 1, not 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache

from prometheus_client import generate_latest
from prometheus_client.core import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_SIMPLE_TYPES = frozenset({"gauge", "counter", "unknown"})
_TEXT_TYPE = {"gauge": "gauge", "counter": "counter", "unknown": "untyped"}


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    if "\\" in text or '"' in text or "\n" in text:
        return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return text


def format_value(value: float) -> str:
    value = float(value)  # prometheus_client keeps ints that were given as ints
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class _Fallback:
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families


def _simple(family: Metric) -> bool:
    """A gauge or a counter without `_created` samples (the text format
    shows those as a family of their own)."""
    if family.type == "counter":
        return all(not sample.name.endswith("_created") for sample in family.samples)
    return family.type in _SIMPLE_TYPES


@lru_cache(maxsize=256)
def _header(name: str, documentation: str, kind: str) -> str:
    """The HELP and TYPE lines: the same at every scrape, so made once."""
    exposed = name + "_total" if kind == "counter" else name
    return f"# HELP {exposed} {_escape_help(documentation)}\n# TYPE {exposed} {_TEXT_TYPE[kind]}"


@lru_cache(maxsize=4096)
def _series(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    """`name{label="value",...}`: most series recur at every scrape."""
    if not labels:
        return name
    return name + "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels) + "}"


def encode(families: Iterable[Metric]) -> bytes:
    collected = list(families)
    if not all(map(_simple, collected)):
        return generate_latest(_Fallback(collected))
    lines: list[str] = []
    for family in collected:
        lines.append(_header(family.name, family.documentation, family.type))
        for sample in family.samples:
            series = _series(sample.name, tuple(sample.labels.items()))
            lines.append(f"{series} {format_value(sample.value)}")
    lines.append("")
    return "\n".join(lines).encode()
