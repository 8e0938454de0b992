"""The repository keeps its promises: README commands, CI, generated docs, lint, no shell."""

import ast
import re
import shlex
import shutil
import subprocess

from supervisor_pd.settings_doc import settings_markdown
from tests.helpers import REPO


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (REPO / "README.md").read_text())


def test_readme_opens_with_the_main_job_and_the_tests() -> None:
    main_job, tests = readme_commands()[:2]
    assert "supervisor-pd" in main_job and "--simulate 800i-a2" in main_job
    # The demo needs the package only; the test tools come with the test command.
    assert "/pip install -q -e . && " in main_job and "[test]" not in main_job, main_job
    assert "/pip install -q -e '.[test]' && " in tests, tests
    assert re.search(r"pytest -q( -n \d+)?( --dist \w+)?$", tests), tests


COMMAND_WORDS = ("curl ", "kubectl ", "docker ", "supervisor-pd ", ".venv/bin/", "pip ", "python3 ")
# Unquoted, these are globbed (zsh refuses a pattern that matches nothing: `curl host/readyz?verbose`
# fails there) or redirect (`<node>`).
UNSAFE = re.compile(r"[?*\[\]<{}]")


def shell_examples(text: str) -> list[str]:
    """The command lines of a Markdown text: every line of its sh blocks, the lines of its other
    blocks that start with a command, and its inline code that does (not a `[--flag]` synopsis)."""
    found = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        for line in body.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if (lang == "sh" and line and not line.startswith("#")) or (
                lang in ("text", "console", "") and line.startswith(COMMAND_WORDS)
            ):
                found.append(line)
    for code in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text):
        if code.startswith(COMMAND_WORDS) and "[-" not in code:
            found.append(code)
    return found


def unsafe_in_a_shell(line: str) -> str | None:
    try:
        shlex.split(line, comments=True)
    except ValueError as exc:
        return str(exc)
    bare = re.split(r"\s#", re.sub(r"'[^']*'|\"[^\"]*\"", "", line))[0]
    found = UNSAFE.search(bare)
    return f"unquoted {found.group()!r}" if found else None


def test_the_scan_finds_what_a_shell_would_glob_split_or_redirect() -> None:
    assert unsafe_in_a_shell("curl localhost:8080/readyz?verbose") == "unquoted '?'"
    assert unsafe_in_a_shell("curl 'localhost:8080/readyz?verbose'") is None
    assert unsafe_in_a_shell("pip install -e .[test]") == "unquoted '['"
    assert unsafe_in_a_shell("docker push <registry>/x") == "unquoted '<'"
    assert unsafe_in_a_shell("docker run -e POD_IP=<this host's IP> x") == "No closing quotation"
    assert unsafe_in_a_shell('docker run -e POD_IP="<this host\'s IP>" x  # a comment? fine') is None
    assert shell_examples("```sh\na \\\n  b\n```\n```text\ncurl x\nnot a command\n```\n`curl y` `ls`") == [
        "a    b",
        "curl x",
        "curl y",
    ]


def test_every_shell_example_in_the_docs_works_in_any_shell() -> None:
    """README.md and docs/*.md: what a user pastes into bash or zsh runs as written."""
    unsafe = [
        f"{path.name}: {line} ({why})"
        for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
        for line in shell_examples(path.read_text())
        if (why := unsafe_in_a_shell(line))
    ]
    assert len(shell_examples((REPO / "README.md").read_text())) > 10
    assert unsafe == []


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


def test_the_layering_holds() -> None:
    """pyproject.toml's import-linter contracts: layers one way, the simulator a stand-in."""
    lint = shutil.which("lint-imports") or str(REPO / ".venv" / "bin" / "lint-imports")
    result = subprocess.run([lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_no_runtime_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for path in (REPO / "supervisor_pd" / "runtime").glob("*.py")
        if (lines := len(path.read_text().splitlines())) > 400
    }
    assert long == {}


# Calls that run a command line through /bin/sh, by the name they are called with.
SHELL_CALLS = {
    "system",  # os.system
    "popen",  # os.popen
    "getoutput",  # subprocess.getoutput
    "getstatusoutput",  # subprocess.getstatusoutput
    "create_subprocess_shell",  # asyncio
    "subprocess_shell",  # asyncio's loop.subprocess_shell
}
SHELLS = {"sh", "bash", "dash", "/bin/sh", "/bin/bash", "/usr/bin/sh", "/usr/bin/bash"}


def shell_uses(source: str) -> list[str]:
    """Every place in `source` that would start a process through a shell."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "asyncio"):
            found += [f"line {node.lineno}: imports {a.name}" for a in node.names if a.name in SHELL_CALLS]
        if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) >= 2:
            first, second = node.elts[0], node.elts[1]
            if (
                isinstance(first, ast.Constant)
                and first.value in SHELLS
                and isinstance(second, ast.Constant)
                and second.value == "-c"
            ):
                found.append(f"line {node.lineno}: argv [{first.value!r}, '-c', ...]")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in SHELL_CALLS:
            found.append(f"line {node.lineno}: {name}()")
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                found.append(f"line {node.lineno}: shell={ast.unparse(keyword.value)}")
    return found


def test_the_shell_scan_finds_every_form() -> None:
    sample = """
import os, subprocess, asyncio
from os import system
subprocess.run("ls", shell=True)
subprocess.Popen(cmd, shell=flag)
os.system("ls")
os.popen("ls")
subprocess.getoutput("ls")
subprocess.getstatusoutput("ls")
asyncio.create_subprocess_shell("ls")
loop.subprocess_shell(factory, "ls")
subprocess.run(["/bin/sh", "-c", "ls"])
subprocess.run(["ls"], shell=False)
subprocess.run(["ls", "-c"])
"""
    assert len(shell_uses(sample)) == 10


def test_no_process_is_started_through_a_shell() -> None:
    """No subprocess of supervisor_pd (the simulator included) gets a command line for /bin/sh."""
    offenders = {
        str(path.relative_to(REPO)): uses
        for path in sorted((REPO / "supervisor_pd").rglob("*.py"))
        if (uses := shell_uses(path.read_text()))
    }
    assert offenders == {}


def test_the_security_document_names_only_tests_and_files_that_exist() -> None:
    text = (REPO / "docs" / "SECURITY.md").read_text()
    references = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text)
    assert len(references) > 40
    missing = []
    for path, name in references:
        file = REPO / path
        if not file.is_file():
            missing.append(path)
            continue
        defined = {
            node.name
            for node in ast.walk(ast.parse(file.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        if name and name not in defined:
            missing.append(f"{path}::{name}")
    for path in re.findall(r"`((?:supervisor_pd|configs|docs|boot)/[\w./*-]+)`", text):
        if not list(REPO.glob(path)):
            missing.append(path)
    # Modules named relative to the package: `api/server.py`, `materialize.py`.
    for path in re.findall(r"`([\w/]+\.py)`", text):
        if (
            not path.startswith("tests/")
            and not (REPO / path).is_file()
            and not (REPO / "supervisor_pd" / path).is_file()
        ):
            missing.append(path)
    assert missing == []


def test_the_state_machine_in_the_docs_is_the_one_in_the_code() -> None:
    from supervisor_pd.runtime.states import TRANSITIONS

    text = (REPO / "docs" / "running.md").read_text()
    code = {(old.value, new.value) for old, targets in TRANSITIONS.items() for new in targets}
    diagram = set(re.findall(r"^\s+(\w+) --> (\w+):", text, re.M))
    assert diagram == code
    section = text[text.index("| from | to |") :].split("\n\n")[0]
    table = set()
    for row in re.findall(r"^\| (\w+(?:, \w+)*) \| (.+) \|$", section, re.M)[1:]:
        for old in row[0].split(", "):
            for target in re.sub(r"\([^)]*\)", "", row[1]).replace("nothing: final", "").split(","):
                if target.strip():
                    table.add((old, target.strip()))
    assert table == code
