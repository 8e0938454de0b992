"""The health tool parsers against verbatim real output (tests/data/npuhealth, sources in its
README.md and in supervisor_pd/simulator/README.md) and against the simulated tools, faults included."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from supervisor_pd.platform import npuhealth
from supervisor_pd.platform.npuhealth import ChipReading, HealthDetail, ParseError
from supervisor_pd.simulator import hosttools
from supervisor_pd.simulator.host import SimHost, build_sim_host
from supervisor_pd.simulator.hostfaults import ENV, clear_host_faults, write_host_faults
from supervisor_pd.simulator.npusummary import ChipLine, render_summary
from supervisor_pd.simulator.profiles import PROFILES

DATA = Path(__file__).parents[2] / "data" / "npuhealth"
A2_SAMPLE = (DATA / "npu-smi-info-a2-910b3.txt").read_text()
A3_SAMPLE = (DATA / "npu-smi-info-a3-ascend910.txt").read_text()
# Ascend/mind-cluster docs/zh/faultdiag/user_guide.md, "训练及推理前NPU环境检查文件": an older 910 card
# (DDR memory in use), the doc's own elisions ("...") and its "No running processes" table.
MIND_CLUSTER_TABLE = """\
+------------------------------------------------------------------------------------------------+
| npu-smi 24.1.rc1                 Version: 24.1.rc1                                             |
+---------------------------+---------------+----------------------------------------------------+
| NPU   Name                | Health        | Power(W)    Temp(C)           Hugepages-Usage(page)|
| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  HBM-Usage(MB)        |
+===========================+===============+====================================================+
...
+===========================+===============+====================================================+
| 7     xxx                | OK            | 67.0        44                0    / 0             |
| 0                         | 0000:3D:00.0  | 0           2505 / 15567      0    / 32768         |
+===========================+===============+====================================================+
+---------------------------+---------------+----------------------------------------------------+
| NPU     Chip              | Process id    | Process name             | Process memory(MB)      |
+===========================+===============+====================================================+
| No running processes found in NPU 0                                                            |
+===========================+===============+====================================================+
...
| No running processes found in NPU 7                                                            |
+===========================+===============+====================================================+
"""
# hiascend npu-smi reference npusmi_028 ("查询指定芯片健康状态"), as printed there.
HEALTH_OK = """\
        Health Status                  : OK
        Error Code                     : NA
        Error Information              : NA
"""
GARBAGE = [
    "",
    "\x1b[31m*** segfault in libdcmi ***\x1b[0m\nNPU ID : zero\n",
    "dcmi model initialized failed, because the device is used. ret is -8020\n",
    "+----+\n| garbage |\n+----+\n",
]


def test_a2_sample() -> None:
    readings = npuhealth.parse_summary(A2_SAMPLE)
    assert [(r.npu_id, r.chip_id) for r in readings] == [(npu, 0) for npu in range(8)]
    assert readings[0] == ChipReading(0, 0, "OK", 98.9, 38.0, 0.0, 3382, 65536, "0000:c1:00.0")
    assert readings[7].power_w == 92.5 and readings[7].bus_id == "0000:42:00.0"


def test_a3_sample_two_chips_per_card_each_with_its_own_rows() -> None:
    readings = npuhealth.parse_summary(A3_SAMPLE)
    assert [(r.npu_id, r.chip_id) for r in readings] == [(npu, chip) for npu in range(8) for chip in (0, 1)]
    assert readings[0] == ChipReading(0, 0, "OK", 211.3, 43.0, 7.0, 61609, 65536, "0000:9d:00.0")
    # The second chip prints "-" for power (the card's is on the first chip's row) and its own temperature.
    assert readings[1] == ChipReading(0, 1, "OK", None, 44.0, 7.0, 61625, 65536, "0000:9f:00.0")
    assert readings[15].bus_id == "0000:83:00.0"


def test_a_table_with_elisions_and_no_processes() -> None:
    assert npuhealth.parse_summary(MIND_CLUSTER_TABLE) == [
        ChipReading(7, 0, "OK", 67.0, 44.0, 0.0, 0, 32768, "0000:3d:00.0")
    ]


def test_a_health_word_in_the_table_is_kept_as_printed() -> None:
    text = A3_SAMPLE.replace("| 1     Ascend910           | OK     ", "| 1     Ascend910           | Alarm  ", 1)
    healths = [r.health for r in npuhealth.parse_summary(text)]
    assert healths[2] == "Alarm" and healths.count("OK") == 15


def test_an_empty_table_lists_no_chip() -> None:
    header = "\n".join(A2_SAMPLE.splitlines()[:6]) + "\n"
    assert npuhealth.parse_summary(header) == []


@pytest.mark.parametrize("text", [*GARBAGE, A2_SAMPLE.replace("3382 / 65536", "lots / 65536")])
def test_summary_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        npuhealth.parse_summary(text)


def _lines(readings: list[ChipReading], name: str) -> list[ChipLine]:
    return [
        ChipLine(
            npu_id=r.npu_id,
            chip_id=r.chip_id,
            phy_id=index,
            name=name,
            health=r.health,
            power="-" if r.power_w is None else f"{r.power_w:.1f}",
            temp=f"{r.temp_c:.0f}",
            aicore=f"{r.aicore_pct:.0f}",
            hbm_used=r.hbm_used_mb or 0,
            hbm_total=r.hbm_total_mb or 0,
            bus=(r.bus_id or "").upper(),
        )
        for index, r in enumerate(readings)
    ]


@pytest.mark.parametrize(
    ("sample", "version", "name", "per_chip"),
    [(A2_SAMPLE, "24.1.0.3", "910B3", False), (A3_SAMPLE, "25.2.0", "Ascend910", True)],
    ids=["A2", "A3"],
)
def test_the_simulator_prints_the_real_layout_byte_for_byte(
    sample: str, version: str, name: str, per_chip: bool
) -> None:
    """Given a real table's values, the simulator's renderer prints that table's chip part exactly."""
    text = render_summary(version, _lines(npuhealth.parse_summary(sample), name), per_chip=per_chip)
    # Up to the rule after the last chip row (the samples' process tables are not the simulator's).
    chips_end = max(i for i, line in enumerate(sample.splitlines()) if line.startswith("| ") and "0000:" in line) + 2
    assert text.splitlines()[:chips_end] == sample.splitlines()[:chips_end]


def test_health_sample() -> None:
    assert npuhealth.parse_health(HEALTH_OK) == HealthDetail("OK", None, None)
    alarm = HEALTH_OK.replace(": OK", ": Alarm").replace(
        "Code                     : NA", "Code                     : 80E18005"
    )
    assert npuhealth.parse_health(alarm) == HealthDetail("Alarm", "80E18005", None)


@pytest.mark.parametrize("text", [*GARBAGE, "        Error Code                     : NA\n"])
def test_health_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        npuhealth.parse_health(text)


def test_link_and_net_health_samples() -> None:
    # Ascend/mind-cluster docs/zh/faultdiag/user_guide.md (command collection): both as printed there.
    assert npuhealth.parse_link("link status: UP\n") == "UP"
    assert npuhealth.parse_link("link status: down\n") == "DOWN"
    assert npuhealth.parse_net_health("net health status: Init\n") == "Init"
    # The A3 hccn_tool reference (hccntool_019) names this answer for an unusable detect IP.
    assert npuhealth.parse_net_health("net health status: Receive timeout\n") == "Receive timeout"


@pytest.mark.parametrize("text", [*GARBAGE, "Get link status failed, device id: 3, ret: -1\n"])
def test_hccn_garbage(text: str) -> None:
    with pytest.raises(ParseError):
        npuhealth.parse_link(text)
    with pytest.raises(ParseError):
        npuhealth.parse_net_health(text)


def test_argv() -> None:
    assert npuhealth.summary_argv() == ["npu-smi", "info"]
    assert npuhealth.health_argv(3, 1) == ["npu-smi", "info", "-t", "health", "-i", "3", "-c", "1"]
    assert npuhealth.link_argv(5) == ["hccn_tool", "-i", "5", "-link", "-g"]
    assert npuhealth.net_health_argv(5) == ["hccn_tool", "-i", "5", "-net_health", "-g"]


# --- against the simulated tools --------------------------------------------------------------


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SimHost]:
    base = tmp_path_factory.mktemp("hosts")
    return {name: build_sim_host(profile, base / name) for name, profile in PROFILES.items()}


def run(host: SimHost, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """The simulated tool, in this process (its code is the same the bin wrapper runs)."""
    monkeypatch.setenv("SUPERVISOR_PD_SIM_HOST", str(host.root))
    assert hosttools.main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_simulated_summary_health_link(name: str, hosts, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    host = hosts[name]
    monkeypatch.delenv(ENV, raising=False)
    readings = npuhealth.parse_summary(run(host, npuhealth.summary_argv(), monkeypatch, capsys))
    chips = host.profile.chips
    assert [(r.npu_id, r.chip_id, r.bus_id) for r in readings] == [(c.npu_id, c.chip_id, c.bdf) for c in chips]
    assert {r.health for r in readings} == {npuhealth.HEALTHY}
    assert all(r.hbm_total_mb == 65536 and r.temp_c is not None for r in readings)
    for chip in chips[:2]:
        detail = npuhealth.parse_health(
            run(host, npuhealth.health_argv(chip.npu_id, chip.chip_id), monkeypatch, capsys)
        )
        assert detail == HealthDetail("OK", None, None)
        if host.profile.hccn_tool:
            assert npuhealth.parse_link(run(host, npuhealth.link_argv(chip.phy_id), monkeypatch, capsys)) == "UP"
            net = run(host, npuhealth.net_health_argv(chip.phy_id), monkeypatch, capsys)
            assert npuhealth.parse_net_health(net) == "Success"


def test_simulated_faults_from_the_environment(hosts, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    host = hosts["800i-a3"]
    monkeypatch.setenv(ENV, "3:unhealthy, 5:link-down,6:net-unhealthy")
    readings = npuhealth.parse_summary(run(host, npuhealth.summary_argv(), monkeypatch, capsys))
    assert [(r.npu_id, r.chip_id) for r in readings if r.health != "OK"] == [(1, 1)]  # phy 3
    detail = npuhealth.parse_health(run(host, npuhealth.health_argv(1, 1), monkeypatch, capsys))
    assert detail.status == "Alarm" and detail.error_code and detail.information
    assert npuhealth.parse_health(run(host, npuhealth.health_argv(1, 0), monkeypatch, capsys)).status == "OK"
    assert npuhealth.parse_link(run(host, npuhealth.link_argv(5), monkeypatch, capsys)) == "DOWN"
    assert npuhealth.parse_net_health(run(host, npuhealth.net_health_argv(5), monkeypatch, capsys)) == "Success"
    assert npuhealth.parse_net_health(run(host, npuhealth.net_health_argv(6), monkeypatch, capsys)) == "Fault"
    assert npuhealth.parse_link(run(host, npuhealth.link_argv(6), monkeypatch, capsys)) == "UP"


def test_the_fault_file_wins_and_is_read_on_every_run(hosts, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    host = hosts["800i-a2"]
    monkeypatch.setenv(ENV, "2:link-down")
    try:
        write_host_faults(host.root, ["4:unhealthy"])
        assert npuhealth.parse_link(run(host, npuhealth.link_argv(2), monkeypatch, capsys)) == "UP"
        assert npuhealth.parse_health(run(host, npuhealth.health_argv(4, 0), monkeypatch, capsys)).status == "Alarm"
        write_host_faults(host.root, [])
        assert npuhealth.parse_health(run(host, npuhealth.health_argv(4, 0), monkeypatch, capsys)).status == "OK"
        write_host_faults(host.root, ["npu-smi:garbage"])
        with pytest.raises(ParseError):
            npuhealth.parse_summary(run(host, npuhealth.summary_argv(), monkeypatch, capsys))
    finally:
        clear_host_faults(host.root)
    assert npuhealth.parse_link(run(host, npuhealth.link_argv(2), monkeypatch, capsys)) == "DOWN"


@pytest.mark.parametrize(
    ("argv", "parser"),
    [
        (npuhealth.summary_argv(), npuhealth.parse_summary),
        (npuhealth.health_argv(0, 0), npuhealth.parse_health),
        (npuhealth.link_argv(0), npuhealth.parse_link),
        (npuhealth.net_health_argv(0), npuhealth.parse_net_health),
    ],
    ids=["summary", "health", "link", "net_health"],
)
def test_simulated_garbage(argv, parser, hosts, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(ENV, "npu-smi:garbage,hccn_tool:garbage")
    text = run(hosts["800i-a3"], argv, monkeypatch, capsys)
    with pytest.raises(ParseError):
        parser(text)


@pytest.mark.parametrize("tool", ["npu-smi", "hccn_tool"])
def test_a_hung_tool_outlasts_its_timeout(tool: str, hosts) -> None:  # type: ignore[no-untyped-def]
    host = hosts["800i-a3"]
    argv = npuhealth.summary_argv() if tool == "npu-smi" else npuhealth.link_argv(0)
    env = host.environ({**os.environ, ENV: f"{tool}:hang"})
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([str(host.bin_dir / argv[0]), *argv[1:]], env=env, capture_output=True, timeout=1, check=False)
