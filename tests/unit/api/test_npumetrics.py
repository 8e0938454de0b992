"""NPU health on /metrics: per chip with its Server's name, unknown readings, the collector's errors."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from supervisor_pd.api.npumetrics import NpuCollector
from supervisor_pd.runtime.snapshot import snapshot
from tests.unit.runtime.fakes import Stack
from tests.unit.runtime.test_npuwatch import SMI_HANG, ready_stack, report


def scrape(stack: Stack) -> list[str]:
    registry = CollectorRegistry()
    registry.register(NpuCollector(lambda: snapshot(stack.engine, stack.fx.clock)))
    return [line for line in generate_latest(registry).decode().splitlines() if not line.startswith("#")]


def chip(npu: int, server: str) -> str:
    return f'chip_id="0",npu_id="{npu}",phy_id="{npu}",process="{server}"'


def test_every_chip_is_shown_with_its_server() -> None:
    lines = scrape(ready_stack())
    assert f"supervisor_pd_npu_up{{{chip(3, 'server-2')}}} 1.0" in lines
    assert f"supervisor_pd_npu_healthy{{{chip(3, 'server-2')}}} 1.0" in lines
    assert f"supervisor_pd_npu_temperature_celsius{{{chip(0, 'server-1')}}} 40.0" in lines
    total = next(
        line for line in lines if line.startswith(f"supervisor_pd_npu_hbm_total_bytes{{{chip(7, 'server-4')}}}")
    )
    assert float(total.rsplit(" ", 1)[1]) == 65536 * 1024 * 1024
    assert f"supervisor_pd_npu_aicore_utilization_ratio{{{chip(7, 'server-4')}}} 0.12" in lines
    assert f"supervisor_pd_npu_link_up{{{chip(5, 'server-3')}}} 1.0" in lines
    assert f"supervisor_pd_npu_net_healthy{{{chip(5, 'server-3')}}} 1.0" in lines
    assert 'supervisor_pd_process_npu_fault{process="server-2"} 0.0' in lines
    assert "supervisor_pd_npu_collections_total 1.0" in lines
    assert 'supervisor_pd_npu_collector_up{tool="npu-smi"} 1.0' in lines
    assert 'supervisor_pd_npu_collector_errors_total{tool="hccn_tool"} 0.0' in lines


def test_a_fault_shows_on_its_chip_and_its_server() -> None:
    stack = ready_stack()
    stack.post(report(stack, health={3: "Alarm"}, links={5: "DOWN"}, nets={6: "Fault"}))
    lines = scrape(stack)
    assert f"supervisor_pd_npu_healthy{{{chip(3, 'server-2')}}} 0.0" in lines
    labels = 'chip_id="0",error_code="80E18005",health="Alarm",npu_id="3",phy_id="3",process="server-2"'
    assert f"supervisor_pd_npu_health_info{{{labels}}} 1.0" in lines
    assert f"supervisor_pd_npu_link_up{{{chip(5, 'server-3')}}} 0.0" in lines
    assert f"supervisor_pd_npu_net_healthy{{{chip(6, 'server-4')}}} 0.0" in lines
    for server in ("server-2", "server-3", "server-4"):
        assert f'supervisor_pd_process_npu_fault{{process="{server}"}} 1.0' in lines
    assert 'supervisor_pd_process_npu_fault{process="server-1"} 0.0' in lines


def test_a_broken_tool_makes_readings_unknown_and_is_counted() -> None:
    stack = ready_stack()
    stack.post(report(stack, unknown=frozenset(range(8)), failures=(SMI_HANG,)))
    lines = scrape(stack)
    assert f"supervisor_pd_npu_up{{{chip(3, 'server-2')}}} 0.0" in lines
    assert not any(line.startswith("supervisor_pd_npu_temperature_celsius") for line in lines)
    assert not any(line.startswith("supervisor_pd_npu_healthy") for line in lines)
    assert 'supervisor_pd_npu_collector_errors_total{tool="npu-smi"} 1.0' in lines
    assert 'supervisor_pd_npu_collector_up{tool="npu-smi"} 0.0' in lines
    assert 'supervisor_pd_process_npu_fault{process="server-2"} 0.0' in lines
