import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.plan.model import PortOrigin
from supervisor_pd.plan.ports import PortAllocator, PortRequest
from tests.factories import FakeChecker


def request(field: str, configured: int | None, **extra) -> PortRequest:  # type: ignore[no-untyped-def]
    return PortRequest(
        owner=extra.pop("owner", "coordinator"),
        field=field,
        where=f"ms_coordinator.json: http_config.{field}",
        ip=extra.pop("ip", "127.0.0.1"),
        ip_source="ms_coordinator.json: http_config.manage_ip",
        listens=True,
        configured=configured,
        **extra,
    )


def allocator(checker: FakeChecker | None = None, strict: bool = False) -> PortAllocator:
    return PortAllocator(checker or FakeChecker(), 2000, (32768, 60999), strict=strict)


def test_configured_ports_are_kept() -> None:
    ports = allocator()
    assert ports.claim(request("manage_port", 1026)) == 1026
    assert ports.assignments[0].origin is PortOrigin.CONFIGURED


def test_generated_ports_count_up_from_the_base_skipping_busy_and_taken() -> None:
    ports = allocator(FakeChecker(busy={2001}))
    assert ports.claim(request("a", 2000)) == 2000
    assert [ports.claim(request(f"g{i}", None)) for i in range(3)] == [2002, 2003, 2004]


def test_a_duplicate_is_moved_and_the_move_reported() -> None:
    ports = allocator()
    ports.claim(request("manage_port", 1026))
    moved = ports.claim(request("http_server.port", 1026, owner="controller"))
    assert moved == 2000
    record = ports.assignments[-1]
    assert record.origin is PortOrigin.MOVED
    assert record.requested == 1026
    assert "already given to coordinator manage_port" in record.reason


def test_a_busy_port_is_moved_with_its_owner_named() -> None:
    ports = allocator(FakeChecker(busy={1029}))
    assert ports.claim(request("status_port", 1029)) == 2000
    assert "in use by pid 42 (nginx)" in ports.assignments[-1].reason


def test_a_port_in_the_ephemeral_range_is_moved() -> None:
    ports = allocator()
    assert ports.claim(request("status_port", 40000)) == 2000
    assert "ephemeral" in ports.assignments[-1].reason


def test_generation_skips_the_ephemeral_range() -> None:
    ports = PortAllocator(FakeChecker(), 32760, (32768, 60999), strict=False)
    assert [ports.claim(request(f"g{i}", None)) for i in range(9)][-1] == 61000


@pytest.mark.parametrize("value", [80, 0, -1, 70000])
def test_out_of_range_is_an_error(value: int) -> None:
    with pytest.raises(InputError) as caught:
        allocator().claim(request("status_port", value))
    assert caught.value.where == "ms_coordinator.json: http_config.status_port"
    assert "1024-65535" in caught.value.problem


def test_pinned_ports_are_never_moved() -> None:
    ports = allocator(FakeChecker(busy={1025}))
    with pytest.raises(InputError) as caught:
        ports.claim(request("predict_port", 1025, pinned=True))
    assert "in use by pid 42" in caught.value.problem
    assert "never moved" in caught.value.problem


def test_strict_policy_refuses_to_move() -> None:
    ports = allocator(strict=True)
    ports.claim(request("manage_port", 1026))
    with pytest.raises(InputError, match="strict forbids moving it"):
        ports.claim(request("status_port", 1026))


def test_a_pinned_port_in_the_ephemeral_range_only_warns() -> None:
    ports = allocator()
    assert ports.claim(request("predict_port", 40000, pinned=True)) == 40000
    assert "ephemeral" in ports.warnings[0]


def test_an_address_not_on_this_host_is_an_error_naming_its_source() -> None:
    with pytest.raises(InputError) as caught:
        allocator(FakeChecker(foreign={"10.9.9.9"})).claim(request("manage_port", 1026, ip="10.9.9.9"))
    assert caught.value.where == "ms_coordinator.json: http_config.manage_ip"
    assert "10.9.9.9 is not an address of this host" in caught.value.problem


def test_same_inputs_give_the_same_ports() -> None:
    def run() -> list[int]:
        ports = allocator(FakeChecker(busy={2003, 1026}))
        return [ports.claim(request(f"p{i}", v)) for i, v in enumerate([1025, 1026, None, None, 1025, None])]

    assert run() == run() == [1025, 2000, 2001, 2002, 2004, 2005]
