import pytest

from supervisor_pd.platform import hccn, pci
from supervisor_pd.platform.cpuset import format_cpulist, parse_cpulist
from supervisor_pd.platform.facts import DeviceType
from supervisor_pd.platform.visibility import parse_id_list


def test_hccn_tool_ip() -> None:
    assert hccn.parse_hccn_tool_ip("ipaddr:29.1.1.1\nnetmask:255.255.0.0\n") == "29.1.1.1"
    assert hccn.parse_hccn_tool_ip("ipaddr:0.0.0.0\n") is None
    assert hccn.parse_hccn_tool_ip("Get ip address failed, ret: -1\n") is None


def test_hccn_conf_reads_addresses_by_physical_id() -> None:
    text = "address_0=29.1.1.1\nnetmask_0=255.255.0.0\naddress_7 = 29.1.1.8\naddress_3=bad\n# comment\n"
    assert hccn.parse_hccn_conf(text) == {0: "29.1.1.1", 7: "29.1.1.8"}


def test_placeholder_follows_the_reference_scheme() -> None:
    assert [hccn.placeholder_ip(i) for i in range(3)] == ["1.1.1.1", "1.1.1.2", "1.1.1.3"]


def test_lspci_device_ids() -> None:
    a2 = "c1:00.0 Processing accelerators: Huawei Technologies Co., Ltd. Device d802 (rev 20)\n"
    a3 = "41:00.0 Processing accelerators: Huawei Technologies Co., Ltd. Device d803 (rev 20)\n"
    other = "41:00.0 Processing accelerators: Huawei Technologies Co., Ltd. Device d500 (rev 20)\n"
    assert pci.device_type_from_lspci(a2) is DeviceType.A2
    assert pci.device_type_from_lspci(a3) is DeviceType.A3
    assert pci.device_type_from_lspci(other) is None
    assert pci.device_type_from_lspci("00:00.0 Host bridge: Device d802\n") is None


@pytest.mark.parametrize(
    ("name", "per_npu", "expected"),
    [
        ("Ascend 910B3", 1, DeviceType.A2),
        ("910B4", 1, DeviceType.A2),
        ("Ascend 910C", 2, DeviceType.A3),
        ("Ascend910", 2, DeviceType.A3),
        ("Ascend910", 1, None),
        ("Ascend 310P3", 1, None),
    ],
)
def test_chip_name_fallback(name: str, per_npu: int, expected: DeviceType | None) -> None:
    assert pci.device_type_from_chip(name, per_npu) is expected


def test_cpulist_round_trip() -> None:
    cpus = parse_cpulist("0-3,8,10-11\n")
    assert cpus == {0, 1, 2, 3, 8, 10, 11}
    assert format_cpulist(cpus) == "0-3,8,10-11"
    assert format_cpulist([]) == ""
    assert format_cpulist([5]) == "5"


@pytest.mark.parametrize("text", ["0-", "a", "3-1", "1,x"])
def test_cpulist_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="not a CPU list"):
        parse_cpulist(text)


def test_visible_device_lists() -> None:
    assert parse_id_list("0-2,6", allow_ranges=True) == [0, 1, 2, 6]
    assert parse_id_list("Ascend910-3,Ascend910-1", allow_ranges=True) == [3, 1]
    assert parse_id_list("2,0", allow_ranges=False) == [2, 0]


@pytest.mark.parametrize(
    ("text", "allow", "message"),
    [
        ("0-3", False, "ranges are not allowed"),
        ("1,,2", True, "empty entry"),
        ("x", True, "not a number"),
        ("3-1", True, "runs backwards"),
        ("1,1", True, "twice"),
    ],
)
def test_visible_device_lists_reject(text: str, allow: bool, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_id_list(text, allow_ranges=allow)
