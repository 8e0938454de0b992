"""The simulated Controller's role split, written from MindIE-Motor's role manager (not from the planner)."""

from __future__ import annotations

import pytest

from supervisor_pd.simulator.controller.nodes import Node, split_roles


def nodes(count: int) -> list[Node]:
    return [Node(i, "127.0.0.1", 1025 + i, 2025 + i, 3025 + i, 4025 + i, []) for i in range(count)]


@pytest.mark.parametrize(
    ("count", "p", "d", "expected"),
    [(4, 1, 1, "PPDD"), (3, 1, 1, "PPD"), (8, 3, 1, "PPPPPPDD"), (5, 2, 1, "PPPDD"), (3, 2, 3, "PDD")],
)
def test_one_instance_at_a_time_by_crossed_weights(count: int, p: int, d: int, expected: str) -> None:
    # ProportionCalculator::InitPdBestRatioWithExternInput as AssignRoleByDefiniteRatio calls it.
    group = nodes(count)
    assert split_roles(group, p, d)
    assert "".join(node.role[0].upper() for node in group if node.role) == expected
    prefill = [node.id for node in group if node.role == "prefill"]
    assert all(node.peers == prefill for node in group if node.role == "decode")


def test_more_than_16_instances_get_no_roles() -> None:
    # DefaultGroupGenerator::GenerateGroups: LIMIT_MAX 16 outside multi-node mode.
    group = nodes(17)
    assert not split_roles(group, 1, 1)
    assert all(node.role is None for node in group)
