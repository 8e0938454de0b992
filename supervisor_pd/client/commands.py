"""The operator commands that ask once: `probe`, `status`, `restart`, `stop`, `start`, `drain`,
`renew-tls`. Those that then wait for the stack to get somewhere use client/watch.py."""

from __future__ import annotations

import argparse
import json
import sys
import time

from supervisor_pd.client import watch
from supervisor_pd.client.api import BAD_INPUT, FAILED, OK, Api, ClientError, _quote, error_of
from supervisor_pd.client.parser import PROBES
from supervisor_pd.client.status import status_table


def cmd_probe(api: Api, args: argparse.Namespace) -> int:
    path = PROBES[args.kind] + ("?verbose" if args.verbose else "")
    last = ""
    for attempt in range(args.retries + 1):
        try:
            status, body = api.call("GET", path)
        except ClientError as exc:
            last = str(exc)
        else:
            if status == 200:
                if args.verbose:
                    sys.stdout.write(body.decode(errors="replace"))
                return OK
            last = body.decode(errors="replace").strip() or f"HTTP {status}"
        if attempt < args.retries:
            time.sleep(min(1.0, args.request_timeout))
    sys.stderr.write(f"{args.kind} probe failed: {last}\n")
    return FAILED


def cmd_status(api: Api, args: argparse.Namespace) -> int:
    if args.watch:
        return watch.watch_status(api, args)
    status, body = api.json("GET", "/v1/status")
    if status != 200:
        sys.stderr.write(f"status: {error_of(body)}\n")
        return FAILED
    if args.json:
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
    else:
        sys.stdout.write(status_table(body, time.time()))
    return OK


def _refused(command: str, status: int, body: object) -> int:
    sys.stderr.write(f"{command}: {error_of(body)}\n")
    return BAD_INPUT if status in (400, 404) else FAILED


def cmd_restart(api: Api, args: argparse.Namespace) -> int:
    if args.servers or args.rolling:
        return _roll(api, args)
    if args.name is None:
        raise ValueError("restart: give a process NAME, or --servers --rolling")
    if args.role or args.allow_outage:
        raise ValueError("restart: --role and --allow-outage go with --servers --rolling")
    before = watch.process_of(api, args.name) if args.wait else None
    status, body = api.json("POST", f"/v1/processes/{_quote(args.name)}/restart")
    if status != 202:
        return _refused("restart", status, body)
    sys.stdout.write(f"{args.name}: restarting\n")
    sys.stdout.flush()
    if before is None:
        return OK
    return watch.until_back(api, args.name, before, 1, args.wait_timeout, "restart")


def _roll(api: Api, args: argparse.Namespace) -> int:
    if not (args.servers and args.rolling):
        raise ValueError("restart: --servers and --rolling go together (the Servers, one at a time)")
    if args.name is not None:
        raise ValueError(f"restart: a NAME ({args.name}) or --servers --rolling, not both")
    query = []
    if args.role:
        query.append(f"role={args.role}")
    if args.allow_outage:
        query.append("allow-outage=1")
    path = "/v1/servers/rolling-restart" + ("?" + "&".join(query) if query else "")
    status, body = api.json("POST", path)
    if status != 202:
        return _refused("restart", status, body)
    sys.stdout.write(f"rolling restart of {', '.join(body['order'])}: one at a time, each back before the next\n")
    sys.stdout.flush()
    if not args.wait:
        return OK
    return watch.follow_roll(api, body["token"], len(body["order"]), args.wait_timeout)


def cmd_stop(api: Api, args: argparse.Namespace) -> int:
    status, body = api.json("POST", f"/v1/processes/{_quote(args.name)}/stop")
    if status != 202:
        return _refused("stop", status, body)
    if args.no_wait:
        sys.stdout.write(f"{args.name}: stopping\n")
        return OK
    return watch.until_stopped(api, args.name, args.wait_timeout)


def cmd_start(api: Api, args: argparse.Namespace) -> int:
    before = None if args.no_wait else watch.process_of(api, args.name)
    status, body = api.json("POST", f"/v1/processes/{_quote(args.name)}/start")
    if status != 202:
        return _refused("start", status, body)
    sys.stdout.write(f"{args.name}: starting\n")
    sys.stdout.flush()
    if before is None:
        return OK
    return watch.until_back(api, args.name, before, 0, args.wait_timeout, "start")


def cmd_drain(api: Api, args: argparse.Namespace) -> int:
    status, body = api.json("POST", "/v1/drain")
    if status != 202:
        sys.stderr.write(f"drain: {error_of(body)}\n")
        return FAILED
    sys.stdout.write(f"supervisor: {body['result']}\n")
    if not args.wait:
        return OK
    deadline = time.monotonic() + args.wait_timeout
    while time.monotonic() < deadline:
        try:
            api.call("GET", "/livez")
        except ClientError:
            sys.stdout.write("supervisor: stopped\n")
            return OK
        time.sleep(0.2)
    sys.stderr.write(f"drain: the supervisor was still running after {args.wait_timeout:g} s\n")
    return FAILED


def cmd_renew_tls(api: Api, args: argparse.Namespace) -> int:
    status, body = api.json("POST", "/v1/tls/renew")
    if status != 202:
        sys.stderr.write(f"renew-tls: {error_of(body)}\n")
        return FAILED
    sys.stdout.write("supervisor: renewing the pod certificate; each process restarts in turn to load it\n")
    return OK
