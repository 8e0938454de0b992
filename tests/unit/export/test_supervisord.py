"""The supervisord.conf renderer, read back by supervisord's own parser."""

from __future__ import annotations

import configparser
import dataclasses
import shlex
from pathlib import Path
from typing import Any

import pytest
from supervisor.options import ServerOptions

from supervisor_pd.errors import InputError
from supervisor_pd.export.supervisord import SERVER_GROUP, Tools, render
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.runtime.spec import ProcessSpec, build_specs
from supervisor_pd.settings import Settings
from tests import factories

# Values each parser on the way treats specially: spaces, both quotes (one kind at a time),
# `%` and supervisord's own %(...)s, backslashes, commas, = and the comment characters.
ODD = {
    "SPACES": "  two  spaces  ",
    "DOUBLE": 'say "hi" now',
    "SINGLE": "it's",
    "PERCENT": "50% and %(ENV_HOME)s and %%",
    "BACKSLASH": r"C:\tmp\new \\ end",
    "PUNCT": "a=b,c;d#e",
    "EMPTY": "",
    "UNICODE": "naïve ✓",
}
BASE = {"PATH": "/usr/bin:/bin", "MINDIE_MS_COORDINATOR_PORT": "tcp://10.96.0.1:1026", **ODD}
ODD_COMMAND = """'/opt/mind ie/50% srv' --note 'a ;b' 'c #d' "it's" 'say "hi"' 'x\\y' '' %(program_name)s"""
TOOLS = Tools(env="/usr/bin/env", taskset="/usr/bin/taskset")


def make_specs(state: Path, base: dict[str, str] | None = None, **settings: Any) -> list[ProcessSpec]:
    chosen = Settings(**settings)
    plan = make_plan(
        factories.facts(factories.chips(8, per_node=4)), factories.inputs(), chosen, factories.FakeChecker()
    )
    return build_specs(plan, chosen, BASE if base is None else base, state / "conf", state)


def parse(text: str, folder: Path) -> Any:
    """supervisord's reading of `text`: its [supervisord] section with every process group."""
    path = folder / "supervisord.conf"
    path.write_text(text)
    return ServerOptions().read_config(str(path))


def programs(section: Any) -> dict[str, Any]:
    return {process.name: process for group in section.process_group_configs for process in group.process_configs}


def words(process: Any) -> list[str]:
    """The argv supervisord execs (it splits `command` with shlex after expansion)."""
    return shlex.split(process.command)


def test_values_round_trip_through_supervisords_parser(tmp_path: Path) -> None:
    settings = Settings(server_command=ODD_COMMAND, stop_seconds=12.5, restart_budget=7)
    specs = make_specs(tmp_path, server_command=ODD_COMMAND)
    exported = render(specs, settings, tmp_path, BASE, TOOLS)
    assert exported.dropped == ()
    parsed = programs(parse(exported.text, tmp_path))
    assert list(parsed) == [spec.name for spec in specs]
    for spec in specs:
        process = parsed[spec.name]
        assert process.environment == spec.env
        assert words(process)[-len(spec.argv) :] == list(spec.argv)
        assert process.directory == str(spec.cwd)
        assert (process.startretries, process.stopwaitsecs, process.startsecs) == (7, 13, 5)
        assert process.autostart and process.stopasgroup and process.killasgroup and process.redirect_stderr
        assert process.stopsignal == 15
        assert process.stdout_logfile == "/dev/stdout"
        assert process.stdout_logfile_maxbytes == 0
    server = specs[0]
    assert server.argv[:8] == (
        "/opt/mind ie/50% srv",
        "--note",
        "a ;b",
        "c #d",
        "it's",
        'say "hi"',
        "x\\y",
        "",
    )
    assert server.argv[8] == "%(program_name)s"  # not expanded by supervisord
    assert words(parsed["server-1"])[-len(server.argv) :] == list(server.argv)


def test_the_supervisord_sections(tmp_path: Path) -> None:
    settings = Settings()
    section = parse(render(make_specs(tmp_path), settings, tmp_path, BASE, TOOLS).text, tmp_path)
    assert section.nodaemon is True
    assert section.logfile == "/dev/null"
    assert section.pidfile == str(tmp_path / "supervisord.pid")
    (server,) = section.server_configs
    assert server["section"] == "unix_http_server"
    assert server["file"] == str(tmp_path / "supervisord.sock")
    assert server["chmod"] == 0o700
    assert section.rpcinterface_factories


def test_plain_configparser_reads_it(tmp_path: Path) -> None:
    text = render(make_specs(tmp_path), Settings(), tmp_path, BASE, TOOLS).text
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=True)
    parser.read_string(text)
    assert "inet_http_server" not in parser
    assert parser["supervisorctl"]["serverurl"] == f"unix://{tmp_path / 'supervisord.sock'}"
    assert parser["rpcinterface:supervisor"]["supervisor.rpcinterface_factory"] == (
        "supervisor.rpcinterface:make_main_rpcinterface"
    )


def test_start_order_priorities_and_the_server_group(tmp_path: Path) -> None:
    specs = make_specs(tmp_path)
    section = parse(render(specs, Settings(), tmp_path, BASE, TOOLS).text, tmp_path)
    groups = {group.name: group for group in section.process_group_configs}
    assert [group.name for group in sorted(section.process_group_configs)] == [
        SERVER_GROUP,
        "coordinator",
        "controller",
    ]
    assert [process.name for process in groups[SERVER_GROUP].process_configs] == [
        "server-1",
        "server-2",
        "server-3",
        "server-4",
    ]
    priority = {name: process.priority for name, process in programs(section).items()}
    assert priority["server-4"] < priority["coordinator"] < priority["controller"]
    assert groups[SERVER_GROUP].priority < groups["coordinator"].priority < groups["controller"].priority


def test_taskset_prefix_iff_the_spec_has_cpus(tmp_path: Path) -> None:
    specs = make_specs(tmp_path)
    assert all(spec.cpus for spec in specs)
    specs[1] = dataclasses.replace(specs[1], cpus=None)
    parsed = programs(parse(render(specs, Settings(), tmp_path, BASE, TOOLS).text, tmp_path))
    for spec in specs:
        argv = words(parsed[spec.name])
        if spec.cpus:
            assert argv[:3] == ["/usr/bin/taskset", "-c", format_cpulist(spec.cpus)]
        else:
            assert "/usr/bin/taskset" not in argv
            assert argv[0] == "/usr/bin/env"
    off = make_specs(tmp_path, cpu_binding="off")
    text = render(off, Settings(cpu_binding="off"), tmp_path, BASE, TOOLS).text
    assert "/usr/bin/taskset" not in text
    assert "CPU sets: none (SUPERVISOR_PD_CPU_BINDING=off)" in text


def test_withheld_variables_are_unset_where_supervisord_might_pass_them(tmp_path: Path) -> None:
    specs = {spec.name: spec for spec in make_specs(tmp_path)}
    parsed = programs(parse(render(list(specs.values()), Settings(), tmp_path, BASE, TOOLS).text, tmp_path))
    controller = words(parsed["controller"])
    assert controller[controller.index("/usr/bin/env") :][:5] == [
        "/usr/bin/env",
        "-u",
        "SUPERVISOR_PD_API_TOKEN",
        "-u",
        "MINDIE_MS_COORDINATOR_PORT",
    ]
    server = words(parsed["server-1"])
    assert "MINDIE_MS_COORDINATOR_PORT" not in server  # the Servers get the user's value
    assert parsed["server-1"].environment["MINDIE_MS_COORDINATOR_PORT"] == "tcp://10.96.0.1:1026"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("line\nbreak", "line break"),
        ("cr\rhere", "line break"),
        ("""both ' and " """, "both kinds of quote"),
        ('"quoted"', "begins or ends with a quote"),
        ("word ;comment", "followed by ; or #"),
        ("word\t#comment", "followed by ; or #"),
    ],
)
def test_an_inherited_value_the_file_cannot_carry_is_left_out(tmp_path: Path, value: str, reason: str) -> None:
    base = {**BASE, "AWKWARD": value}
    specs = make_specs(tmp_path, base)
    exported = render(specs, Settings(), tmp_path, base, TOOLS)
    assert {(d.program, d.name) for d in exported.dropped} == {(spec.name, "AWKWARD") for spec in specs}
    assert all(reason in d.reason for d in exported.dropped)
    assert "; AWKWARD is not written here" in exported.text
    for process in programs(parse(exported.text, tmp_path)).values():
        assert "AWKWARD" not in process.environment


def test_an_unusual_name_is_left_out(tmp_path: Path) -> None:
    base = {**BASE, "BASH_FUNC_f%%": "() { :; }"}
    exported = render(make_specs(tmp_path, base), Settings(), tmp_path, base, TOOLS)
    assert {d.name for d in exported.dropped} == {"BASH_FUNC_f%%"}
    parse(exported.text, tmp_path)


def test_a_value_supervisor_pd_sets_that_the_file_cannot_carry_is_an_error(tmp_path: Path) -> None:
    specs = make_specs(tmp_path)
    broken = dataclasses.replace(specs[-1], env={**specs[-1].env, "MINDIE_MS_P_RATE": "1\n2"})
    with pytest.raises(InputError) as caught:
        render([*specs[:-1], broken], Settings(), tmp_path, BASE, TOOLS)
    assert caught.value.where == "MINDIE_MS_P_RATE"
    assert "line break" in caught.value.problem


def test_a_command_with_a_line_break_is_an_error(tmp_path: Path) -> None:
    specs = make_specs(tmp_path, controller_command="mindie_motor_controller 'a\nb'")
    with pytest.raises(InputError) as caught:
        render(specs, Settings(), tmp_path, BASE, TOOLS)
    assert caught.value.where == "SUPERVISOR_PD_CONTROLLER_COMMAND (controller)"


def test_state_dir_problems_name_the_setting(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 120)
    with pytest.raises(InputError, match="too long") as caught:
        render(make_specs(long), Settings(), long, BASE, TOOLS)
    assert caught.value.where == "SUPERVISOR_PD_STATE_DIR"
    odd = Path("/srv/state ;x")
    with pytest.raises(InputError, match="comment") as caught:
        render(make_specs(odd), Settings(), odd, BASE, TOOLS)
    assert caught.value.where == "SUPERVISOR_PD_STATE_DIR"


def test_percent_in_paths_survives_expansion(tmp_path: Path) -> None:
    state = tmp_path / "50%(here)s"
    state.mkdir()
    specs = make_specs(state)
    section = parse(render(specs, Settings(), state, BASE, TOOLS).text, tmp_path)
    assert section.pidfile == str(state / "supervisord.pid")
    assert programs(section)["controller"].directory == str(state / "controller")


def test_header_says_what_supervisord_cannot_do(tmp_path: Path) -> None:
    text = render(make_specs(tmp_path), Settings(), tmp_path, BASE, TOOLS).text
    header = text.split("[supervisord]")[0]
    for topic in ("readiness gating", "drain", "role-aware restarts", "liveness", "HTTP port", "taskset -c"):
        assert topic in header
    assert all(line.startswith(";") or not line for line in header.splitlines())
    simulated = make_specs(tmp_path)
    plain = [dataclasses.replace(spec, cpus=None) for spec in simulated]
    text = render(plain, Settings(simulate="800i-a2"), tmp_path, BASE, TOOLS).text
    assert "not applied on a simulated host" in text


def test_output_does_not_depend_on_the_order_of_the_environment(tmp_path: Path) -> None:
    first = render(make_specs(tmp_path), Settings(), tmp_path, BASE, TOOLS).text
    backwards = dict(reversed(BASE.items()))
    assert render(make_specs(tmp_path, backwards), Settings(), tmp_path, backwards, TOOLS).text == first
