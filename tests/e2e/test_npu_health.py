"""NPU and link health while serving: `supervisor-pd run --simulate 800i-a2` as a user runs it, with
faults written into the simulated host's `run/host_faults` while it serves.

One stack for the module; each test leaves the host healthy and the service ready again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor_pd.simulator.hostfaults import clear_host_faults, write_host_faults
from tests.simstack import wait_until
from tests.superstack import SupervisorRun, running

ENV = {
    "SUPERVISOR_PD_NPU_HEALTH_INTERVAL": "0.3",
    # A hung tool is given up on after this long: what the hang test waits through.
    "SUPERVISOR_PD_NPU_HEALTH_TIMEOUT": "3",
}
ALARM = "NPU 3 chip 0: health Alarm, error code 80E18005"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorRun]:
    with running(tmp_path_factory.mktemp("npu-health"), env=ENV) as stack:
        yield stack
        # Every tool's exit went to the thread that ran it, none to the engine as an orphan's.
        assert "reaped orphan" not in stack.log()


@pytest.fixture
def host(run: SupervisorRun) -> Iterator[Path]:
    """The simulated host's root; healthy again, and the service ready, after the test."""
    root = run.state / "sim" / "800i-a2"
    assert (root / "simhost.json").is_file()
    yield root
    clear_host_faults(root)
    wait_until(lambda: ready(run), 60, what="the service ready again with the faults cleared")
    wait_until(lambda: sample(run, "supervisor_pd_npu_collector_up", tool="npu-smi") == 1.0, 30, what="npu-smi")


def ready(run: SupervisorRun) -> bool:
    return run.api("GET", "/readyz", timeout=5)[0] == 200


def verbose(run: SupervisorRun) -> str:
    return run.api("GET", "/readyz?verbose", timeout=5)[1].decode()


def sample(run: SupervisorRun, name: str, **labels: str) -> float | None:
    code, body = run.api("GET", "/metrics", timeout=10)
    assert code == 200
    for family in text_string_to_metric_families(body.decode()):
        for found in family.samples:
            if found.name == name and all(found.labels.get(key) == value for key, value in labels.items()):
                return found.value
    return None


def test_a_chip_alarm_marks_its_server_unhealthy_with_the_reason(run: SupervisorRun, host: Path) -> None:
    assert ready(run)
    write_host_faults(host, ["3:unhealthy"])
    wait_until(lambda: f"server-2 ({ALARM})" in verbose(run), 30, what="the reason in /readyz?verbose")
    text = verbose(run)
    assert f"[-]npu failed: server-2: {ALARM}" in text
    assert "[+]prefill ok: ready: server-1" in text and "readyz check failed" in text
    server = run.process_status("server-2")
    assert (server["state"], server["ready"], server["npu_fault"]) == ("unhealthy", False, ALARM)
    assert server["pid"] is not None and server["restarts"] == 0  # report: left running
    chip = next(c for c in run.status()["npu_health"]["chips"] if c["npu_id"] == 3)
    assert (chip["process"], chip["health"], chip["error_code"]) == ("server-2", "Alarm", "80E18005")
    shown = run.cli("status")
    assert shown.returncode == 0 and f"server-2: {ALARM}" in shown.stdout
    assert sample(run, "supervisor_pd_npu_healthy", process="server-2", npu_id="3") == 0.0
    assert sample(run, "supervisor_pd_process_npu_fault", process="server-2") == 1.0
    assert sample(run, "supervisor_pd_npu_healthy", process="server-1", npu_id="0") == 1.0
    # Cleared: back to healthy, ready again, the metric with it.
    clear_host_faults(host)
    wait_until(lambda: ready(run), 60, what="ready again after the chip recovered")
    assert run.process_status("server-2")["state"] == "running"
    assert sample(run, "supervisor_pd_npu_healthy", process="server-2", npu_id="3") == 1.0
    assert sample(run, "supervisor_pd_process_npu_fault", process="server-2") == 0.0


def test_a_link_down_marks_its_server_unhealthy(run: SupervisorRun, host: Path) -> None:
    write_host_faults(host, ["5:link-down"])
    reason = "NPU 5 chip 0: link DOWN"
    wait_until(lambda: f"server-3 ({reason})" in verbose(run), 30, what="the link reason in /readyz?verbose")
    assert run.process_status("server-3")["npu_fault"] == reason
    assert sample(run, "supervisor_pd_npu_link_up", process="server-3", npu_id="5") == 0.0
    clear_host_faults(host)
    wait_until(lambda: ready(run), 60, what="ready again after the link came back")
    assert sample(run, "supervisor_pd_npu_link_up", process="server-3", npu_id="5") == 1.0


def test_hung_tools_never_slow_the_probes_nor_fault_a_chip(run: SupervisorRun, host: Path) -> None:
    errors = sample(run, "supervisor_pd_npu_collector_errors_total", tool="npu-smi") or 0.0
    write_host_faults(host, ["npu-smi:hang", "hccn_tool:hang"])
    latencies: list[float] = []
    answers: list[int] = []

    def probe() -> bool:
        started = time.monotonic()
        code, _ = run.api("GET", "/readyz", timeout=10)
        latencies.append(time.monotonic() - started)
        answers.append(code)
        # Until a hung run was given up on (a timeout of 3 s, so every probe above fell during it).
        return (sample(run, "supervisor_pd_npu_collector_errors_total", tool="npu-smi") or 0.0) > errors

    wait_until(probe, 60, interval=0.01, what="a hung npu-smi to be given up on")
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if len(latencies) >= 100 else latencies[-1]
    # Correctness, not speed: a probe never waits for a tool (the bound is far below the 3 s a
    # probe would take if it did).
    assert len(latencies) >= 20 and p99 < 1.0, (len(latencies), p99, latencies[-5:])
    assert set(answers) == {200}  # a broken tool is not a broken chip: the service stays ready
    assert run.process.poll() is None
    last = run.status()["npu_health"]["last"]
    assert any("did not finish within 3 s" in failure["error"] for failure in last["tool_errors"])
    assert sample(run, "supervisor_pd_npu_up", process="server-1", npu_id="0") == 0.0  # unknown now
    # (hccn_tool runs that began as the faults were written may still have answered)
    assert "[+]npu ok: no known fault; unknown now: " in verbose(run) and "npu-smi failed" in verbose(run)


def test_tools_printing_garbage_are_counted_and_survived(run: SupervisorRun, host: Path) -> None:
    before = {
        tool: sample(run, "supervisor_pd_npu_collector_errors_total", tool=tool) or 0.0
        for tool in ("npu-smi", "hccn_tool")
    }
    write_host_faults(host, ["npu-smi:garbage", "hccn_tool:garbage"])

    def counted() -> bool:
        return all(
            (sample(run, "supervisor_pd_npu_collector_errors_total", tool=tool) or 0.0) > before[tool] + 1
            for tool in before
        )

    wait_until(counted, 30, what="garbage counted as collector errors")
    assert ready(run) and run.process.poll() is None
    last = run.status()["npu_health"]["last"]
    assert any("printed what cannot be read" in failure["error"] for failure in last["tool_errors"])
    assert sample(run, "supervisor_pd_npu_collector_up", tool="hccn_tool") == 0.0
