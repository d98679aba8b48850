"""Reading Prometheus's text exposition format the way a scraper sees it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

_TYPE_LINE = re.compile(r"# TYPE (\S+) (\S+)")

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class ExposedFamily:
    """A family as it appears on the wire: the name in its TYPE line (with
    `_total` for counters), its type, and the label names of its samples."""

    name: str
    type: str
    label_names: set[str] = field(default_factory=set)
    label_values: set[tuple[tuple[str, str], ...]] = field(default_factory=set)


def exposed_families(text: str) -> dict[str, ExposedFamily]:
    families = {
        match[1]: ExposedFamily(match[1], match[2])
        for match in map(_TYPE_LINE.match, text.splitlines())
        if match
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name not in families:  # a histogram's or summary's _bucket, _sum, _count
                name = re.sub(r"_(bucket|sum|count|created)$", "", name)
            owner = families[name]
            owner.label_names.update(sample.labels)
            owner.label_values.add(tuple(sorted(sample.labels.items())))
    return families


def samples(text: str) -> dict[SampleKey, float]:
    """Every sample, keyed by (name, sorted labels)."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(text_or_samples: str | dict[SampleKey, float], name: str, **labels: str) -> float | None:
    """One sample's value, or None when the series is absent."""
    found = samples(text_or_samples) if isinstance(text_or_samples, str) else text_or_samples
    return found.get((name, tuple(sorted(labels.items()))))
