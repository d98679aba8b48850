"""What a service's README must name: every flag, environment variable and
metric family the program has. A name the README lacks is a feature a user
cannot find."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.core import Metric

from patterns_common.cli import EnvArgumentParser

REPO_ROOT = Path(__file__).resolve().parents[2]


def readme(service_directory: str) -> str:
    return (REPO_ROOT / service_directory / "README.md").read_text()


def _named(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def undocumented_options(parser: EnvArgumentParser, text: str) -> list[str]:
    """The long flags (but --help) and environment variables `text` never names."""
    flags = [
        flag
        for action in parser._actions  # argparse has no public list of its options
        for flag in action.option_strings
        if flag.startswith("--") and flag != "--help"
    ]
    names = flags + sorted(parser.environment_variables())
    assert len(names) > 5, "the parser has its options"
    return [name for name in names if not _named(name, text)]


def undocumented_families(families: Iterable[Metric], text: str) -> list[str]:
    """The exposed family names (`_total`, `_info` added) `text` never names;
    a `process_*` row covers the standard process collector's families."""
    suffix = {"counter": "_total", "info": "_info"}
    exposed = [family.name + suffix.get(family.type, "") for family in families]
    assert len(exposed) > 5, "the program has its metrics"
    return [
        name
        for name in exposed
        if not _named(name, text) and not (name.startswith("process_") and "`process_*`" in text)
    ]
