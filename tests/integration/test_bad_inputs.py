"""The CLI half of the bad-input corpus (tests/corpus/bad_inputs.py).

Each case is one `supervisor-pd plan` or `run` process, run as a user runs it. The processes of
all selected cases start together when the first case asks (a few at a time: most of a case's
time is the simulated host tools' own process start-up), and each test then judges its own.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.corpus.bad_inputs import CLI_CASES, CliCase
from tests.helpers import base_env
from tests.report import record
from tests.simstack import Ports, free_base, make_conf

PREFIX = "supervisor-pd: error: "
WORKERS = 4
CASE_TIMEOUT = 60.0
LONGEST_MESSAGE = 400  # a message echoes what it refuses shortened, never a whole giant value

STATE = "state"  # the case's state folder: --simulate builds the simulated host there, as it should

Snapshot = dict[str, tuple[int, int, int]]


def snapshot(tmp: Path) -> Snapshot:
    """Every entry of a case's folder but its state folder, by lstat (mode, size, mtime): nothing
    is opened or followed, so a 200 MiB file, a named pipe or a chmod 000 file costs nothing."""
    entries: Snapshot = {}
    for top, folders, files in os.walk(tmp):
        if Path(top) == tmp and STATE in folders:
            folders.remove(STATE)
        for name in folders + files:
            path = Path(top, name)
            info = path.lstat()
            entries[str(path.relative_to(tmp))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return entries


@dataclass(frozen=True)
class Outcome:
    tmp: Path
    result: subprocess.CompletedProcess[str]
    before: Snapshot
    after: Snapshot

    def written(self) -> list[str]:
        """What the run created, changed or removed outside its state folder."""
        return sorted(
            name for name in self.before.keys() | self.after.keys() if self.before.get(name) != self.after.get(name)
        )


def attempt(case: CliCase, tmp: Path) -> Outcome:
    change = case.change
    ports = Ports(free_base())
    conf = make_conf(tmp / change.conf_name, ports)
    if change.files is not None:
        change.files(conf)

    def fill(text: str) -> str:
        return text.replace("{tmp}", str(tmp)).replace("{predict}", str(ports.predict))

    env = base_env(tmp)
    # Loopback and free ports, so a `run` that wrongly got going would clash with nothing.
    env.update(
        SUPERVISOR_PD_API_HOST="127.0.0.1",
        SUPERVISOR_PD_API_PORT=str(ports.api),
        SUPERVISOR_PD_PORT_BASE=str(ports.servers),
    )
    env.update({key: fill(value) for key, value in change.env.items()})
    output = tmp / "out"
    args = [case.command, "--simulate", "800i-a2", "--output", str(output)]
    if change.conf_flag:
        args += ["--conf-dir", str(conf)]
    args += [fill(arg) for arg in change.args]
    prefix = without_dac_override() if case.root_reads_it and os.geteuid() == 0 else []
    before = snapshot(tmp)
    try:
        result = subprocess.run(
            [*(prefix or []), sys.executable, "-m", "supervisor_pd", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT,
            check=False,
        )
        return Outcome(tmp, result, before, snapshot(tmp))
    finally:
        if not os.access(conf, os.R_OK | os.X_OK):
            conf.chmod(0o750)  # a chmod 000 case: let the folder be cleaned up


@functools.cache
def without_dac_override() -> list[str] | None:
    """A command prefix that drops the capabilities letting root read any file, if this host allows."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return prefix if probe.returncode == 0 else None


def runs_here(case: CliCase) -> bool:
    return not case.root_reads_it or os.geteuid() != 0 or without_dac_override() is not None


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Outcome]]]:
    selected = {
        item.callspec.id
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {
            case.id: pool.submit(attempt, case, tmp_path_factory.mktemp(case.id))
            for case in CLI_CASES
            if case.id in selected and runs_here(case)
        }
        yield futures
        for future in futures.values():
            future.cancel()


def test_the_corpus_is_well_formed() -> None:
    ids = [case.id for case in CLI_CASES]
    assert len(ids) == len(set(ids))
    assert all(case.words for case in CLI_CASES)
    assert all(case.command in ("plan", "run") for case in CLI_CASES)


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda case: case.id)
def test_a_bad_input_exits_2_with_one_line_and_writes_nothing(
    case: CliCase, outcomes: dict[str, Future[Outcome]]
) -> None:
    if not runs_here(case):
        pytest.skip("root reads a chmod 000 file anyway, and setpriv cannot drop that power here")
    outcome = outcomes[case.id].result(timeout=CASE_TIMEOUT * 2)
    result = outcome.result
    shown = f"exit {result.returncode}\nstdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, shown
    assert result.returncode == 2, shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1, shown
    assert lines[0].startswith(PREFIX), shown
    message = lines[0].removeprefix(PREFIX)
    for word in case.words:
        assert word in message, f"{word!r} is not in: {message}"
    assert message.isprintable(), message  # control characters come out escaped
    assert len(message) <= LONGEST_MESSAGE, message
    assert result.stdout == ""
    assert outcome.written() == [], "written, though the input was refused"
    shown = message.replace(str(outcome.tmp), "{tmp}")  # the same row on every machine
    record("bad_inputs", {"category": case.category, "case": case.change.what, "outcome": f"exit 2: {shown[:100]}"})
