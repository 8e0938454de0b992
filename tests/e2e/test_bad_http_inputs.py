"""The HTTP half of the bad-input corpus (tests/corpus/bad_inputs.py), against one running stack.

Every request goes out byte for byte on its own connection, so the server sees exactly what the
case says, malformed framing included. After each case /livez must still answer, and at the end
the supervisor must still be running, ready (no case drained it) and free of tracebacks.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client as httpclient
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor_pd.api.errors import openai_path
from tests.corpus.bad_inputs import GZIP_BOMB, HTTP_CASES, SLOW_CASES, TOKEN, HttpCase, SlowCase
from tests.report import record
from tests.superstack import SupervisorRun, running

REPLY_TIMEOUT = 10.0  # a reply later than this counts as a hang
PROBE_BOUND = 1.0  # longest a probe may take while slow clients hold connections


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorRun]:
    with running(tmp_path_factory.mktemp("bad-http"), env={"SUPERVISOR_PD_API_TOKEN": TOKEN}) as stack:
        yield stack


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def exchange(port: int, data: bytes, timeout: float = REPLY_TIMEOUT) -> Reply:
    """Send `data` as it is and read one reply (head, then the body by Content-Length or to the close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:

        def send() -> None:
            # The server may answer (413, 400) and stop reading before the end of a large request.
            with contextlib.suppress(OSError):
                sock.sendall(data)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        received = bytearray()
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1."), f"not an HTTP reply: {bytes(received[:200])!r}"
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
        }
        length = int(headers.get("content-length", "-1"))
        while length < 0 or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return Reply(int(lines[0].split(" ", 2)[1]), headers, body[:length] if length >= 0 else body)


def error_text(data: Any) -> str:
    """The message of {"error": "..."} or of the OpenAI form {"error": {"message": ...}}."""
    error = data["error"]
    return str(error["message"] if isinstance(error, dict) else error)


def test_the_corpus_is_well_formed() -> None:
    ids = [case.id for case in HTTP_CASES] + [case.id for case in SLOW_CASES]
    assert len(ids) == len(set(ids))
    assert all(400 <= case.status < 500 and case.words for case in HTTP_CASES)


@pytest.mark.parametrize("case", HTTP_CASES, ids=lambda case: case.id)
def test_a_bad_request_gets_a_4xx_and_the_port_keeps_serving(run: SupervisorRun, case: HttpCase) -> None:
    reply = exchange(run.ports.api, case.request)
    assert reply.status == case.status, (reply.status, reply.body[:300])
    if case.parser:
        text = reply.body.decode("utf-8", errors="replace")
    else:
        assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
        body = json.loads(reply.body)
        text = error_text(body)
        target = case.request.split(b" ", 2)[1].decode(errors="replace").split("?")[0]
        if openai_path(target):
            # What the official OpenAI clients read: {"error": {"message", "type", "param", "code"}}.
            assert set(body["error"]) == {"message", "type", "param", "code"}, body
    if reply.status == 405:
        assert reply.headers.get("allow"), "a 405 says which methods are allowed"
    for word in case.words:
        assert word in text, f"{word!r} is not in: {text}"
    assert "\x1b" not in text and "Traceback" not in text
    assert run.api("GET", "/livez", timeout=5)[0] == 200
    first = text.strip().splitlines()[0].rstrip(":")  # aiohttp's parser adds the offending bytes below
    record(
        "bad_inputs", {"category": case.category, "case": case.what, "outcome": f"HTTP {reply.status} {first[:100]}"}
    )


@pytest.mark.parametrize("case", SLOW_CASES, ids=lambda case: case.id)
def test_slow_clients_do_not_hold_up_others(run: SupervisorRun, case: SlowCase) -> None:
    clients = [
        socket.create_connection(("127.0.0.1", run.ports.api), timeout=REPLY_TIMEOUT) for _ in range(case.clients)
    ]
    done = threading.Event()

    def trickle() -> None:
        for byte in case.sends:
            for client in clients:
                client.sendall(bytes([byte]))
            if done.wait(case.pace):
                return

    try:
        if case.pace:
            sender = threading.Thread(target=trickle, daemon=True)
            sender.start()
        else:
            for client in clients:
                client.sendall(case.sends)
        # Probes go out for as long as a slow client is still sending (and at least a few times).
        latencies = []
        for path in ("/livez", "/readyz", "/v1/status", "/v1/models"):
            began = time.monotonic()
            assert run.api("GET", path, timeout=REPLY_TIMEOUT)[0] == 200, path
            latencies.append(time.monotonic() - began)
        if case.pace:
            while sender.is_alive():
                began = time.monotonic()
                assert run.api("GET", "/livez", timeout=REPLY_TIMEOUT)[0] == 200
                latencies.append(time.monotonic() - began)
                sender.join(timeout=0.05)
        assert max(latencies) < PROBE_BOUND, latencies
        if case.finish is not None:
            for client in clients:
                client.sendall(case.finish)
                assert client.recv(65536).startswith(b"HTTP/1.1 200"), "the slow client itself was not served"
    finally:
        done.set()
        for client in clients:
            client.close()
    assert run.api("GET", "/livez")[0] == 200
    record(
        "bad_inputs",
        {
            "category": "HTTP slow clients",
            "case": case.what,
            "outcome": f"HTTP 200 to {len(latencies)} probes meanwhile, slowest {max(latencies) * 1000:.0f} ms",
        },
    )


def test_a_compressed_body_is_refused_before_it_is_read(run: SupervisorRun) -> None:
    # Headers and the first 1 KiB of a 1 MiB gzip body; the rest is never sent. The reply comes
    # anyway: nothing waited for (or inflated) the body.
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % (1 << 20)
    )
    before = refused(run, "compressed")
    with socket.create_connection(("127.0.0.1", run.ports.api), timeout=REPLY_TIMEOUT) as sock:
        sock.sendall(head + GZIP_BOMB[:1024])
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            assert chunk, "closed without a reply"
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 415"), reply[:200]
        assert b"connection: close" in reply.lower()  # and no lingering read of what would follow
    assert refused(run, "compressed") == before + 1


def test_a_small_compressed_body_is_refused_and_the_connection_stays_usable(run: SupervisorRun) -> None:
    body = gzip.compress(b'{"messages": []}')
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    with socket.create_connection(("127.0.0.1", run.ports.api), timeout=REPLY_TIMEOUT) as sock:
        sock.sendall(request)
        reply = sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 415"), reply[:200]
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # the same connection, next request
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_the_index_and_unknown_inference_paths(run: SupervisorRun) -> None:
    code, body = run.api("GET", "/")
    assert code == 200 and "routes" in json.loads(body)
    code, body = run.api("GET", "/v1/embeddings")
    assert code == 404
    assert json.loads(body)["error"]["code"] == "not_found"


def refused(run: SupervisorRun, reason: str) -> float:
    """supervisor_pd_requests_refused_total{reason} from /metrics."""
    _, body = run.api("GET", "/metrics")
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "supervisor_pd_requests_refused_total" and sample.labels.get("reason") == reason:
                return sample.value
    return 0.0


def test_a_burst_of_refused_requests_leaves_the_log_tail_alone(run: SupervisorRun) -> None:
    # 1,500 refusals, more than the 1,000 lines kept per process: each counted, few logged.
    burst = 1500
    before = refused(run, "unauthorized")
    first = run.cli("logs", "supervisor", "-n", "1000").stdout.splitlines()
    assert any("HTTP port" in line for line in first)
    connection = httpclient.HTTPConnection("127.0.0.1", run.ports.api, timeout=REPLY_TIMEOUT)
    try:
        for _ in range(burst):
            connection.request("POST", "/v1/drain", headers={"Authorization": "Bearer wrong"})
            reply = connection.getresponse()
            reply.read()
            assert reply.status == 401
    finally:
        connection.close()
    assert refused(run, "unauthorized") - before == burst
    tail = run.cli("logs", "supervisor", "-n", "1000").stdout.splitlines()
    assert any("HTTP port" in line for line in tail), "the supervisor's own lines were pushed out"
    assert (
        sum("refused: no valid token" in line for line in tail)
        - sum("refused: no valid token" in line for line in first)
        <= 2
    )  # once per 10 s


def test_idle_connections_cannot_starve_probes(runs) -> None:  # type: ignore[no-untyped-def]
    # A supervisor with 512 file descriptors, and 600 connections that never send a request:
    # the port closes the oldest idle ones (api/connections.py) and every probe is answered.
    stack = runs()
    process = stack.start(file_limit=512)
    stack.wait_ready(timeout=60)
    idle: list[socket.socket] = []
    try:
        for _ in range(600):
            idle.append(socket.create_connection(("127.0.0.1", stack.ports.api), timeout=5))
        fds = Path(f"/proc/{process.pid}/fd")
        for _ in range(20):
            for path in ("/livez", "/readyz"):
                assert stack.api("GET", path, timeout=3)[0] == 200, path
            assert len(list(fds.iterdir())) < 512
        chat = {"model": "llama3-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert stack.api("POST", "/v1/chat/completions", chat, {"Content-Type": "application/json"})[0] == 200
        assert refused(stack, "connections") >= 600 - 512
        assert all(p["restarts"] == 0 for p in stack.status()["processes"])
    finally:
        for sock in idle:
            sock.close()
    assert stack.stop() == 0


def test_the_supervisor_kept_serving(run: SupervisorRun) -> None:
    assert run.process is not None and run.process.poll() is None
    assert run.api("GET", "/readyz")[0] == 200, "a bad request drained or broke the stack"
    assert run.api("GET", "/v1/processes/server-1")[0] == 200
    assert "Traceback" not in run.log()
