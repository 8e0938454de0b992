"""A supervisord.conf for the processes `run` would start: ProcessSpecs and settings in, text out.

Every value is read by three parsers, and is written so that each gives it back unchanged:

- configparser, as supervisord configures it: a value cannot hold a line break, loses leading
  and trailing whitespace, and is cut where whitespace is followed by `;` or `#` (inline comments);
- supervisord's `%(name)s` expansion of commands, folders, paths and environments: `%` is `%%`;
- `command` is split like a POSIX shell line (shlex), so each word is shell-quoted;
- `environment` goes through supervisord's own KEY="value" lexer (shlex in non-POSIX mode), which
  has no escapes at all: a backslash is an ordinary character, a quoted value ends at the next quote
  of the same kind, and every quote character is stripped from both ends of a value. A value is
  quoted with the kind of quote it does not contain; one that contains both, begins or ends with a
  quote, or holds a line break cannot be written.

A variable that cannot be written but has the same value in the caller's environment is left out
(with a comment): supervisord hands its own environment to every child, so a supervisord started
from that environment still passes it on. One that supervisor-pd sets itself is an error.
"""

from __future__ import annotations

import itertools
import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from supervisor_pd import __version__
from supervisor_pd.errors import InputError
from supervisor_pd.platform.cpuset import format_cpulist
from supervisor_pd.runtime.spec import CONTROLLER_WITHHELD, WITHHELD, Kind, ProcessSpec
from supervisor_pd.settings import Settings, env_name

# supervisord starts lower priorities first and stops them last: the run's start order.
PRIORITY = {Kind.SERVER: 100, Kind.COORDINATOR: 200, Kind.CONTROLLER: 300}
SERVER_GROUP = "servers"
# A child that exits sooner failed to start: that is what startretries counts.
START_SECONDS = 5
SOCKET_FILE = "supervisord.sock"
PID_FILE = "supervisord.pid"
# sun_path holds 108 bytes with the terminating NUL; supervisord binds the path as given.
MAX_SOCKET_PATH = 107
# The word characters of supervisord's environment lexer: anything else splits a name.
_ENV_NAME = re.compile(r"[A-Za-z0-9_/.+\-():]+")


@dataclass(frozen=True)
class Tools:
    """The helper commands the programs start through; the caller finds them on the host."""

    env: str = "env"
    taskset: str = "taskset"


@dataclass(frozen=True)
class Dropped:
    """A variable left to supervisord's own environment because the file cannot carry it."""

    program: str
    name: str
    reason: str


@dataclass(frozen=True)
class Export:
    text: str
    dropped: tuple[Dropped, ...]


def stop_wait_seconds(settings: Settings) -> int:
    """SIGTERM to SIGKILL, per program: supervisord's stopwaitsecs is what STOP_SECONDS means."""
    return max(1, math.ceil(settings.stop_seconds))


def render(
    specs: Sequence[ProcessSpec],
    settings: Settings,
    state_dir: Path,
    inherited: Mapping[str, str],
    tools: Tools = Tools(),
) -> Export:
    """The supervisord.conf for `specs` (in start order); `inherited` is the caller's environment."""
    if not state_dir.is_absolute():
        raise ValueError(f"state_dir must be absolute, got {state_dir}")
    state_where = env_name("state_dir")
    socket = _path_value(state_dir / SOCKET_FILE, state_where)
    if len(socket.replace("%%", "%").encode()) > MAX_SOCKET_PATH:
        raise InputError(
            state_where,
            f"{state_dir} is too long for supervisord's control socket {SOCKET_FILE} there "
            f"(a Unix socket path holds at most {MAX_SOCKET_PATH} bytes); choose a shorter folder",
        )
    pidfile = _path_value(state_dir / PID_FILE, state_where)
    dropped: list[Dropped] = []
    programs = [_program(spec, settings, inherited, tools, dropped) for spec in specs]
    servers = [spec.name for spec in specs if spec.kind is Kind.SERVER]
    lines = [
        *_header(specs, settings),
        "[supervisord]",
        "nodaemon=true",
        # With nodaemon supervisord logs to stdout already; a log file would only repeat it.
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        f"pidfile={pidfile}",
        "",
        "[unix_http_server]",
        f"file={socket}",
        "chmod=0700",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{socket}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
    ]
    if servers:
        lines += [
            "; The Servers form one group so that a stop reaches them all at once, not one by one.",
            f"[group:{SERVER_GROUP}]",
            f"programs={','.join(servers)}",
            f"priority={PRIORITY[Kind.SERVER]}",
            "",
        ]
    for program in programs:
        lines += [*program, ""]
    return Export("\n".join(lines).rstrip("\n") + "\n", tuple(dropped))


def _header(specs: Sequence[ProcessSpec], settings: Settings) -> list[str]:
    wait = stop_wait_seconds(settings)
    stages = len({spec.kind for spec in specs})
    if any(spec.cpus for spec in specs):
        cpus = [
            "; CPU sets: supervisord cannot set CPU affinity, so each command starts with `taskset -c CPUS`",
            "; (util-linux), as MindIE's node manager does.",
        ]
    elif settings.simulate is not None:
        cpus = ["; CPU sets: not applied on a simulated host (they name the simulated machine's CPUs)."]
    else:
        cpus = [f"; CPU sets: none ({env_name('cpu_binding')}={settings.cpu_binding})."]
    return [
        f"; supervisord configuration for the MindIE PD stack, written by supervisor-pd {__version__}",
        "; (`supervisor-pd export supervisord`). Run it with `supervisord -n -c FILE`; control it with",
        "; `supervisorctl -c FILE`. The environments below were taken when it was written: export",
        "; again after changing the MindIE configs, the settings, the environment or the host.",
        ";",
        "; Start: the Servers, then the Coordinator, then the Controller (priority). Any that exits is",
        f"; restarted; one that keeps exiting within {START_SECONDS} s of its start is given up (FATAL) after",
        f"; {settings.restart_budget + 1} attempts in a row (startretries = {env_name('restart_budget')}).",
        "; Stop: the Controller, the Coordinator, then every Server at once; each gets SIGTERM to its",
        f"; process group and SIGKILL {wait} s later ({env_name('stop_seconds')}), so a full stop can take",
        f"; {stages * wait} s: give the container that long.",
        *cpus,
        "; Variables supervisor-pd never hands to a child are removed with `env -u`, since supervisord",
        "; passes its own environment to every child.",
        ";",
        "; What `supervisor-pd run` does and supervisord cannot (docs/supervisord.md):",
        "; - readiness gating: all programs start together; the Coordinator and Controller do not wait",
        ";   for the Servers to answer (the Controller retries until they do), and no start or ready",
        ";   deadline is enforced;",
        "; - drain on SIGTERM: requests in flight are cut; no /stopService to the Servers first;",
        "; - role-aware restarts: each program restarts alone, whatever MindIE's components need (a",
        ";   Server lost during the first role assignment, a Controller without its recovery file);",
        "; - liveness: a process that hangs without exiting is never restarted (no health checks);",
        "; - the HTTP port: no probes (/livez, /readyz, /startupz), merged /metrics, inference proxy,",
        ";   status, logs, restart or drain commands; send requests to the Coordinator's predict port;",
        "; - exit codes 3 and 4: a program that keeps failing stays FATAL while supervisord runs on;",
        "; - cleanup: children get no parent-death signal, so a SIGKILLed supervisord leaves them running.",
        "",
    ]


def _program(
    spec: ProcessSpec,
    settings: Settings,
    inherited: Mapping[str, str],
    tools: Tools,
    dropped: list[Dropped],
) -> list[str]:
    lines = [f"[program:{spec.name}]", *_describe(spec)]
    lines += [
        f"command={_command(spec, tools, inherited)}",
        f"directory={_path_value(spec.cwd, env_name('state_dir'))}",
        f"priority={PRIORITY[spec.kind]}",
        "autostart=true",
        "autorestart=true",
        f"startsecs={START_SECONDS}",
        f"startretries={settings.restart_budget}",
        "stopsignal=TERM",
        f"stopwaitsecs={stop_wait_seconds(settings)}",
        # The Servers' workers share their group and hold NPU memory: signal the whole group.
        "stopasgroup=true",
        "killasgroup=true",
        "stdout_logfile=/dev/stdout",
        "stdout_logfile_maxbytes=0",
        "redirect_stderr=true",
    ]
    items: list[str] = []
    for name, value in sorted(spec.env.items()):
        problem = _env_problem(name, value)
        if problem is None:
            items.append(_env_item(name, value))
        elif inherited.get(name) == value:
            dropped.append(Dropped(spec.name, name, problem))
            lines.append(f"; {name} is not written here ({problem}): {spec.name} inherits it from supervisord")
        else:
            raise InputError(
                name,
                f"{problem}, which supervisord's config cannot carry; supervisor-pd sets this value for "
                f"{spec.name}, so it cannot be left to supervisord's own environment",
            )
    if items:
        lines.append("environment=")
        lines += [f"    {item}," for item in items[:-1]]
        lines.append(f"    {items[-1]}")
    return lines


def _describe(spec: ProcessSpec) -> list[str]:
    lines = []
    if spec.server is not None:
        npus = ",".join(str(device.npu_id) for device in spec.server.devices)
        lines.append(f"; {spec.server.role.value} Server {spec.server.index}: NPUs {npus}")
    if spec.cpus:
        lines.append(f"; CPUs {format_cpulist(spec.cpus)} through taskset: supervisord cannot set CPU affinity")
    return lines


def withheld(spec: ProcessSpec, inherited: Mapping[str, str]) -> list[str]:
    """Variables the run would not hand to this child, which supervisord's environment may hold:
    the withheld names, and any other spelling of a secret's name found in `inherited`."""
    spellings = [name for name in inherited if name.upper() in WITHHELD]
    names = dict.fromkeys((*WITHHELD, *spellings, *CONTROLLER_WITHHELD))
    return [name for name in names if name not in spec.env]


def _command(spec: ProcessSpec, tools: Tools, inherited: Mapping[str, str]) -> str:
    where = f"{env_name(f'{spec.kind.value}_command')} ({spec.name})"
    words: list[str] = []
    if spec.cpus:
        words += [tools.taskset, "-c", format_cpulist(spec.cpus)]
    unset = withheld(spec, inherited)
    if unset:
        if "=" in spec.argv[0]:
            raise InputError(where, f"{spec.argv[0]!r}: `env` would read a command with `=` as a variable")
        words += [tools.env, *(part for name in unset for part in ("-u", name))]
    words += spec.argv
    return " ".join(_command_word(word, where) for word in words)


def _command_word(word: str, where: str) -> str:
    problem = _text_problem(word)
    if problem is not None:
        raise InputError(where, f"argument {word!r} {problem}, which supervisord's config cannot carry")
    quoted = shlex.quote(word)
    parts = []
    for index, char in enumerate(quoted):
        parts.append(char)
        # Whitespace only ever appears inside single quotes here, where '' (close, reopen) parts
        # it from a following ; or # without changing the word.
        if char.isspace() and quoted[index + 1 : index + 2] in (";", "#"):
            parts.append("''")
    return "".join(parts).replace("%", "%%")


def _path_value(path: Path, where: str) -> str:
    text = str(path)
    problem = _text_problem(text) or _comment_problem(text)
    if problem is None and text != text.strip():
        problem = "begins or ends with whitespace"
    if problem is not None:
        raise InputError(where, f"{text!r} {problem}, which supervisord's config cannot carry")
    return text.replace("%", "%%")


def _text_problem(text: str) -> str | None:
    if "\n" in text or "\r" in text:
        return "holds a line break"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


def _comment_problem(text: str) -> str | None:
    if any(first.isspace() and second in ";#" for first, second in itertools.pairwise(text)):
        return "holds whitespace followed by ; or #, where supervisord's config parser starts a comment"
    return None


def _env_problem(name: str, value: str) -> str | None:
    if not _ENV_NAME.fullmatch(name):
        return "its name has characters supervisord's environment syntax cannot carry"
    problem = _text_problem(value)
    if problem is not None:
        return f"its value {problem}"
    if "'" in value and '"' in value:
        return "its value holds both kinds of quote"
    if value[:1] in ("'", '"') or value[-1:] in ("'", '"'):
        return "its value begins or ends with a quote, which supervisord strips"
    problem = _comment_problem(value)
    return None if problem is None else f"its value {problem}"


def _env_item(name: str, value: str) -> str:
    quote = "'" if '"' in value else '"'
    return f"{name}={quote}{value.replace('%', '%%')}{quote}"


def program_names(specs: Iterable[ProcessSpec]) -> list[str]:
    """The names supervisorctl knows the programs by: group:name for the Servers."""
    return [f"{SERVER_GROUP}:{spec.name}" if spec.kind is Kind.SERVER else spec.name for spec in specs]
