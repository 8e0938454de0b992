"""The operator commands: `probe`, `status [--watch]`, `wait`, `logs [-f]`, `restart`, `stop`,
`start`, `drain` and `renew-tls`.

They talk to a running supervisor over its local Unix socket (no token needed there) or, with
`--url`, over its HTTP port (control then needs SUPERVISOR_PD_API_TOKEN or _TOKEN_FILE).
Standard library only: `probe` runs as a Kubernetes exec probe and must finish well under
100 ms, so nothing heavy (pydantic, aiohttp) is imported on this path.

    api.py       reaching the supervisor (socket or URL), replies, streamed replies
    parser.py    the commands' flags
    commands.py  the commands that ask once
    watch.py     status --watch, wait, and the waits of restart --wait, stop, start, a roll
    stream.py    logs, and logs -f as the supervisor pushes them
    status.py    the status table
"""

from __future__ import annotations

import argparse
import sys

from supervisor_pd.client import commands, stream, watch
from supervisor_pd.client.api import (
    BAD_INPUT,
    FAILED,
    OK,
    Api,
    ClientError,
    Unreachable,
    _quote,
    _read_reply,
    socket_path,
)
from supervisor_pd.client.parser import add_commands
from supervisor_pd.client.status import status_table

__all__ = [
    "BAD_INPUT",
    "COMMANDS",
    "FAILED",
    "OK",
    "Api",
    "ClientError",
    "Unreachable",
    "_quote",
    "_read_reply",
    "add_commands",
    "run",
    "socket_path",
    "status_table",
]

HANDLERS = {
    "probe": commands.cmd_probe,
    "status": commands.cmd_status,
    "wait": watch.cmd_wait,
    "logs": stream.cmd_logs,
    "restart": commands.cmd_restart,
    "stop": commands.cmd_stop,
    "start": commands.cmd_start,
    "drain": commands.cmd_drain,
    "renew-tls": commands.cmd_renew_tls,
}
COMMANDS = tuple(HANDLERS)


def run(args: argparse.Namespace) -> int:
    try:
        api = Api(args.url, getattr(args, "request_timeout", 2.0))
        return HANDLERS[args.command](api, args)
    except ValueError as exc:
        sys.stderr.write(f"supervisor-pd: error: {exc}\n")
        return BAD_INPUT
    except ClientError as exc:
        sys.stderr.write(f"supervisor-pd {args.command}: {exc}\n")
        return FAILED
    except KeyboardInterrupt:
        return 130
