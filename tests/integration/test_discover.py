"""Discovery against simulated hosts: real subprocesses of the simulated npu-smi/hccn_tool/lspci."""

import json
import os
from pathlib import Path

import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.platform.discover import discover
from supervisor_pd.platform.facts import DeviceType, Level
from supervisor_pd.settings import load_settings
from tests.helpers import sim_env, sim_host


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def apply(env: dict[str, str]) -> None:
        for name in list(os.environ):
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply


def test_a2(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    use_env(sim_env(tmp_path, sim_host(tmp_path, "800i-a2")))
    facts = discover(load_settings())
    assert facts.device_type is DeviceType.A2
    assert facts.device_type_source == "lspci (Device d802)"
    assert [(c.phy_id, c.logical_id, c.numa_node) for c in facts.chips] == [(i, i, i // 4) for i in range(8)]
    assert [c.device_ip for c in facts.chips] == [f"29.1.1.{i + 1}" for i in range(8)]
    assert {c.device_ip_source for c in facts.chips} == {"hccn_tool"}
    assert facts.chips[0].bdf == "0000:c1:00.0"
    assert len(facts.container_cpus) == 192
    assert facts.cpuset_source == "/sys/fs/cgroup/cpuset/cpuset.effective_cpus"
    assert sorted(facts.numa_nodes) == [0, 1]
    assert facts.notices == ()


def test_a3_reads_both_dies_and_super_pod_ids(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    use_env(sim_env(tmp_path, sim_host(tmp_path, "800i-a3")))
    facts = discover(load_settings())
    assert facts.device_type is DeviceType.A3
    assert len(facts.chips) == 16
    assert [(c.npu_id, c.chip_id) for c in facts.chips[:4]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [c.super_device_id for c in facts.chips[:2]] == ["16777984", "16777985"]
    assert facts.super_pod_id == "0"
    assert facts.cpuset_source == "/sys/fs/cgroup/cpuset.cpus.effective"
    assert [c.numa_node for c in facts.chips] == [i // 4 for i in range(16)]


def test_a3_prefers_the_operators_completed_hccl_json(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    host = sim_host(tmp_path, "800i-a3")
    hccl = {
        "status": "completed",
        "version": "1.2",
        "server_count": "1",
        "server_list": [
            {
                "server_id": "10.0.0.1",
                "device": [
                    {
                        "device_id": str(i),
                        "device_ip": f"192.168.{i}.1",
                        "super_device_id": str(5000 + i),
                        "rank_id": str(i),
                    }
                    for i in range(16)
                ],
            }
        ],
        "super_pod_list": [{"super_pod_id": "3", "server_list": [{"server_id": "10.0.0.1"}]}],
    }
    path = host.root / "user/serverid/devindex/config/hccl.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(hccl))
    use_env(sim_env(tmp_path, host))
    facts = discover(load_settings())
    assert facts.super_pod_id == "3"
    assert facts.chips[5].super_device_id == "5005"
    assert facts.chips[5].device_ip == "192.168.5.1"
    assert facts.chips[5].device_ip_source == "hccl.json"


def _server(server_ip: str, pod_ip: str, third_octet: int) -> dict[str, object]:
    return {
        "server_id": server_ip,
        "container_ip": pod_ip,
        "device": [
            {"device_id": str(i), "device_ip": f"192.{third_octet}.{i}.1", "super_device_id": str(5000 + i)}
            for i in range(16)
        ],
    }


@pytest.mark.parametrize("pod_ip", ["10.1.0.2", "10.1.0.3", None])
def test_a3_takes_its_own_entry_of_a_several_pod_hccl_json(tmp_path: Path, use_env, pod_ip) -> None:  # type: ignore[no-untyped-def]
    host = sim_host(tmp_path, "800i-a3")
    # Two pods of one job: the same device ids on both nodes, different device IPs.
    hccl = {
        "status": "completed",
        "server_list": [_server("10.0.0.1", "10.1.0.2", 168), _server("10.0.0.2", "10.1.0.3", 169)],
        "super_pod_list": [{"super_pod_id": "3"}],
    }
    path = host.root / "user/serverid/devindex/config/hccl.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(hccl))
    env = sim_env(tmp_path, host)
    if pod_ip is not None:
        env["POD_IP"] = pod_ip
    use_env(env)
    facts = discover(load_settings())
    if pod_ip is None:  # which entry is ours cannot be told: npu-smi spod-info is asked instead
        assert facts.chips[5].device_ip_source != "hccl.json"
        assert any("lists 2 servers and POD_IP is not set" in n.message for n in facts.notices)
        return
    octet = 168 if pod_ip == "10.1.0.2" else 169
    assert facts.chips[5].device_ip == f"192.{octet}.5.1" and facts.chips[5].device_ip_source == "hccl.json"


def test_a3_with_an_initializing_hccl_json_falls_back(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    host = sim_host(tmp_path, "800i-a3")
    path = host.root / "user/serverid/devindex/config/hccl.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"status": "initializing"}')
    use_env(sim_env(tmp_path, host))
    facts = discover(load_settings())
    assert facts.chips[0].super_device_id == "16777984"
    assert any("initializing" in n.message for n in facts.notices)


def test_a_container_limited_to_four_npus(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    use_env(sim_env(tmp_path, sim_host(tmp_path, "800i-a2-4npu")))
    facts = discover(load_settings())
    # Physical ids come from /dev/davinci4-7; inside the container the runtime counts from 0.
    assert [(c.npu_id, c.phy_id, c.logical_id) for c in facts.chips] == [(4, 4, 0), (5, 5, 1), (6, 6, 2), (7, 7, 3)]
    # hccn_tool is not installed in this container: the IPs come from /etc/hccn.conf.
    assert [c.device_ip for c in facts.chips] == ["29.1.1.5", "29.1.1.6", "29.1.1.7", "29.1.1.8"]
    assert {c.device_ip_source for c in facts.chips} == {"/etc/hccn.conf"}
    assert facts.container_cpus == set(range(96, 144))


def test_visible_devices_restrict_a_full_host(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    env = sim_env(tmp_path, sim_host(tmp_path, "800i-a2"))
    use_env({**env, "ASCEND_VISIBLE_DEVICES": "2-5"})
    facts = discover(load_settings())
    assert [(c.phy_id, c.logical_id) for c in facts.chips] == [(2, 2), (3, 3), (4, 4), (5, 5)]
    assert any(n.level is Level.INFO and "limits this container" in n.message for n in facts.notices)


def test_runtime_visible_devices_renumber(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    env = sim_env(tmp_path, sim_host(tmp_path, "800i-a2"))
    use_env({**env, "ASCEND_RT_VISIBLE_DEVICES": "1,3,5,7"})
    facts = discover(load_settings())
    assert [(c.phy_id, c.logical_id) for c in facts.chips] == [(1, 0), (3, 1), (5, 2), (7, 3)]


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("ASCEND_VISIBLE_DEVICES", "6-9", "names NPU 8, which is not on this host"),
        ("ASCEND_VISIBLE_DEVICES", "0-x", "is not a number or a range"),
        ("ASCEND_RT_VISIBLE_DEVICES", "3,1", "ascending order"),
        ("ASCEND_RT_VISIBLE_DEVICES", "0,8", "names logical id 8"),
    ],
)
def test_bad_visibility(tmp_path: Path, use_env, variable: str, value: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    use_env({**sim_env(tmp_path, sim_host(tmp_path, "800i-a2")), variable: value})
    with pytest.raises(InputError) as caught:
        discover(load_settings())
    assert caught.value.where == variable
    assert problem in caught.value.problem


def test_missing_device_nodes_are_left_out(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    host = sim_host(tmp_path, "800i-a2")
    (host.root / "dev/davinci7").unlink()
    use_env(sim_env(tmp_path, host))
    facts = discover(load_settings())
    assert [c.phy_id for c in facts.chips] == list(range(7))
    assert any("davinci" in n.message for n in facts.notices)


def test_no_device_node_at_all_is_an_error(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    host = sim_host(tmp_path, "800i-a2")
    for node in host.root.glob("dev/davinci[0-9]*"):
        node.unlink()
    use_env(sim_env(tmp_path, host))
    with pytest.raises(InputError, match="no /dev/davinciN node"):
        discover(load_settings())


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        ("fail", "exited with 255: dcmi model initialized failed"),
        ("garbage", "cannot read"),
        ("empty", "no NPU is visible"),
    ],
)
def test_npu_smi_trouble(tmp_path: Path, use_env, mode: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    use_env({**sim_env(tmp_path, sim_host(tmp_path, "800i-a2")), "SUPERVISOR_PD_SIM_NPU_SMI": mode})
    with pytest.raises(InputError) as caught:
        discover(load_settings())
    assert caught.value.where == "npu-smi"
    assert problem in caught.value.problem


def test_npu_smi_missing(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    host = sim_host(tmp_path, "800i-a2")
    (host.bin_dir / "npu-smi").unlink()
    env = sim_env(tmp_path, host)
    env["PATH"] = f"{host.bin_dir}:/nonexistent"
    use_env(env)
    with pytest.raises(InputError) as caught:
        discover(load_settings())
    assert "`npu-smi` was not found on PATH" in caught.value.problem


def test_hccn_tool_failing_for_one_device_uses_a_placeholder_with_a_warning(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    use_env({**sim_env(tmp_path, sim_host(tmp_path, "800i-a2")), "SUPERVISOR_PD_SIM_HCCN_FAIL": "3"})
    facts = discover(load_settings())
    assert facts.chips[3].device_ip == "1.1.1.4"
    assert facts.chips[3].device_ip_source == "placeholder"
    assert facts.chips[2].device_ip == "29.1.1.3"
    warning = next(n for n in facts.notices if n.subject == "device IPs")
    assert "NPU(s) 3" in warning.message and "Get ip address failed" in warning.message


def test_strict_device_ips_refuse_placeholders(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    env = sim_env(tmp_path, sim_host(tmp_path, "800i-a2"))
    use_env({**env, "SUPERVISOR_PD_SIM_HCCN_FAIL": "3", "SUPERVISOR_PD_DEVICE_IPS": "strict"})
    with pytest.raises(InputError) as caught:
        discover(load_settings())
    assert caught.value.where == "SUPERVISOR_PD_DEVICE_IPS=strict"
    assert "NPU 3 has no device IP" in caught.value.problem


def test_without_lspci_the_chip_name_decides(tmp_path: Path, use_env) -> None:  # type: ignore[no-untyped-def]
    host = sim_host(tmp_path, "800i-a3")
    (host.bin_dir / "lspci").unlink()
    env = sim_env(tmp_path, host)
    env["PATH"] = str(host.bin_dir)
    use_env(env)
    facts = discover(load_settings())
    assert facts.device_type is DeviceType.A3
    assert facts.device_type_source == "npu-smi chip name 'Ascend910'"
