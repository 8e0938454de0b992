import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.plan.layout import expected_roles, make_layout, resolve_rates
from supervisor_pd.plan.model import Role
from supervisor_pd.settings import Settings
from tests import factories


def model(data: dict) -> dict:
    return data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]


def test_servers_follow_world_size_and_numa() -> None:
    layout = make_layout(factories.chips(8, per_node=4), factories.inputs(), Settings())
    assert layout.world_size == 2
    assert [[c.phy_id for c in group] for group in layout.groups] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert layout.roles == (Role.PREFILL, Role.PREFILL, Role.DECODE, Role.DECODE)
    assert layout.notices == ()


def test_interleaved_numa_keeps_each_server_on_one_node() -> None:
    chips = factories.chips(8)
    chips = tuple(c.__class__(**{**c.__dict__, "numa_node": c.phy_id % 2}) for c in chips)
    layout = make_layout(chips, factories.inputs(), Settings())
    assert [[c.phy_id for c in group] for group in layout.groups] == [[0, 2], [4, 6], [1, 3], [5, 7]]
    assert layout.notices == ()


def test_a_server_that_must_span_nodes_is_reported() -> None:
    chips = factories.chips(8, per_node=3)  # nodes of 3, 3 and 2 chips
    layout = make_layout(chips, factories.inputs(template=lambda d: model(d).update(worldSize=4)), Settings())
    assert len(layout.groups) == 2
    assert any("span NUMA nodes" in n.message for n in layout.notices)


def test_tp_must_agree_with_world_size() -> None:
    with pytest.raises(InputError) as caught:
        make_layout(factories.chips(8), factories.inputs(template=lambda d: model(d).update(tp=4)), Settings())
    assert caught.value.where.endswith("ModelConfig[0].tp")
    assert "worldSize is 2" in caught.value.problem


def test_tp_given_as_text_is_accepted_when_it_agrees() -> None:
    layout = make_layout(factories.chips(8), factories.inputs(template=lambda d: model(d).update(tp="2")), Settings())
    assert layout.world_size == 2


@pytest.mark.parametrize(("world", "problem"), [(3, "does not divide"), (8, "at least 2")])
def test_world_size_must_give_two_or_more_equal_servers(world: int, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        make_layout(
            factories.chips(8), factories.inputs(template=lambda d: model(d).update(worldSize=world)), Settings()
        )
    assert caught.value.where == "config.json: BackendConfig.ModelDeployConfig.ModelConfig[0].worldSize"
    assert problem in caught.value.problem


def test_more_than_16_servers_are_refused() -> None:
    # MindIE-Motor DefaultGroupGenerator::GenerateGroups: LIMIT_MAX 16 outside multi-node mode.
    with pytest.raises(InputError) as caught:
        make_layout(factories.chips(32), factories.inputs(template=lambda d: model(d).update(worldSize=1)), Settings())
    assert caught.value.where.endswith("worldSize")
    assert "at most 16" in caught.value.problem
    layout = make_layout(
        factories.chips(16), factories.inputs(template=lambda d: model(d).update(worldSize=1)), Settings()
    )
    assert len(layout.groups) == 16


def test_servers_of_different_world_size_are_refused() -> None:
    first = factories.sample("config.json")
    second = factories.sample("config.json")
    model(second)["worldSize"] = 4
    with pytest.raises(InputError, match="same number of NPUs"):
        make_layout(factories.chips(8), factories.inputs(servers={1: first, 2: second}), Settings())


@pytest.mark.parametrize(
    ("servers", "p", "d", "expected"),
    [
        (4, 1, 1, "PPDD"),
        (3, 1, 1, "PPD"),
        (8, 1, 3, "PPDDDDDD"),
        (8, 3, 1, "PPPPPPDD"),
        (2, 1, 1, "PD"),
        (16, 15, 1, "PPPPPPPPPPPPPPPD"),
        # Where MindIE's one-at-a-time split differs from ceil(n * p / (p + d)):
        (5, 2, 1, "PPPDD"),
        (3, 2, 3, "PDD"),
        (8, 2, 3, "PPPDDDDD"),
    ],
)
def test_expected_roles(servers: int, p: int, d: int, expected: str) -> None:
    assert "".join(r.value[0].upper() for r in expected_roles(servers, p, d)) == expected


def test_rates_zero_zero_leave_roles_to_the_controller() -> None:
    assert set(expected_roles(4, 0, 0)) == {Role.AUTO}


def test_environment_rates_override_the_file() -> None:
    p, d, source = resolve_rates(factories.inputs(), Settings(p_rate=3, d_rate=1), 4)
    assert (p, d) == (3, 1)
    assert "MINDIE_MS_P_RATE" in source


@pytest.mark.parametrize(
    ("settings", "where", "problem"),
    [
        (Settings(p_rate=1, d_rate=0), "MINDIE_MS_P_RATE, MINDIE_MS_D_RATE", "both must be 0"),
        (Settings(p_rate=0), "MINDIE_MS_P_RATE, ms_controller.json: default_d_rate", "both must be 0"),
        (Settings(p_rate=3, d_rate=2), "MINDIE_MS_P_RATE, MINDIE_MS_D_RATE", "more than the 4 Servers"),
    ],
)
def test_contradictory_rates(settings: Settings, where: str, problem: str) -> None:
    with pytest.raises(InputError) as caught:
        resolve_rates(factories.inputs(), settings, 4)
    assert caught.value.where == where
    assert problem in caught.value.problem
