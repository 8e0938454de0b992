"""The TLS part of the plan: which links are encrypted, the fields written, the refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from supervisor_pd.certs.inputs import TlsInputs
from supervisor_pd.errors import InputError
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.public_vars import PublicVariables
from supervisor_pd.settings import Settings
from tests import factories
from tests.factories import FakeChecker

HOME = Path("/opt/mindie")


def tls_inputs(**changes: Any) -> TlsInputs:
    base: dict[str, Any] = {
        "server_home": HOME,
        "home_source": "MIES_INSTALL_PATH",
        "generation": "current",
        "generation_source": "",
        "mount": Path("/mnt/security"),
        "mounted": None,
        "authority": None,
        "hostname": "pod-0",
    }
    base.update(changes)
    return TlsInputs(**base)


def plan_for(inputs=None, settings=None, tls=None):  # type: ignore[no-untyped-def]
    return make_plan(
        factories.facts(factories.chips(8, per_node=4)),
        inputs or factories.inputs(),
        settings or Settings(),
        FakeChecker(),
        tls or tls_inputs(),
    )


def mindie_defaults(d: dict) -> None:
    """MindIE's shipped default: every switch on."""
    for key in list(d.get("tls_config", {})):
        if key.endswith("_tls_enable"):
            d["tls_config"][key] = True
    if "ServerConfig" in d:
        d["ServerConfig"]["httpsEnabled"] = True
        d["ServerConfig"].pop("interCommTLSEnabled")  # absent: MindIE reads true


def tls_on_inputs():  # type: ignore[no-untyped-def]
    return factories.inputs(template=mindie_defaults, controller=mindie_defaults, coordinator=mindie_defaults)


def load(plan, name: str) -> dict:  # type: ignore[no-untyped-def]
    return orjson.loads(plan.file(name).content)


def test_sample_configs_plan_plain_http_and_say_so() -> None:
    plan = plan_for()
    assert plan.tls.mode == "off"
    assert not plan.tls.enabled
    assert any(n.subject == "tls" and "network-security risk" in n.message for n in plan.notices)


def test_mindie_defaults_get_generated_certificates_on_every_link() -> None:
    plan = plan_for(inputs=tls_on_inputs(), settings=Settings(pod_ip="10.0.0.7"))
    tls = plan.tls
    assert tls.mode == "generate"
    assert all(link.encrypted for link in tls.links)
    assert tls.folder == str(HOME / "security/supervisor-pd")
    assert {"127.0.0.1", "10.0.0.7"} <= set(tls.san_ips)
    assert tls.san_names == ("localhost", "pod-0")
    server = load(plan, "config1.json")["ServerConfig"]
    assert server["httpsEnabled"] is True
    assert server["interCommTLSEnabled"] is True
    # Relative to the Server's home, which is the only place it reads certificates from.
    for field in ("tlsCert", "managementTlsCert", "metricsTlsCert", "interCommTlsCert"):
        assert server[field] == "security/supervisor-pd/cert.pem"
    assert server["interCommPk"] == server["tlsPk"] == "security/supervisor-pd/cert.key.pem"
    assert server["tlsCaFile"] == server["managementTlsCaFile"] == server["interCommTlsCaFiles"] == ["ca.pem"]
    assert server["tlsCrlPath"] == "" and server["tlsCrlFiles"] == []
    for name, pairs in (
        ("ms_controller.json", ("request_coordinator", "request_server", "http_server", "external_coordinator")),
        ("ms_coordinator.json", ("request_server", "controller_server", "status", "external", "mindie_client")),
    ):
        tls_config = load(plan, name)["tls_config"]
        for pair in pairs:
            assert tls_config[f"{pair}_tls_enable"] is True
            items = tls_config[f"{pair}_tls_items"]
            assert items["tls_key"] == str(HOME / "security/supervisor-pd/cert.key.pem")
            assert items["tls_passwd"] == str(HOME / "security/supervisor-pd/key_pwd.txt")
            assert items["tls_crl"] == ""


def test_generate_turns_every_switch_on_even_when_the_configs_say_off() -> None:
    plan = plan_for(settings=Settings(tls="generate"))
    assert all(link.encrypted for link in plan.tls.links)
    assert load(plan, "config1.json")["ServerConfig"]["httpsEnabled"] is True
    assert load(plan, "ms_coordinator.json")["tls_config"]["status_tls_enable"] is True


def test_off_turns_mindie_defaults_off() -> None:
    plan = plan_for(inputs=tls_on_inputs(), settings=Settings(tls="off"))
    assert not plan.tls.enabled
    server = load(plan, "config1.json")["ServerConfig"]
    assert server["httpsEnabled"] is False and server["interCommTLSEnabled"] is False
    assert load(plan, "ms_controller.json")["tls_config"]["http_server_tls_enable"] is False


def test_auto_keeps_a_listener_the_configs_leave_plain() -> None:
    def controller(d: dict) -> None:
        mindie_defaults(d)
        d["tls_config"]["http_server_tls_enable"] = False

    inputs = factories.inputs(template=mindie_defaults, controller=controller, coordinator=mindie_defaults)
    plan = plan_for(inputs=inputs)
    assert plan.tls.on("controller_http") is False
    assert plan.tls.on("server_management") is True


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (("controller", "request_server_tls_enable"), "ms_controller.json: tls_config.request_server_tls_enable"),
        (("coordinator", "mindie_client_tls_enable"), "ms_coordinator.json: tls_config.mindie_client_tls_enable"),
        (("coordinator", "mindie_mangment_tls_enable"), "ms_coordinator.json: tls_config.mindie_mangment_tls_enable"),
        (
            ("controller", "request_coordinator_tls_enable"),
            "ms_controller.json: tls_config.request_coordinator_tls_enable",
        ),
    ],
)
def test_auto_refuses_a_client_and_listener_that_disagree(edit: tuple[str, str], where: str) -> None:
    component, key = edit

    def off(d: dict) -> None:
        mindie_defaults(d)
        d["tls_config"][key] = False

    changes = {"template": mindie_defaults, "controller": mindie_defaults, "coordinator": mindie_defaults}
    changes[component] = off
    with pytest.raises(InputError) as caught:
        plan_for(inputs=factories.inputs(**changes))
    assert caught.value.where == where
    assert "both use TLS or both not" in caught.value.problem


def test_servers_that_disagree_on_https_are_refused() -> None:
    on = factories.sample("config.json")
    on["ServerConfig"]["httpsEnabled"] = True
    off = factories.sample("config.json")
    servers = {1: on, 2: off, 3: on, 4: on}
    with pytest.raises(InputError) as caught:
        plan_for(inputs=factories.inputs(servers=servers), settings=Settings(gen_server_port=False))
    assert caught.value.where == "config2.json: ServerConfig.httpsEnabled"


def test_old_kmc_image_with_generate_names_mindies_tool_and_the_one_off_step() -> None:
    with pytest.raises(InputError) as caught:
        plan_for(
            settings=Settings(tls="generate"),
            tls=tls_inputs(generation="kmc", generation_source="config.json: ServerConfig.kmcKsfMaster"),
        )
    assert caught.value.where == "config.json: ServerConfig.kmcKsfMaster"
    assert "config_mindie_server_tls_cert.py" in caught.value.problem
    assert "import_cert" in caught.value.problem and "gen_cert" in caught.value.problem


def test_a_home_mindie_would_not_read_from_is_refused() -> None:
    with pytest.raises(InputError) as caught:
        plan_for(settings=Settings(tls="generate"), tls=tls_inputs(server_home=Path("/opt/my mindie")))
    assert "' '" in caught.value.problem


def test_no_server_home_names_mies_install_path() -> None:
    with pytest.raises(InputError) as caught:
        plan_for(settings=Settings(tls="generate"), tls=tls_inputs(server_home=None, home_source="not found"))
    assert caught.value.where == "MIES_INSTALL_PATH"


def test_mounted_without_files_names_the_mount() -> None:
    with pytest.raises(InputError) as caught:
        plan_for(settings=Settings(tls="mounted"))
    assert caught.value.where == "SUPERVISOR_PD_TLS_MOUNT"
    assert "certs/server.pem" in caught.value.problem


def test_pairs_of_features_one_container_never_starts_are_off_with_our_certificates() -> None:
    plan = plan_for(inputs=tls_on_inputs(), settings=Settings(tls="generate"))
    controller = load(plan, "ms_controller.json")["tls_config"]
    coordinator = load(plan, "ms_coordinator.json")["tls_config"]
    assert [controller[f"{pair}_tls_enable"] for pair in ("cluster", "etcd_server", "ccae", "alarm")] == [False] * 4
    assert coordinator["etcd_server_tls_enable"] is False and coordinator["alarm_client_tls_enable"] is False
    # auto with certificates of ours does the same; with TLS off they are left as the configs have them
    auto = load(plan_for(inputs=tls_on_inputs()), "ms_controller.json")["tls_config"]
    assert auto["cluster_tls_enable"] is False
    off = load(plan_for(inputs=tls_on_inputs(), settings=Settings(tls="off")), "ms_controller.json")["tls_config"]
    assert off["cluster_tls_enable"] is True


def test_a_mounted_certificate_without_the_servers_address_is_refused_when_the_link_is_encrypted() -> None:
    import datetime as dt

    from supervisor_pd.certs.pki import Material
    from tests import certs

    ca = certs.make_ca()
    leaf = certs.make_leaf(ca, ips=["10.9.9.9"])
    material = Material(
        ca.cert_pem, leaf.cert_pem, leaf.key_pem(), None, dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC)
    )
    with pytest.raises(InputError) as caught:
        plan_for(settings=Settings(tls="mounted"), tls=tls_inputs(mounted=material))
    assert caught.value.where.endswith("certs/server.pem")
    assert "127.0.0.1" in caught.value.problem and "10.9.9.9" in caught.value.problem
    good = certs.make_leaf(ca, ips=["127.0.0.1"])
    material = Material(
        ca.cert_pem, good.cert_pem, good.key_pem(), None, dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC)
    )
    assert plan_for(settings=Settings(tls="mounted"), tls=tls_inputs(mounted=material)).tls.mode == "mounted"


def with_variables(inputs, **variables: str):  # type: ignore[no-untyped-def]
    return make_plan(
        factories.facts(factories.chips(8, per_node=4)),
        inputs,
        Settings(),
        FakeChecker(),
        tls_inputs(),
        PublicVariables.model_validate(variables),
    )


def test_mindies_tls_variables_set_the_servers_switches_as_its_boot_helper_does() -> None:
    # Every switch on in the configs, the P->D link switched off by the variable.
    plan = with_variables(tls_on_inputs(), MINDIE_INTER_COMM_TLS_ENABLED="false")
    assert plan.tls.mode == "generate"
    assert load(plan, "config1.json")["ServerConfig"]["interCommTLSEnabled"] is False
    assert load(plan, "config1.json")["ServerConfig"]["httpsEnabled"] is True
    assert not next(link for link in plan.tls.links if link.key == "inter_comm").encrypted


def test_a_tls_variable_that_breaks_a_clients_agreement_is_named() -> None:
    with pytest.raises(InputError) as caught:
        with_variables(tls_on_inputs(), MINDIE_ENDPOINT_HTTPS_ENABLED="false")
    assert "but MINDIE_ENDPOINT_HTTPS_ENABLED is false" in caught.value.problem


@pytest.mark.parametrize("name", ["MINDIE_ENDPOINT_HTTPS_ENABLED", "MINDIE_INTER_COMM_TLS_ENABLED"])
def test_a_tls_variable_takes_true_or_false_only(name: str) -> None:
    with pytest.raises(InputError) as caught:
        with_variables(tls_on_inputs(), **{name: "yes"})
    assert caught.value.where == name
    assert caught.value.problem.startswith("must be true or false")
