"""The operator commands' flags, added to `supervisor-pd`'s parser (cli.py)."""

from __future__ import annotations

import argparse
from typing import Any

PROBES = {"startup": "/startupz", "readiness": "/readyz", "liveness": "/livez"}
CONDITIONS = ("ready", "stopped")
ROLES = ("prefill", "decode")
LONG_WAIT = 1800.0  # the default SUPERVISOR_PD_READY_SECONDS: how long a Server may take to be back


def _number(text: str, low: float, high: float, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of {what}, not {text!r}") from None
    if not low < value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g} {what}, not {text}")
    return value


def _positive(text: str) -> float:
    return _number(text, 0, 600, "seconds")


def _wait_seconds(text: str) -> float:
    return _number(text, 0, 86400, "seconds")


def _whole(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {text}")
    return value


def _count(text: str) -> int:
    return _whole(text, 0, 30)


def _lines(text: str) -> int:
    return _whole(text, 1, 1000)


def _rounds(text: str) -> int:
    return _whole(text, 1, 1_000_000)


def _interval(text: str) -> float:
    return _number(text, 0, 3600, "seconds")


def add_commands(commands: Any) -> None:
    """The client's subcommands, added to `supervisor-pd`'s parser."""
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument("--url", help="talk to the HTTP port at this URL instead of the local socket")
    where = argparse.ArgumentParser(add_help=False, parents=[url])
    where.add_argument(
        "--timeout",
        dest="request_timeout",
        metavar="SECONDS",
        type=_positive,
        default=2.0,
        help="seconds allowed per request (default 2)",
    )
    waiting = argparse.ArgumentParser(add_help=False)
    waiting.add_argument(
        "--wait-timeout",
        metavar="SECONDS",
        type=_wait_seconds,
        default=LONG_WAIT,
        help="seconds to wait (default 1800)",
    )

    probe = commands.add_parser(
        "probe",
        parents=[where],
        help="exec probe: exit 0 if the check passes, 1 if not",
        description="Ask the running supervisor for its startup, readiness or liveness check.",
    )
    probe.add_argument("kind", choices=sorted(PROBES))
    probe.add_argument("--retries", type=_count, default=0, help="extra attempts after a failure (0-30)")
    probe.add_argument("--verbose", action="store_true", help="print each check and its result")

    status = commands.add_parser("status", parents=[where], help="every process: state, pid, ports, health")
    status.add_argument("--json", action="store_true", help="print the raw status document")
    status.add_argument("-w", "--watch", action="store_true", help="print it again every --interval seconds")
    status.add_argument(
        "--interval", metavar="SECONDS", type=_interval, default=2.0, help="seconds between two with --watch (2)"
    )
    status.add_argument("--count", type=_rounds, help="with --watch: stop after this many")

    wait = commands.add_parser(
        "wait",
        parents=[url],
        help="wait until the service is ready, or the supervisor has stopped",
        description="Exit 0 as soon as the condition holds: `ready` (the service is ready: /readyz passes) or "
        "`stopped` (the supervisor is gone, or its phase is stopped). Exit 1 when it can no longer hold (the "
        "service is draining or failed while waiting for ready), 2 for bad input, 3 on timeout, with one line "
        "saying what was last seen.",
    )
    wait.add_argument("--for", dest="condition", required=True, choices=CONDITIONS, help="ready or stopped")
    wait.add_argument(
        "--timeout", dest="wait_timeout", metavar="SECONDS", type=_wait_seconds, default=300.0, help="seconds (300)"
    )

    logs = commands.add_parser("logs", parents=[where], help="a process's recent output")
    logs.add_argument("name", help="process name, as `supervisor-pd status` shows it (or `supervisor`)")
    logs.add_argument("-n", "--lines", type=_lines, default=100, help="how many recent lines (1-1000, default 100)")
    logs.add_argument("-f", "--follow", action="store_true", help="then each new line as it is written")

    restart = commands.add_parser(
        "restart",
        parents=[where, waiting],
        help="restart one process, or every Server one at a time (--servers --rolling)",
        description="Restart NAME (SIGTERM, SIGKILL after SUPERVISOR_PD_STOP_SECONDS, started again at once), or "
        "with --servers --rolling every Server one at a time, each back to role-ready before the next. A roll is "
        "refused where MindIE cannot keep the service up through it (docs/running.md, Operating it).",
    )
    restart.add_argument("name", nargs="?", help="process name, as `supervisor-pd status` shows it")
    restart.add_argument("--wait", action="store_true", help="return when it is back and serving (or failed)")
    restart.add_argument("--servers", action="store_true", help="the Servers (with --rolling)")
    restart.add_argument("--rolling", action="store_true", help="one at a time, each back before the next")
    restart.add_argument("--role", choices=ROLES, help="only the prefill or the decode Servers")
    restart.add_argument(
        "--allow-outage", action="store_true", help="roll even where the service cannot stay up (decode Servers)"
    )

    stop = commands.add_parser(
        "stop",
        parents=[where, waiting],
        help="stop one process and keep it stopped (the service is not ready meanwhile)",
    )
    stop.add_argument("name", help="process name, as `supervisor-pd status` shows it")
    stop.add_argument("--no-wait", action="store_true", help="return once the stop is asked for")

    start = commands.add_parser(
        "start", parents=[where, waiting], help="start a stopped process; returns when it is back and serving"
    )
    start.add_argument("name", help="process name, as `supervisor-pd status` shows it")
    start.add_argument("--no-wait", action="store_true", help="return once the start is asked for")

    drain = commands.add_parser("drain", parents=[where], help="refuse new requests, finish those in flight, stop")
    drain.add_argument("--wait", action="store_true", help="return only when the supervisor has stopped")
    drain.add_argument("--wait-timeout", type=_positive, default=600.0, help="seconds to wait with --wait")

    commands.add_parser(
        "renew-tls",
        parents=[where],
        help="renew the generated pod certificate now; each process restarts in turn to load it",
    )
