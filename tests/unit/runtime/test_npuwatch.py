"""NPU and link health in the engine: when collections run, what a bad chip does to its Server
and the service, under each policy. Driven by NpuReport events and a hand-moved clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor_pd.api.health import readiness
from supervisor_pd.api.status import status
from supervisor_pd.errors import ExitCode
from supervisor_pd.platform.npuhealth import ChipReading, HealthDetail
from supervisor_pd.runtime.engine import Engine
from supervisor_pd.runtime.events import NpuReport, Probe
from supervisor_pd.runtime.npucollect import ChipResult, ToolFailure
from supervisor_pd.runtime.snapshot import Snapshot, snapshot
from supervisor_pd.runtime.spec import build_specs
from supervisor_pd.runtime.states import Phase, ProcState
from tests.unit.runtime.fakes import Stack

S = ProcState
SMI_HANG = ToolFailure("npu-smi", "npu-smi info", "`npu-smi info` did not finish within 10 s")


def collections(stack: Stack) -> int:
    return sum(1 for call in stack.fx.calls if call[0] == "collect_npu")


def report(
    stack: Stack,
    health: dict[int, str] | None = None,
    links: dict[int, str] | None = None,
    nets: dict[int, str] | None = None,
    unknown: frozenset[int] = frozenset(),
    failures: tuple[ToolFailure, ...] = (),
    started: float | None = None,
) -> NpuReport:
    """A finished collection of the stack's 8 chips (NPU n = physical id n, chip 0)."""
    chips = []
    for state in stack.engine.health.npu.chips.values():
        npu = state.target.npu_id
        word = (health or {}).get(npu, "OK")
        reading = None if npu in unknown else ChipReading(npu, 0, word, 90.0, 40.0, 12.0, 3161, 65536, None)
        detail = HealthDetail(word, "80E18005", "HBM multi-bit ECC error") if word != "OK" and reading else None
        link = None if npu in unknown else (links or {}).get(npu, "UP")
        net = None if npu in unknown else (nets or {}).get(npu, "Success")
        chips.append(ChipResult(npu, 0, npu, reading, detail, link, net))
    begun = stack.fx.clock if started is None else started
    return NpuReport(begun, stack.fx.clock, tuple(chips), failures, 1 + 2 * len(chips))


def view(stack: Stack) -> Snapshot:
    return snapshot(stack.engine, stack.fx.clock)


def ready_stack(**settings: Any) -> Stack:
    stack = Stack(**settings)
    stack.bring_up()
    stack.post(report(stack))  # the collection the start asked for: everything healthy
    return stack


def recover(stack: Stack) -> None:
    """Readiness answers until the service is ready again (a cleared Server is asked at once)."""
    for _ in range(6):
        stack.advance(0.1)
        stack.answer_all(Probe.READY)
        if stack.engine.phase is Phase.READY:
            return
    raise AssertionError(f"not ready again: {stack.engine.phase_reason}")


# --- when ----------------------------------------------------------------------------------


def test_one_collection_at_a_time_every_interval() -> None:
    stack = Stack(npu_health_interval=15.0)
    stack.tick()
    assert collections(stack) == 1  # at once: readings before the Servers come up
    assert ("collect_npu", 8, 10.0) in stack.fx.calls  # every chip, each tool within its timeout
    stack.advance(30.0)
    assert collections(stack) == 1  # the first is still running: not started twice
    stack.post(report(stack))
    assert collections(stack) == 2  # overdue: the next begins as the last ends
    stack.advance(14.0)
    assert collections(stack) == 2
    stack.post(report(stack))
    stack.advance(1.5)
    assert collections(stack) == 3
    assert stack.engine.health.npu.collections == 2


def test_the_next_wakeup_names_the_next_collection() -> None:
    stack = Stack(npu_health_interval=15.0, health_interval=100.0)
    stack.tick()
    stack.post(report(stack))
    assert stack.engine.health.npu.next_due in stack.engine._moments(stack.fx.clock)
    stack.run_for(16.0)
    assert collections(stack) == 2


def test_interval_zero_turns_it_off() -> None:
    stack = Stack(npu_health_interval=0)
    stack.bring_up()
    for _ in range(6):
        stack.advance(10)
    assert collections(stack) == 0 and stack.engine.health.npu.moments() == []
    npu = next(check for check in readiness(view(stack)) if check.name == "npu")
    assert npu.ok and npu.detail.startswith("not watched")


def test_no_collection_while_draining() -> None:
    stack = ready_stack(npu_health_interval=1.0)
    stack.drain()
    before = collections(stack)
    stack.advance(5)
    assert collections(stack) == before


# --- mapping -------------------------------------------------------------------------------


def test_each_chip_belongs_to_the_server_the_plan_gave_it() -> None:
    stack = Stack()
    owners = {key[0]: state.server for key, state in stack.engine.health.npu.chips.items()}
    assert owners == {0: "server-1", 1: "server-1", 2: "server-2", 3: "server-2",
                      4: "server-3", 5: "server-3", 6: "server-4", 7: "server-4"}  # fmt: skip
    assert all(state.target.link for state in stack.engine.health.npu.chips.values())  # real device IPs


def test_placeholder_device_ips_get_no_link_check() -> None:
    stack = Stack()
    servers = tuple(
        server.model_copy(
            update={"devices": tuple(d.model_copy(update={"device_ip_source": "placeholder"}) for d in server.devices)}
        )
        for server in stack.plan.servers
    )
    plan = stack.plan.model_copy(update={"servers": servers})
    specs = build_specs(plan, stack.settings, {"PATH": "/usr/bin"}, Path("/out"), Path("/state"))
    engine = Engine(specs, stack.settings, stack.fx)
    assert engine.health.npu.chips and not any(state.target.link for state in engine.health.npu.chips.values())


# --- what a bad chip does: report ---------------------------------------------------------------


def test_a_chip_alarm_makes_its_server_unhealthy_and_not_ready_with_the_reason() -> None:
    stack = ready_stack()
    stack.post(report(stack, health={3: "Alarm"}))
    reason = "NPU 3 chip 0: health Alarm, error code 80E18005"
    server = stack.child("server-2")
    assert (server.state, server.reason, server.npu_fault) == (S.UNHEALTHY, reason, reason)
    assert stack.engine.phase is Phase.DEGRADED
    assert f"server-2 ({reason})" in stack.engine.phase_reason
    assert f"server-2: NPU fault: {reason} (HBM multi-bit ECC error)" in stack.fx.logs
    checks = {check.name: check for check in readiness(view(stack))}
    assert not checks["servers"].ok and f"server-2 ({reason})" in checks["servers"].detail
    assert not checks["npu"].ok and checks["npu"].detail == f"server-2: {reason}"
    assert checks["prefill"].detail == "ready: server-1"
    assert "kill" not in [call[0] for call in stack.fx.calls]  # report: never restarted
    # Its process answers liveness and readiness as before: neither brings it back.
    stack.advance(6)
    stack.answer_all(Probe.LIVE)
    stack.answer_all(Probe.READY)
    assert server.state is S.UNHEALTHY and stack.engine.phase is Phase.DEGRADED


def test_the_status_document_says_which_chip_and_why() -> None:
    stack = ready_stack()
    stack.post(report(stack, health={3: "Alarm"}, links={5: "DOWN"}))
    data = status(stack.plan, view(stack))
    processes = {p["name"]: p for p in data["processes"]}
    assert processes["server-2"]["npu_fault"] == "NPU 3 chip 0: health Alarm, error code 80E18005"
    assert processes["server-3"]["npu_fault"] == "NPU 5 chip 0: link DOWN"
    assert processes["server-1"]["npu_fault"] is None
    chip = next(c for c in data["npu_health"]["chips"] if c["npu_id"] == 3)
    assert (chip["process"], chip["health"], chip["error_code"], chip["information"]) == (
        "server-2", "Alarm", "80E18005", "HBM multi-bit ECC error"
    )  # fmt: skip
    assert data["npu_health"]["policy"] == "report" and data["npu_health"]["collections"] == 2


def test_a_cleared_fault_brings_the_server_back() -> None:
    stack = ready_stack()
    stack.post(report(stack, links={5: "DOWN"}))
    assert stack.state("server-3") is S.UNHEALTHY
    stack.post(report(stack))
    assert stack.state("server-3") is S.RUNNING
    assert stack.child("server-3").npu_fault is None
    assert "server-3: NPU fault cleared (was: NPU 5 chip 0: link DOWN)" in stack.fx.logs
    # Readiness is observed anew before it counts: not ready at the very moment of the clear.
    assert stack.engine.phase is Phase.DEGRADED
    recover(stack)


def test_warning_and_an_unmeasured_network_are_not_faults() -> None:
    stack = ready_stack()
    stack.post(report(stack, health={1: "Warning"}, nets={2: "Init"}))
    assert stack.engine.phase is Phase.READY
    assert all(child.npu_fault is None for child in stack.engine.children.values())


@pytest.mark.parametrize(("health", "nets", "reason"), [
    ({4: "Critical"}, {}, "NPU 4 chip 0: health Critical, error code 80E18005"),
    ({}, {4: "Receive timeout"}, "NPU 4 chip 0: network health Receive timeout"),
])  # fmt: skip
def test_other_faults(health: dict[int, str], nets: dict[int, str], reason: str) -> None:
    stack = ready_stack()
    stack.post(report(stack, health=health, nets=nets))
    assert stack.child("server-3").npu_fault == reason


def test_a_broken_tool_is_not_a_chip_fault_and_does_not_clear_one() -> None:
    stack = ready_stack()
    stack.post(report(stack, unknown=frozenset(range(8)), failures=(SMI_HANG,)))
    assert stack.engine.phase is Phase.READY  # nothing known is wrong with any chip
    log = "NPU health: `npu-smi info` did not finish within 10 s; its readings are unknown until it answers"
    assert any(line.startswith(log) for line in stack.fx.logs)
    stack.post(report(stack, health={3: "Alarm"}))
    stack.post(report(stack, unknown=frozenset(range(8)), failures=(SMI_HANG,)))
    stack.post(report(stack, unknown=frozenset(range(8)), failures=(SMI_HANG,)))
    assert stack.child("server-2").npu_fault is not None  # unknown is not evidence of recovery
    assert sum(1 for line in stack.fx.logs if line.startswith(log)) == 2  # once per spell
    assert stack.engine.health.npu.tools.errors["npu-smi"] == 3
    stack.post(report(stack))
    assert "NPU health: npu-smi answers again" in stack.fx.logs
    assert stack.child("server-2").npu_fault is None


def test_a_server_that_comes_up_on_a_bad_chip_is_unhealthy_at_once() -> None:
    stack = Stack()
    stack.tick()
    stack.post(report(stack, health={0: "Alarm"}))
    assert stack.child("server-1").npu_fault is not None and stack.state("server-1") is S.STARTING
    for name in stack.servers:
        stack.up(name)
    assert stack.state("server-1") is S.UNHEALTHY
    stack.up("coordinator")
    stack.up("controller")
    stack.readiness_round()
    assert stack.engine.phase is Phase.STARTING
    assert "server-1 (NPU 0 chip 0: health Alarm, error code 80E18005)" in stack.engine.phase_reason


# --- policy: restart ------------------------------------------------------------------------


def test_restart_fails_the_server_under_the_budget_and_gives_up_when_the_chip_stays_bad() -> None:
    stack = ready_stack(npu_fault="restart", restart_budget=2, restart_backoff=1.0)
    stack.post(report(stack, health={3: "Alarm"}))
    server = stack.child("server-2")
    assert server.state is S.BACKOFF and stack.killed() == ["server-2"]
    assert "(SUPERVISOR_PD_NPU_FAULT=restart)" in server.reason and "failure 1 of 2" in server.reason
    for attempt in (2, 3):
        stack.exit("server-2")  # the SIGKILL took it
        stack.gone("server-2")
        stack.advance(5)  # past its backoff: started again
        assert server.state is S.STARTING
        # A reading begun before this run is not held against it.
        stack.post(report(stack, health={3: "Alarm"}, started=server.started_at - 0.1))
        assert server.state is S.STARTING
        stack.up("server-2")
        assert server.state is S.UNHEALTHY  # still the same chip
        stack.post(report(stack, health={3: "Alarm"}))
        if attempt == 2:
            assert server.state is S.BACKOFF and "failure 2 of 2" in server.reason
    assert server.state is S.FAILED
    assert stack.engine.exit_code is ExitCode.BUDGET_EXHAUSTED


def test_restart_keeps_a_server_whose_chip_recovered() -> None:
    stack = ready_stack(npu_fault="restart")
    stack.post(report(stack, links={7: "DOWN"}))
    server = stack.child("server-4")
    assert server.state is S.BACKOFF
    stack.post(report(stack))  # the link came back while it was down
    stack.exit("server-4")
    stack.gone("server-4")
    stack.advance(5)
    stack.up("server-4")
    assert server.state is S.RUNNING and server.npu_fault is None
    recover(stack)
    assert server.restarts == 1
