"""Running host tools (npu-smi, hccn_tool, lspci): argv lists only, bounded in time."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from supervisor_pd.settings import without_secrets


class ToolError(Exception):
    """A host tool is missing, failed, timed out or printed something unusable."""


@dataclass(frozen=True)
class ToolResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def failure(self) -> str:
        """One line describing a non-zero exit, with the tool's own last words."""
        # npu-smi and hccn_tool print the reason on stdout and log noise on stderr.
        said = (self.stdout.strip() or self.stderr.strip()).splitlines()
        tail = said[-1][:200] if said else "no output"
        return f"`{self.command}` exited with {self.returncode}: {tail}"


def which(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """`name` on the PATH of `environ` (default: this process's environment)."""
    env = os.environ if environ is None else environ
    return shutil.which(name, path=env.get("PATH", os.defpath))


def run_tool(argv: list[str], timeout: float, environ: Mapping[str, str] | None = None) -> ToolResult:
    """Run a host tool found on the PATH of `environ` (default: this process's environment), with
    that environment minus our secrets. Raises ToolError if it is missing or times out."""
    env = os.environ if environ is None else environ
    executable = which(argv[0], env)
    if executable is None:
        raise ToolError(f"`{argv[0]}` was not found on PATH")
    try:
        completed = subprocess.run(
            [executable, *argv[1:]],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=without_secrets(env),
        )
    except subprocess.TimeoutExpired:
        raise ToolError(f"`{' '.join(argv)}` did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise ToolError(f"`{' '.join(argv)}` could not be started: {exc.strerror}") from None
    return ToolResult(
        argv=tuple(argv),
        returncode=completed.returncode,
        stdout=completed.stdout.decode("utf-8", errors="replace"),
        stderr=completed.stderr.decode("utf-8", errors="replace"),
    )
