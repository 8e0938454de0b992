"""Security properties that hold without running anything: bind addresses, children's environments,
the supervisord export, the settings command, log file modes (docs/SECURITY.md)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import orjson
import pytest

from supervisor_pd import cli
from supervisor_pd.export.supervisord import Tools, render
from supervisor_pd.plan.model import Plan
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.runtime.logs import LogSink, RotatingFile
from supervisor_pd.runtime.spec import WITHHELD, ProcessSpec, build_specs
from supervisor_pd.settings import SECRET_VARIABLES, Settings, without_secrets
from tests import factories

TOKEN = "tok-5ecret-do-not-leak"
TOOLS = Tools(env="/usr/bin/env", taskset="/usr/bin/taskset")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SUPERVISOR_PD_") or name in ("POD_IP", "MINDIE_MS_COORDINATOR_PORT"):
            monkeypatch.delenv(name)


@pytest.fixture
def umask() -> Iterator[None]:
    """Runs the test under umask 0, where anything not set explicitly comes out world-writable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def plan(**settings: object) -> Plan:
    return make_plan(
        factories.facts(factories.chips(8, per_node=4)),
        factories.inputs(),
        Settings(**settings),  # type: ignore[arg-type]
        factories.FakeChecker(),
    )


def files(built: Plan) -> dict[str, dict]:  # type: ignore[type-arg]
    return {planned.name: orjson.loads(planned.content) for planned in built.files}


# --- what listens where ----------------------------------------------------------------------------


def test_default_bind_addresses() -> None:
    settings = Settings()
    assert settings.api_host == IPv4Address("0.0.0.0")  # probes and Services reach the pod IP
    assert settings.server_ip == IPv4Address("127.0.0.1")
    assert settings.token() is None  # control on TCP is off until a token is given
    assert settings.socket_path == settings.state_dir / "api.sock"
    built = plan()
    assert (built.supervisor.api_host, built.supervisor.api_port) == ("0.0.0.0", 8080)
    written = files(built)
    for index in range(1, len(built.servers) + 1):
        server = written[f"config{index}.json"]["ServerConfig"]
        assert server["ipAddress"] == server["managementIpAddress"] == "127.0.0.1"
        assert server["allowAllZeroIpListening"] is False
    http = written["ms_coordinator.json"]["http_config"]
    assert http["predict_ip"] == http["manage_ip"] == "127.0.0.1"
    assert http["allow_all_zero_ip_listening"] is False
    controller = written["ms_controller.json"]
    assert controller["http_server"]["ip"] == "127.0.0.1"
    assert controller["allow_all_zero_ip_listening"] is False
    # The Servers' ports are checked on every interface, as MindIE's own check does.
    assert {a.ip for a in built.ports if a.owner.startswith("server-")} == {"0.0.0.0"}


def test_pod_ip_moves_only_the_predict_port_and_the_controller() -> None:
    built = plan(pod_ip="10.0.0.7")
    assert (built.coordinator.predict_ip, built.coordinator.manage_ip) == ("10.0.0.7", "127.0.0.1")
    assert built.controller.ip == "10.0.0.7"
    assert {server.ip for server in built.servers} == {"127.0.0.1"}
    written = files(built)
    assert written["ms_coordinator.json"]["http_config"]["manage_ip"] == "127.0.0.1"
    assert written["config1.json"]["ServerConfig"]["ipAddress"] == "127.0.0.1"
    specs = {s.name: s for s in build_specs(built, Settings(pod_ip="10.0.0.7"), {}, Path("/o"), Path("/s"))}  # type: ignore[arg-type]
    assert specs["coordinator"].argv[-2:] == ("10.0.0.7", "127.0.0.1")  # predict IP, manage IP


def test_a_wildcard_address_is_refused_for_the_coordinator() -> None:
    from supervisor_pd.errors import InputError

    def wildcard(data: dict) -> None:  # type: ignore[type-arg]
        data["http_config"]["manage_ip"] = "0.0.0.0"

    with pytest.raises(InputError, match=r"0\.0\.0\.0 is not allowed here"):
        make_plan(
            factories.facts(factories.chips(8, per_node=4)),
            factories.inputs(coordinator=wildcard),
            Settings(),
            factories.FakeChecker(),
        )


# --- children's environments -------------------------------------------------------------------


SPELLINGS = ("SUPERVISOR_PD_API_TOKEN", "supervisor_pd_api_token", "Supervisor_Pd_Api_Token")


@pytest.mark.parametrize("name", SPELLINGS)
def test_the_settings_read_the_token_in_any_case(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, TOKEN)
    assert Settings().token() == TOKEN


def make_specs(base: dict[str, str]) -> list[ProcessSpec]:
    return build_specs(plan(), Settings(), base, Path("/out"), Path("/state"))


@pytest.mark.parametrize("name", SPELLINGS)
def test_no_child_gets_the_token_however_it_is_spelt(name: str) -> None:
    assert SECRET_VARIABLES == WITHHELD == ("SUPERVISOR_PD_API_TOKEN",)
    base = {"PATH": "/usr/bin", name: TOKEN, "SUPERVISOR_PD_API_TOKEN_FILE": "/run/secrets/token"}
    assert without_secrets(base) == {"PATH": "/usr/bin", "SUPERVISOR_PD_API_TOKEN_FILE": "/run/secrets/token"}
    for spec in make_specs(base):
        assert TOKEN not in spec.env.values(), spec.name
        assert not [key for key in spec.env if key.upper() == "SUPERVISOR_PD_API_TOKEN"], spec.name
        assert spec.env["PATH"] == "/usr/bin"


def test_children_get_the_base_minus_withheld_plus_forced_values() -> None:
    base = {
        "PATH": "/usr/bin",
        "MINDIE_MS_COORDINATOR_PORT": "tcp://10.96.0.1:1026",
        "MIES_CONTAINER_IP": "10.0.0.9",  # forced to the plan's address
        "HCCL_EXEC_TIMEOUT": "90",  # the user's value beats the Server default
    }
    specs = {spec.name: spec for spec in make_specs(base)}
    server, coordinator, controller = specs["server-1"].env, specs["coordinator"].env, specs["controller"].env
    assert server["MIES_CONTAINER_IP"] == "127.0.0.1"
    assert server["HCCL_EXEC_TIMEOUT"] == "90"
    assert server["MINDIE_MS_COORDINATOR_PORT"] == base["MINDIE_MS_COORDINATOR_PORT"]
    assert "MINDIE_MS_COORDINATOR_PORT" not in controller
    assert "ATB_SHARE_MEMORY_NAME_SUFFIX" not in coordinator
    assert specs["server-1"].env is not specs["server-2"].env


@pytest.mark.parametrize("name", SPELLINGS)
def test_the_supervisord_export_never_carries_the_token(tmp_path: Path, name: str) -> None:
    base = {"PATH": "/usr/bin", name: TOKEN}
    specs = build_specs(plan(), Settings(), base, tmp_path / "conf", tmp_path)
    text = render(specs, Settings(), tmp_path, base, TOOLS).text
    assert TOKEN not in text
    for spec in specs:
        section = text.split(f"[program:{spec.name}]", 1)[1]
        words = next(line for line in section.splitlines() if line.startswith("command=")).split()
        unset = {words[i + 1] for i, word in enumerate(words[:-1]) if word == "-u"}
        # supervisord hands its own environment to every child: `env -u` removes the token there.
        assert {name, "SUPERVISOR_PD_API_TOKEN"} <= unset, words


def test_the_settings_command_masks_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPERVISOR_PD_API_TOKEN", TOKEN)
    assert cli.main(["settings"]) == 0
    out = capsys.readouterr().out
    assert TOKEN not in out
    assert "SUPERVISOR_PD_API_TOKEN=**********" in out.splitlines()


# --- files written -------------------------------------------------------------------------------


@pytest.mark.usefixtures("umask")
def test_log_files_are_0640_from_the_start_and_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "server-1.log"
    handle = RotatingFile(path, max_bytes=4096, count=2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
    for _ in range(3):
        handle.write(b"x" * 3000)  # rotates twice
    handle.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["server-1.log", "server-1.log.1", "server-1.log.2"]
    for entry in path.parent.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o640, entry.name


@pytest.mark.usefixtures("umask")
def test_an_existing_log_file_is_narrowed_to_0640(tmp_path: Path) -> None:
    path = tmp_path / "controller.log"
    path.write_bytes(b"old\n")
    path.chmod(0o666)
    RotatingFile(path, max_bytes=4096, count=2).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_the_supervisors_own_lines_never_go_to_a_file(tmp_path: Path) -> None:
    import io

    out = io.BytesIO()
    sink = LogSink(out=out, file_dir=tmp_path / "logs")
    sink.info("a supervisor line")
    sink.line("server-1", "stdout", "a child line")
    sink.close()
    assert (tmp_path / "logs" / "server-1.log").read_text() == "a child line\n"
    assert not (tmp_path / "logs" / "supervisor.log").exists()
