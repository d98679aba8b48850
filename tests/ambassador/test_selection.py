"""Server selection from the last health checks (pure)."""

from __future__ import annotations

import pytest

from patterns_common.cli import HostPort
from pg_ambassador.config import Target
from pg_ambassador.routing import ServerStatus, select

A, B, C = HostPort("a", 5432), HostPort("b", 5432), HostPort("c", 5432)
PRIMARY = ServerStatus("up", "primary")
REPLICA = ServerStatus("up", "replica")
DOWN = ServerStatus("down", error="Connection refused")
UNCHECKED = ServerStatus()
LOGIN_REFUSED = ServerStatus("up", "unknown", "login refused: no such role")


@pytest.mark.parametrize(
    ("target", "statuses", "turn", "expected"),
    [
        ("primary", [REPLICA, PRIMARY, REPLICA], 0, (B,)),
        ("primary", [PRIMARY, PRIMARY, DOWN], 1, (A, B)),  # split brain: configured order
        ("replica", [REPLICA, PRIMARY, REPLICA], 0, (A, C)),
        ("replica", [REPLICA, PRIMARY, REPLICA], 1, (C, A)),  # replicas take turns
        ("any", [DOWN, PRIMARY, REPLICA], 3, (C, B)),  # never a server that failed
        ("primary", [REPLICA, LOGIN_REFUSED, DOWN], 0, (B,)),  # let the server say why
        ("replica", [REPLICA, LOGIN_REFUSED], 0, (A,)),
    ],
)
def test_healthy_servers_of_the_wanted_role(
    target: Target, statuses: list[ServerStatus], turn: int, expected: tuple[HostPort, ...]
) -> None:
    selection = select(target, "app", list(zip((A, B, C), statuses, strict=False)), turn)
    assert selection.servers == expected and selection.refusal is None


def test_no_server_of_the_role_is_57p03_and_none_reachable_is_08006() -> None:
    wrong_role = select("primary", "app", [(A, REPLICA), (B, DOWN)], 0)
    assert wrong_role.refusal is not None
    assert wrong_role.refusal.sqlstate == "57P03"
    assert wrong_role.refusal.message == 'no primary server is available for database "app"'
    assert wrong_role.refusal.detail == "a:5432: up, replica; b:5432: down (Connection refused)"
    unreachable = select("any", "app", [(A, DOWN)], 0)
    assert unreachable.refusal is not None and unreachable.refusal.sqlstate == "08006"
    assert unreachable.refusal.message == 'no healthy server for database "app"'


def test_unchecked_servers_make_the_caller_wait_for_the_first_check() -> None:
    selection = select("primary", "app", [(A, UNCHECKED), (B, DOWN)], 0)
    assert selection.pending and not selection.servers
    assert select("primary", "app", [(A, UNCHECKED), (B, PRIMARY)], 0).servers == (B,)
