"""`supervisor-pd logs NAME [-n N] [-f]`: the last lines, and with -f every new one as the
supervisor pushes it (one streamed reply, api/logstream.py), until the supervisor stops."""

from __future__ import annotations

import argparse
import json
import sys

from supervisor_pd.client.api import BAD_INPUT, FAILED, OK, Api, _quote, error_of


def cmd_logs(api: Api, args: argparse.Namespace) -> int:
    path = f"/v1/processes/{_quote(args.name)}/logs?tail={args.lines}"
    if not args.follow:
        status, body = api.json("GET", path)
        if status != 200:
            sys.stderr.write(f"logs: {error_of(body)}\n")
            return BAD_INPUT if status == 404 else FAILED
        sys.stdout.write("".join(line + "\n" for line in body["lines"]))
        return OK
    status, chunks = api.stream(path + "&follow=1")
    if status != 200:
        data = b"".join(chunks)
        try:
            body = json.loads(data)
        except ValueError:
            body = {"error": data.decode(errors="replace")[:200] or f"HTTP {status}"}
        sys.stderr.write(f"logs: {error_of(body)}\n")
        return BAD_INPUT if status == 404 else FAILED
    pending = b""
    for chunk in chunks:
        *records, pending = (pending + chunk).split(b"\n")
        out = []
        for raw in records:
            record = json.loads(raw) if raw.strip() else {}
            if "line" in record:
                out.append(record["line"] + "\n")
            elif "skipped" in record:
                out.append(f"... {record['skipped']} lines skipped: this reader fell behind ...\n")
        sys.stdout.write("".join(out))
        sys.stdout.flush()
    return OK  # the supervisor stopped: so has its log
