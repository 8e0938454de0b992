"""Commands that watch the stack get somewhere: `status --watch`, `wait --for`, and the waits of
`restart --wait`, `stop`, `start` and a rolling restart. They ask the status API a few times a
second (as `kubectl wait` and supervisorctl do); the answers come from memory and cost the
supervisor a snapshot each.

Exit codes: 0 the condition holds, 1 it failed or can no longer hold (with the reason), 2 bad
input, 3 timed out (with what was last seen).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from supervisor_pd.client.api import FAILED, OK, Api, ClientError, Unreachable, error_of
from supervisor_pd.client.status import status_table

TIMED_OUT = 3
POLL = 0.1
SERVING = ("role-ready", "ready")  # a Server's readiness counts / the Coordinator's, the Controller up
# Clear to the end of the line / of the screen, and home: redraw in place, without flicker.
EOL, EOS, HOME = "\x1b[K", "\x1b[J", "\x1b[H"


def status_of(api: Api) -> dict[str, Any]:
    status, body = api.json("GET", "/v1/status")
    if status != 200 or not isinstance(body, dict):
        raise ClientError(error_of(body))
    return body


def _process(data: dict[str, Any], name: str) -> dict[str, Any]:
    found = next((p for p in data.get("processes", []) if p.get("name") == name), None)
    if found is None:
        known = ", ".join(p["name"] for p in data.get("processes", []))
        raise ValueError(f"no process named {name!r}; known: {known}")
    return found


def process_of(api: Api, name: str) -> dict[str, Any]:
    return _process(status_of(api), name)


def serving(process: dict[str, Any]) -> str:
    state = (process.get("serving") or {}).get("state")
    if state is not None:
        return str(state)
    return "ready" if process.get("ready") else "not ready"


# --- status --watch --------------------------------------------------------------------------


def watch_status(api: Api, args: argparse.Namespace) -> int:
    """The table again every interval: redrawn in place on a terminal, else one table after the other."""
    tty = sys.stdout.isatty()
    shown = 0
    while True:
        try:
            data = status_of(api)
        except Unreachable as exc:
            if shown:
                sys.stdout.write("supervisor: stopped\n")
                return OK
            sys.stderr.write(f"status: {exc}\n")
            return FAILED
        heading = f"every {args.interval:g}s: {api.where}  {time.strftime('%Y-%m-%d %H:%M:%S')}"
        table = status_table(data, time.time())
        if tty:
            lines = [heading, "", *table.rstrip("\n").split("\n")]
            sys.stdout.write(HOME + "".join(line + EOL + "\n" for line in lines) + EOS)
        else:
            sys.stdout.write(f"{heading}\n{table}\n")
        sys.stdout.flush()
        shown += 1
        if args.count is not None and shown >= args.count:
            return OK
        time.sleep(args.interval)


# --- wait --for ready|stopped ----------------------------------------------------------------


def _ready(api: Api) -> tuple[bool, str, bool]:
    """(holds, what was seen, can no longer hold)."""
    try:
        data = status_of(api)
    except ClientError as exc:
        return False, str(exc), False
    phase, reason = data["phase"], data["phase_reason"]
    if data.get("ready"):
        return True, f"the service is ready ({reason})", False
    if phase in ("draining", "stopped", "failed"):
        return False, f"the service is {phase}: it will not be ready ({reason})", True
    return False, f"the service is {phase} ({reason})", False


def _stopped(api: Api) -> tuple[bool, str, bool]:
    try:
        data = status_of(api)
    except Unreachable:
        return True, "the supervisor has stopped", False
    except ClientError as exc:
        return False, str(exc), False
    if data["phase"] == "stopped":
        return True, "the supervisor has stopped every process", False
    return False, f"the service is {data['phase']} ({data['phase_reason']})", False


def cmd_wait(api: Api, args: argparse.Namespace) -> int:
    check = _ready if args.condition == "ready" else _stopped
    deadline = time.monotonic() + args.wait_timeout
    while True:
        holds, seen, hopeless = check(api)
        if holds:
            sys.stdout.write(f"{args.condition}: {seen}\n")
            return OK
        if hopeless:
            sys.stderr.write(f"wait: {seen}\n")
            return FAILED
        left = deadline - time.monotonic()
        if left <= 0:
            sys.stderr.write(f"wait: timed out after {args.wait_timeout:g} s waiting for {args.condition}: {seen}\n")
            return TIMED_OUT
        time.sleep(min(POLL, left))


# --- restart --wait, stop, start -------------------------------------------------------------


def until_back(api: Api, name: str, before: dict[str, Any], restarts: int, limit: float, command: str) -> int:
    """Until `name` runs as a new process and serves (a Server role-ready): `restarts` is how many
    restarts the request itself adds; one more means it failed again after it."""
    began = time.monotonic()
    while True:
        try:
            data = status_of(api)
        except Unreachable:
            sys.stderr.write(f"{command}: the supervisor has stopped\n")
            return FAILED
        now = _process(data, name)
        if data["phase"] in ("draining", "stopped", "failed"):
            sys.stderr.write(f"{command}: the service is {data['phase']} ({data['phase_reason']})\n")
            return FAILED
        if now["state"] in ("stopped", "failed"):
            sys.stderr.write(f"{command}: {name} is {now['state']}: {now['reason']}\n")
            return FAILED
        if now["restarts"] > before["restarts"] + restarts:
            sys.stderr.write(f"{command}: {name} failed again after it: {now['last_exit']} ({now['reason']})\n")
            return FAILED
        took = time.monotonic() - began
        if now["pid"] and now["pid"] != before["pid"] and serving(now) in SERVING:
            sys.stdout.write(f"{name}: back, pid {now['pid']}, {serving(now)} after {took:.1f} s\n")
            return OK
        if took >= limit:
            seen = f"{now['state']}, {serving(now)}: {(now.get('serving') or {}).get('detail') or now['reason']}"
            sys.stderr.write(f"{command}: timed out after {limit:g} s waiting for {name} to be back: {seen}\n")
            return TIMED_OUT
        time.sleep(POLL)


def until_stopped(api: Api, name: str, limit: float) -> int:
    began = time.monotonic()
    while True:
        now = process_of(api, name)
        if now["state"] == "stopped":
            sys.stdout.write(f"{name}: stopped ({now['last_exit'] or now['reason']})\n")
            return OK
        if time.monotonic() - began >= limit:
            sys.stderr.write(f"stop: timed out after {limit:g} s; {name} is {now['state']}\n")
            return TIMED_OUT
        time.sleep(POLL)


# --- restart --servers --rolling --wait ------------------------------------------------------


def follow_roll(api: Api, token: str, total: int, limit: float) -> int:
    """One line per step as the roll goes, until it is done, stops, or the time is up."""
    began = time.monotonic()
    said: set[str] = set()
    while True:
        status, view = api.json("GET", "/v1/servers/rolling-restart")
        if status != 200:
            sys.stderr.write(f"restart: {error_of(view)}\n")
            return FAILED
        if view.get("token") == token:
            for index, name in enumerate(view["done"], 1):
                if f"done {name}" not in said:
                    said.add(f"done {name}")
                    sys.stdout.write(f"{name}: back ({index} of {total})\n")
            current = view.get("current")
            if current and f"now {current}" not in said:
                said.add(f"now {current}")
                sys.stdout.write(f"{current}: restarting ({len(view['done']) + 1} of {total})\n")
            sys.stdout.flush()
            if view["state"] == "done":
                sys.stdout.write(f"rolling restart done: {view['reason']}\n")
                return OK
            if view["state"] in ("failed", "refused"):
                sys.stderr.write(f"restart: rolling restart {view['state']}: {view['reason']}\n")
                return FAILED
        if time.monotonic() - began >= limit:
            sys.stderr.write(
                f"restart: timed out after {limit:g} s; the roll goes on (GET /v1/servers/rolling-restart)\n"
            )
            return TIMED_OUT
        time.sleep(POLL)
