"""The repository keeps its promises: README commands, CI, generated docs, lint."""

import re
import shutil
import subprocess
import sys

from supervisor_pd.settings import settings_markdown
from tests.helpers import REPO


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (REPO / "README.md").read_text())


def test_readme_opens_with_the_main_job_and_the_tests() -> None:
    main_job, tests = readme_commands()[:2]
    assert "supervisor-pd" in main_job and "--simulate 800i-a2" in main_job
    assert tests.endswith("pytest -q")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_settings_reference_is_current() -> None:
    assert (REPO / "docs" / "settings.md").read_text() == settings_markdown()


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(REPO / ".venv" / "bin" / "ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([ruff, *args], cwd=REPO, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_no_shell_in_subprocess_calls() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "supervisor_pd").rglob("*.py")
        if re.search(r"shell\s*=\s*True", path.read_text())
    ]
    assert offenders == []
    assert sys.executable
