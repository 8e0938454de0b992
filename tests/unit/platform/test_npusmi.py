import pytest

from supervisor_pd.platform import npusmi

A2_LIST = """
        Card Count                     : 2

        NPU ID                         : 0
        Product Name                   : IT21DMDA
        Serial Number                  : 102xxxxxxxxx
        Chip Count                     : 1

        NPU ID                         : 1
        Product Name                   : IT21DMDA
        Serial Number                  : 102xxxxxxxxx
        Chip Count                     : 1
"""

A3_LIST_FULLWIDTH = """
        Total Count                    : 1

        NPU ID                         ： 0
        Chip Count                     ： 2
"""

A2_MAP = (
    "\tNPU ID                         Chip ID                        Chip Logic ID                  Chip Name\n"
    "\t0                              0                              0                              Ascend 910B3\n"
    "\t0                              1                              -                              Mcu\n"
    "\t1                              0                              1                              Ascend 910B3\n"
    "\t1                              1                              -                              Mcu\n"
)

PHY_MAP = "NPU ID  Chip ID  Chip Logic ID  Chip Phy-ID Chip Name\n0 0 0 8 Ascend910\n0 1 1 9 Ascend910\n0 2 - - Mcu\n"

CONTAINER_MAP = "NPU ID  Chip ID  Chip Logic ID  Chip Name\n8 0 0 Ascend\n8 1 - Mcu\n9 0 1 Ascend\n"

BOARD = """
        NPU ID                         : 0
        Chip ID                        : 0
        Chip Name                      : 910B3
        PCIe Bus Info                  : 0000:C1:00.0
        Chip Count                     : 1
"""


def test_list_reads_each_npu_and_its_chip_count() -> None:
    assert npusmi.parse_list(A2_LIST) == [
        npusmi.ListedNpu(0, 1, "IT21DMDA"),
        npusmi.ListedNpu(1, 1, "IT21DMDA"),
    ]


def test_list_accepts_the_full_width_colon_some_locales_print() -> None:
    assert npusmi.parse_list(A3_LIST_FULLWIDTH) == [npusmi.ListedNpu(0, 2, "")]


def test_list_of_a_host_without_npus_is_empty() -> None:
    assert npusmi.parse_list("        Card Count                     : 0\n") == []


@pytest.mark.parametrize("text", ["NPU ID : zero\n", "dcmi model initialized failed\n"])
def test_list_rejects_garbage(text: str) -> None:
    with pytest.raises(npusmi.ParseError):
        npusmi.parse_list(text)


def test_map_skips_mcu_rows_and_keeps_multi_word_names() -> None:
    chips = npusmi.parse_map(A2_MAP)
    assert [(c.npu_id, c.chip_id, c.logic_id, c.phy_id, c.chip_name) for c in chips] == [
        (0, 0, 0, None, "Ascend 910B3"),
        (1, 0, 1, None, "Ascend 910B3"),
    ]


def test_map_reads_the_phy_id_column_of_newer_drivers() -> None:
    chips = npusmi.parse_map(PHY_MAP)
    assert [(c.logic_id, c.phy_id) for c in chips] == [(0, 8), (1, 9)]


def test_map_inside_a_container_keeps_npu_ids_and_renumbered_logic_ids() -> None:
    chips = npusmi.parse_map(CONTAINER_MAP)
    assert [(c.npu_id, c.logic_id) for c in chips] == [(8, 0), (9, 1)]


@pytest.mark.parametrize("text", ["", "garbage\n", "NPU ID Chip ID Chip Logic ID Chip Name\nx y z w\n"])
def test_map_rejects_garbage(text: str) -> None:
    with pytest.raises(npusmi.ParseError):
        npusmi.parse_map(text)


def test_board_bdf_is_normalised_to_sysfs_form() -> None:
    assert npusmi.parse_board_bdf(BOARD) == "0000:c1:00.0"


def test_board_without_bus_info_gives_none() -> None:
    assert npusmi.parse_board_bdf("        NPU ID : 0\n") is None
    assert npusmi.parse_board_bdf("        PCIe Bus Info : NA\n") is None


def test_short_bdf_gets_the_default_domain() -> None:
    assert npusmi.normalise_bdf("c1:00.1") == "0000:c1:00.1"


def test_spod_info() -> None:
    text = "SDID : 16777216\nSuper Pod Size : 384\nSuper Pod ID : 0\nServer Index : 4\n"
    info = npusmi.parse_spod_info(text)
    assert info == npusmi.SuperPodInfo(sdid="16777216", super_pod_id="0", server_index="4")
    assert npusmi.parse_spod_info("This device does not support querying spod-info.\n") is None
