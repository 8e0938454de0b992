import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.plan.cpus import plan_cpus
from supervisor_pd.platform.cpuset import format_cpulist, parse_cpulist

TWO_NODES = {0: parse_cpulist("0-95"), 1: parse_cpulist("96-191")}


def shown(plan) -> list[str]:  # type: ignore[no-untyped-def]
    return [format_cpulist(cpus) if cpus else "-" for cpus in plan.servers]


def test_even_split_per_node_with_control_cpus_kept() -> None:
    plan = plan_cpus("auto", 0, parse_cpulist("0-191"), TWO_NODES, [0, 0, 1, 1])
    assert shown(plan) == ["0-47", "48-95", "96-140", "141-185"]
    assert format_cpulist(plan.control or ()) == "186-191"  # 192 / 32 = 6, from the node with most to spare
    assert plan.notices == ()


def test_only_cpus_of_the_container_are_used() -> None:
    plan = plan_cpus("auto", 1, parse_cpulist("40-59,100-119"), TWO_NODES, [0, 0, 1, 1])
    assert shown(plan) == ["40-49", "50-59", "100-109", "110-118"]
    assert plan.control == (119,)


def test_a_node_without_servers_hosts_the_control_plane() -> None:
    nodes = {0: parse_cpulist("0-7"), 1: parse_cpulist("8-15"), 2: parse_cpulist("16-23")}
    plan = plan_cpus("auto", 2, parse_cpulist("0-23"), nodes, [0, 1])
    assert plan.control == (22, 23)
    assert shown(plan) == ["0-7", "8-15"]


def test_uneven_counts_differ_by_at_most_one() -> None:
    plan = plan_cpus("auto", 1, parse_cpulist("0-10"), {0: parse_cpulist("0-10")}, [0, 0, 0])
    sizes = [len(cpus or ()) for cpus in plan.servers]
    assert sizes == [4, 3, 3]
    assert not set().union(*plan.servers) & set(plan.control or ())


def test_single_node_host_needs_no_warning() -> None:
    plan = plan_cpus("auto", 1, parse_cpulist("0-7"), {0: parse_cpulist("0-7")}, [0, 0])
    assert plan.notices == ()


def test_unknown_numa_degrades_with_a_warning() -> None:
    plan = plan_cpus("auto", 1, parse_cpulist("0-191"), TWO_NODES, [0, None])
    assert any("unknown" in n.message for n in plan.notices)
    assert all(plan.servers)


def test_unknown_numa_is_an_error_when_strict() -> None:
    with pytest.raises(InputError) as caught:
        plan_cpus("strict", 1, parse_cpulist("0-191"), TWO_NODES, [0, None])
    assert caught.value.where == "SUPERVISOR_PD_CPU_BINDING=strict"


def test_node_outside_the_cpuset_degrades() -> None:
    plan = plan_cpus("auto", 1, parse_cpulist("0-15"), TWO_NODES, [0, 1])
    assert any("no CPU in the container's CPU set" in n.message for n in plan.notices)
    assert format_cpulist(plan.servers[1] or ()) == format_cpulist(set(range(16)) - set(plan.control or ()))


def test_too_few_cpus_share() -> None:
    plan = plan_cpus("auto", 1, parse_cpulist("0-1"), {0: parse_cpulist("0-1")}, [0, 0, 0, 0])
    assert plan.control is None
    assert any("share" in n.message for n in plan.notices)
    assert all(cpus for cpus in plan.servers)


def test_off_binds_nothing() -> None:
    plan = plan_cpus("off", 0, parse_cpulist("0-191"), TWO_NODES, [0, 1])
    assert plan.servers == (None, None)
    assert plan.control is None
