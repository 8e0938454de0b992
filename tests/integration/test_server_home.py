"""Where the MindIE Server reads its certificates from (certs/inputs.py server_home), with real
launcher scripts: MindIE's mindie_llm_server sets MINDIE_LLM_HOME_PATH to its mindie_llm package
whatever it was (MindIE-LLM mindie_llm/server/main.py), so the home is that package, found through
the launcher's own Python; the daemon started directly follows the C++ rule."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from supervisor_pd.certs.inputs import server_home
from supervisor_pd.settings import Settings


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def launcher(tmp_path: Path, name: str, first_line: str) -> None:
    (tmp_path / "bin").mkdir(exist_ok=True)
    script = tmp_path / "bin" / name
    script.write_text(first_line + "\nraise SystemExit(0)\n")
    script.chmod(0o755)


def test_mindie_llm_server_home_is_its_package_wherever_mies_install_path_points(tmp_path: Path) -> None:
    package = tmp_path / "site" / "mindie_llm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    launcher(tmp_path, "mindie_llm_server", f"#!{sys.executable}")
    env = environment(tmp_path, PYTHONPATH=str(tmp_path / "site"), MIES_INSTALL_PATH="/opt/elsewhere")
    home, source = server_home(Settings(), env)
    assert home == package.resolve()
    assert "mindie_llm package" in source


def test_a_launcher_that_is_not_python_gives_the_folder_above_it(tmp_path: Path) -> None:
    launcher(tmp_path, "mindie_llm_server", "#!/bin/sh")
    home, _ = server_home(Settings(), environment(tmp_path, MIES_INSTALL_PATH="/opt/elsewhere"))
    assert home == tmp_path.resolve()


def test_the_daemon_started_directly_follows_mindies_rule(tmp_path: Path) -> None:
    launcher(tmp_path, "mindieservice_daemon", "#!/bin/sh")
    settings = Settings(server_command="mindieservice_daemon")
    llm = tmp_path / "llm"
    llm.mkdir()
    home, source = server_home(settings, environment(tmp_path, MINDIE_LLM_HOME_PATH=str(llm), MIES_INSTALL_PATH="/x"))
    assert (home, source) == (Path("/x"), "MIES_INSTALL_PATH")  # no __init__.py: MINDIE_LLM_HOME_PATH is skipped
    (llm / "__init__.py").write_text("")
    home, source = server_home(settings, environment(tmp_path, MINDIE_LLM_HOME_PATH=str(llm), MIES_INSTALL_PATH="/x"))
    assert (home, source) == (llm.resolve(), "MINDIE_LLM_HOME_PATH")
    home, _ = server_home(settings, environment(tmp_path))
    assert home == tmp_path.resolve()
