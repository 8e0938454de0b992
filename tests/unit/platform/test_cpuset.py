import os
from pathlib import Path

from supervisor_pd.platform.cpuset import container_cpuset
from supervisor_pd.platform.hostfs import HostFS
from supervisor_pd.platform.numa import ephemeral_port_range, numa_nodes, pci_numa_node


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_cgroup_v2_effective_cpus(tmp_path: Path) -> None:
    write(tmp_path, "/proc/self/cgroup", "0::/\n")
    write(tmp_path, "/sys/fs/cgroup/cpuset.cpus.effective", "4-7\n")
    write(tmp_path, "/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "0-63\n")
    assert container_cpuset(HostFS(tmp_path)) == ({4, 5, 6, 7}, "/sys/fs/cgroup/cpuset.cpus.effective")


def test_cgroup_v2_nested_path_of_this_process(tmp_path: Path) -> None:
    write(tmp_path, "/proc/self/cgroup", "0::/kubepods/pod1/ctr\n")
    write(tmp_path, "/sys/fs/cgroup/kubepods/pod1/ctr/cpuset.cpus.effective", "2,3\n")
    write(tmp_path, "/sys/fs/cgroup/cpuset.cpus.effective", "0-63\n")
    cpus, source = container_cpuset(HostFS(tmp_path))
    assert cpus == {2, 3}
    assert source.endswith("kubepods/pod1/ctr/cpuset.cpus.effective")


def test_cgroup_v1_when_v2_is_absent(tmp_path: Path) -> None:
    write(tmp_path, "/proc/self/cgroup", "6:cpuset:/docker/abc\n1:name=systemd:/docker/abc\n")
    write(tmp_path, "/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "8-15\n")
    # The container's own cgroup is mounted at the root, so the /docker/abc path does not exist.
    assert container_cpuset(HostFS(tmp_path)) == (set(range(8, 16)), "/sys/fs/cgroup/cpuset/cpuset.effective_cpus")


def test_affinity_when_no_cgroup_file_exists(tmp_path: Path) -> None:
    cpus, source = container_cpuset(HostFS(tmp_path))
    assert source == "sched_getaffinity"
    assert cpus == os.sched_getaffinity(0)


def test_empty_or_garbage_cgroup_file_falls_through(tmp_path: Path) -> None:
    write(tmp_path, "/sys/fs/cgroup/cpuset.cpus.effective", "\n")
    write(tmp_path, "/sys/fs/cgroup/cpuset/cpuset.effective_cpus", "junk\n")
    assert container_cpuset(HostFS(tmp_path))[1] == "sched_getaffinity"


def test_numa_nodes_and_pci_node(tmp_path: Path) -> None:
    write(tmp_path, "/sys/devices/system/node/node0/cpulist", "0-3\n")
    write(tmp_path, "/sys/devices/system/node/node1/cpulist", "4-7\n")
    write(tmp_path, "/sys/devices/system/node/node2/cpulist", "\n")  # memory-only node
    write(tmp_path, "/sys/devices/system/node/possible", "0-2\n")
    write(tmp_path, "/sys/bus/pci/devices/0000:c1:00.0/numa_node", "1\n")
    write(tmp_path, "/sys/bus/pci/devices/0000:c2:00.0/numa_node", "-1\n")
    host = HostFS(tmp_path)
    assert numa_nodes(host) == {0: {0, 1, 2, 3}, 1: {4, 5, 6, 7}}
    assert pci_numa_node(host, "0000:c1:00.0") == 1
    assert pci_numa_node(host, "0000:c2:00.0") is None
    assert pci_numa_node(host, "0000:c3:00.0") is None


def test_ephemeral_range(tmp_path: Path) -> None:
    assert ephemeral_port_range(HostFS(tmp_path)) == (32768, 60999)
    write(tmp_path, "/proc/sys/net/ipv4/ip_local_port_range", "40000\t50000\n")
    assert ephemeral_port_range(HostFS(tmp_path)) == (40000, 50000)
