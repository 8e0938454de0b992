import copy

import pytest

from supervisor_pd.formats.ranktable import check_global_ranktable

VALID = {
    "version": "1.0",
    "server_group_list": [
        {
            "group_id": "2",
            "server_count": 2,
            "server_list": [
                {
                    "server_id": "127.0.0.1",
                    "server_ip": "127.0.0.1",
                    "predict_port": "2001",
                    "mgmt_port": "2002",
                    "metric_port": "2003",
                    "inter_comm_port": "2004",
                    "device": [{"device_id": "0", "device_ip": "1.1.1.1", "rank_id": "0", "device_logical_id": "0"}],
                },
                {
                    "server_id": "127.0.0.1",
                    "server_ip": "127.0.0.1",
                    "predict_port": "2005",
                    "mgmt_port": "2006",
                    "metric_port": "2007",
                    "inter_comm_port": "2008",
                    "device": [{"device_id": "1", "device_ip": "1.1.1.2", "rank_id": "1", "device_logical_id": "1"}],
                },
            ],
        },
        {"group_id": "1", "server_count": 1, "server_list": [{"server_ip": "127.0.0.1"}]},
        {"group_id": "0", "server_count": 1, "server_list": [{"server_ip": "127.0.0.1"}]},
    ],
    "status": "completed",
}


def broken(change) -> dict:  # type: ignore[no-untyped-def]
    data = copy.deepcopy(VALID)
    change(data)
    return data


def server(data: dict, index: int = 0) -> dict:
    return data["server_group_list"][0]["server_list"][index]


def test_the_reference_sample_is_valid() -> None:
    assert check_global_ranktable(VALID) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["server_group_list"].pop(), 'no group with group_id "0"'),
        (lambda d: d.update(server_group_list=[]), "2 or 3 groups"),
        (lambda d: server(d).update(predict_port=2001), "must be a string port"),
        (lambda d: server(d).update(mgmt_port="80"), "must be a string port"),
        (lambda d: server(d).update(server_ip="0.0.0.0"), "server_ip must be a valid IP"),
        (lambda d: server(d)["device"][0].update(device_id=0), "device_id must be a number"),
        (lambda d: server(d)["device"][0].update(rank_id="3000"), "rank_id must be a number"),
        (lambda d: server(d).update(device=[]), "1 to 128 devices"),
        (lambda d: server(d)["device"][0].update(super_device_id="x"), "super_device_id"),
        (lambda d: server(d, 1).update(mgmt_port="2002"), "non-unique node id"),
        (lambda d: d["server_group_list"][0].update(group_id="1"), "no Server group"),
    ],
)
def test_controller_rules(change, problem: str) -> None:  # type: ignore[no-untyped-def]
    problems = check_global_ranktable(broken(change))
    assert any(problem in text for text in problems), problems
