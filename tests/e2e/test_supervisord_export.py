"""`supervisor-pd export supervisord`, then the real supervisord running the simulated stack."""

from __future__ import annotations

import configparser
import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import SAMPLE_CONF, base_env, run_cli
from tests.simstack import FAST_KNOBS, Ports, free_base, http, make_conf, wait_until
from tests.superstack import alive, descendants, tree_pids

BIN = Path(sys.executable).parent
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
PROGRAMS = {f"servers:server-{n}" for n in range(1, 5)} | {"coordinator", "controller"}
# Reaches the children only through the file: supervisord itself is started without it.
ODD = r"it's 50% of C:\tmp;x#y, a\b  (%(ENV_HOME)s)"
# The file cannot carry both kinds of quote: left out with a warning, inherited from supervisord.
QUOTES = """say "it's" """


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def status(conf: Path, env: dict[str, str]) -> dict[str, list[str]]:
    result = subprocess.run(
        [str(BIN / "supervisorctl"), "-c", str(conf), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines() if line.strip()}


def test_exported_conf_runs_the_stack_under_supervisord(tmp_path: Path) -> None:
    ports = Ports(free_base())
    conf_dir = make_conf(tmp_path / "conf", ports)
    conf = tmp_path / "etc" / "supervisord.conf"
    env = base_env(tmp_path)
    env.update(FAST_KNOBS)
    env.update(SUPERVISOR_PD_PORT_BASE=str(ports.servers), SUPERVISOR_PD_API_PORT=str(ports.api))
    # A Kubernetes Service named mindie-ms-coordinator injects this; the Controller must not see it.
    env["MINDIE_MS_COORDINATOR_PORT"] = "tcp://10.0.0.1:1026"
    result = run_cli(
        ["export", "supervisord", "--simulate", "800i-a2", "--conf-dir", str(conf_dir), "--output", str(conf)],
        {**env, "ODD_VALUE": ODD, "QUOTES_VALUE": QUOTES},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "warning: QUOTES_VALUE is not written for any program (its value holds both kinds" in result.stderr
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert (tmp_path / "state" / "conf" / "global_ranktable.json").is_file()

    # The run never hands its token to a child, whoever sets it.
    supervisord_env = {**env, "QUOTES_VALUE": QUOTES, "SUPERVISOR_PD_API_TOKEN": "secret"}
    log = (tmp_path / "supervisord.log").open("ab")
    supervisord = subprocess.Popen(
        [str(BIN / "supervisord"), "-n", "-c", str(conf)],
        env=supervisord_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    children: set[int] = set()
    try:

        def all_running() -> dict[str, list[str]] | None:
            assert supervisord.poll() is None, (tmp_path / "supervisord.log").read_text()
            shown = status(conf, env)
            running = set(shown) == PROGRAMS and all(words[0] == "RUNNING" for words in shown.values())
            return shown if running else None

        shown = wait_until(all_running, timeout=20, interval=0.2, what="every program RUNNING")
        pids = {name: int(words[2].rstrip(",")) for name, words in shown.items()}

        def answered() -> bool:
            code, _ = http(
                "POST",
                f"http://127.0.0.1:{ports.predict}/v1/chat/completions",
                CHAT,
                timeout=5,
                headers={"Content-Type": "application/json"},
            )
            return code == 200

        wait_until(answered, timeout=20, interval=0.2, what="a chat completion through the Coordinator")

        controller = environ(pids["controller"])
        assert "MINDIE_MS_COORDINATOR_PORT" not in controller
        assert "SUPERVISOR_PD_API_TOKEN" not in controller
        assert controller["ODD_VALUE"] == ODD
        assert controller["QUOTES_VALUE"] == QUOTES
        assert controller["GLOBAL_RANK_TABLE_FILE_PATH"] == str(tmp_path / "state" / "conf" / "global_ranktable.json")
        assert Path(f"/proc/{pids['controller']}/cwd").resolve() == (tmp_path / "state" / "controller").resolve()
        server = environ(pids["servers:server-3"])
        assert server["ATB_SHARE_MEMORY_NAME_SUFFIX"] == "3"
        assert server["MINDIE_MS_COORDINATOR_PORT"] == "tcp://10.0.0.1:1026"  # withheld from the Controller only
        assert "SUPERVISOR_PD_API_TOKEN" not in server

        children = descendants(supervisord.pid)
        assert set(pids.values()) <= children
        supervisord.send_signal(signal.SIGTERM)
        assert supervisord.wait(timeout=30) == 0
        wait_until(lambda: not any(alive(pid) for pid in children), timeout=5, what="every child gone")
    finally:
        if supervisord.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(supervisord.pid, signal.SIGKILL)
            supervisord.wait(10)
        for pid in children | set(tree_pids(str(tmp_path))):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


# --- the command's own behaviour --------------------------------------------------------


def export(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Plans with the sample configs' fixed ports: in a private network namespace, where they are free."""
    return run_cli(
        ["export", "supervisord", "--simulate", "800i-a2", *args],
        {**base_env(tmp_path), **(env or {})},
        private=True,
    )


def test_to_stdout_with_the_files_and_folders_it_refers_to(tmp_path: Path) -> None:
    result = export(tmp_path)
    assert result.returncode == 0, result.stderr
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"))
    parser.read_string(result.stdout)
    state = tmp_path / "state"
    assert parser["program:controller"]["directory"] == str(state / "controller")
    assert f"--config-file {state / 'conf' / 'config4.json'}" in parser["program:server-4"]["command"]
    assert (state / "conf" / "config4.json").is_file()
    for folder in ("controller", "coordinator", "servers/server-1", "servers/server-4"):
        assert stat.S_IMODE((state / folder).stat().st_mode) == 0o750


def test_an_existing_file_is_replaced_in_one_step(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "supervisord.conf"
    conf.parent.mkdir()
    conf.write_text("old\n")
    conf.chmod(0o644)
    result = export(tmp_path, "--output", str(conf))
    assert result.returncode == 0, result.stderr
    assert conf.read_text().startswith("; supervisord configuration")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert os.listdir(conf.parent) == ["supervisord.conf"]


@pytest.mark.parametrize(
    ("args", "env", "where"),
    [
        (["--output", "{tmp}"], {}, "--output: "),
        (["--output", "{tmp}/state/conf/supervisord.conf"], {}, "--output: "),
        (["--output-dir", "{tmp}/conf"], {}, "--output-dir / SUPERVISOR_PD_OUTPUT_DIR: "),
        (["--api-port", "80"], {}, "--api-port: "),
        ([], {"SUPERVISOR_PD_CONTROLLER_COMMAND": "no-such-controller"}, "SUPERVISOR_PD_CONTROLLER_COMMAND: "),
        ([], {"SUPERVISOR_PD_STATE_DIR": "{tmp}/" + "s" * 100}, "SUPERVISOR_PD_STATE_DIR: "),
    ],
)
def test_a_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, args: list[str], env: dict[str, str], where: str
) -> None:
    shutil.copytree(SAMPLE_CONF, tmp_path / "conf")
    conf = tmp_path / "out" / "supervisord.conf"
    filled = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if "--output" not in filled:
        filled += ["--output", str(conf)]
    result = export(
        tmp_path,
        "--conf-dir",
        str(tmp_path / "conf"),
        *filled,
        env={key: value.replace("{tmp}", str(tmp_path)) for key, value in env.items()},
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"supervisor-pd: error: {where}")
    assert result.stderr.count("\n") == 1
    assert not conf.exists()
    assert not (tmp_path / "state" / "conf").exists()
    assert not (tmp_path / "state" / "controller").exists()
