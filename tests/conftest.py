"""Fixtures shared by every service's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.processes import ProcessGroup


@pytest.fixture
def processes() -> Iterator[ProcessGroup]:
    group = ProcessGroup()
    try:
        yield group
    finally:
        group.stop_all()
