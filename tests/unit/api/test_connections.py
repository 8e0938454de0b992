"""The HTTP port's connection budget: the arithmetic, and which connections give way."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from supervisor_pd.api.connections import (
    ACCEPT_BURST,
    MINIMUM,
    PER_CHILD,
    PROBE_ROOM,
    SPARE,
    Connections,
    capacity,
)

pytestmark = pytest.mark.anyio


class Handler:
    """What the budget uses of aiohttp's RequestHandler: its transport and force_close()."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: Any = object()

    def force_close(self) -> None:
        self.transport = None


def test_capacity_keeps_descriptors_for_the_burst_the_children_and_probes() -> None:
    # Half of what is left: each client connection may carry one to the Coordinator.
    assert capacity(20000, 40, 6, 0) == (20000 - 40 - ACCEPT_BURST - SPARE - 6 * PER_CHILD) // 2
    assert capacity(20000, 40, 6, 100) == 100  # SUPERVISOR_PD_API_MAX_CONNECTIONS lowers it
    assert capacity(20000, 40, 6, 10**9) == capacity(20000, 40, 6, 0)  # never raises it
    assert capacity(256, 40, 6, 0) == MINIMUM  # a tiny limit: a floor, and start-up warns


def refusals() -> tuple[list[tuple[str, str, int]], Any]:
    seen: list[tuple[str, str, int]] = []
    return seen, lambda reason, line, count: seen.append((reason, line, count))


def test_idle_connections_give_way_oldest_first_and_busy_ones_never() -> None:
    seen, note = refusals()
    budget = Connections(4, note)
    handlers = [Handler(str(i)) for i in range(6)]
    budget._in_request[handlers[0]] = 1  # type: ignore[index]  # the oldest is in a request
    budget._in_request[handlers[2]] = 1  # type: ignore[index]
    budget._make_room(handlers)  # type: ignore[arg-type]
    # 6 open + the new one = 7 against 4: the 3 oldest that are idle are closed.
    assert [h.name for h in handlers if h.transport is None] == ["1", "3", "4"]
    assert [(reason, count) for reason, _, count in seen] == [("connections", 3)]
    assert "at most 4" in seen[0][1]


def test_nothing_is_closed_under_the_limit_or_when_every_connection_is_busy() -> None:
    seen, note = refusals()
    budget = Connections(10, note)
    handlers = [Handler(str(i)) for i in range(5)]
    budget._make_room(handlers)  # type: ignore[arg-type]
    budget.limit = 3
    for handler in handlers:
        budget._in_request[handler] = 1  # type: ignore[index]
    budget._make_room(handlers)  # type: ignore[arg-type]
    assert all(h.transport is not None for h in handlers)
    assert seen == []


def test_inference_keeps_room_for_probes() -> None:
    assert Connections(100, refusals()[1]).max_in_flight == 100 - PROBE_ROOM
    assert Connections(PROBE_ROOM, refusals()[1]).max_in_flight == 1


async def test_a_connection_is_busy_exactly_while_a_request_is_handled() -> None:
    budget = Connections(10, refusals()[1])
    protocol = Handler("p")
    request: Any = SimpleNamespace(protocol=protocol)
    inside: list[int] = []

    async def handler(_: Any) -> str:
        inside.append(budget._in_request[protocol])  # type: ignore[index]
        return "ok"

    assert await budget.middleware(request, handler) == "ok"
    assert inside == [1]
    assert protocol not in budget._in_request

    async def failing(_: Any) -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await budget.middleware(request, failing)
    assert protocol not in budget._in_request
