"""A running stack keeps its secrets: what listens where, what the token and a prompt leave behind
(nothing), what the children's environments hold, the modes of what it writes (docs/SECURITY.md).

One simulated stack, with a control token and POD_IP on a second loopback address, serves the
whole module; the last test drains it with the token.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.simstack import wait_until
from tests.superstack import SupervisorRun, descendants, running

TOKEN = f"tok-{uuid.uuid4().hex}"
WRONG = f"wrong-{uuid.uuid4().hex}"
PROMPT = f"zebra-quartz-{uuid.uuid4().hex}"
POD_IP = "127.0.0.2"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorRun]:
    env = {"SUPERVISOR_PD_API_TOKEN": TOKEN, "POD_IP": POD_IP, "MINDIE_LOG_TO_FILE": "1"}
    with running(tmp_path_factory.mktemp("security"), env=env) as stack:
        yield stack


def status(run: SupervisorRun) -> dict:  # type: ignore[type-arg]
    code, body = run.api("GET", "/v1/status")
    assert code == 200
    return json.loads(body)


def listeners() -> dict[str, tuple[str, int]]:
    """Listening TCP sockets of this machine: inode -> (address, port)."""
    found = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].rsplit(":", 1)
            raw = bytes.fromhex(address)
            # /proc prints the address as 32-bit words in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found[fields[9]] = (socket.inet_ntop(family, raw), int(port, 16))
    return found


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def test_what_listens_where(run: SupervisorRun) -> None:
    assert run.process is not None
    now = status(run)
    table = listeners()
    by_process: dict[str, set[tuple[str, int]]] = {}
    leaders = {p["pid"]: p["name"] for p in now["processes"]}
    for pid in descendants(run.process.pid) | {run.process.pid}:
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        name = "supervisor" if pid == run.process.pid else leaders.get(group, f"pid {pid}")
        for inode in sockets_of(pid):
            if inode in table:
                by_process.setdefault(name, set()).add(table[inode])
    assert by_process.pop("supervisor") == {("127.0.0.1", run.ports.api)}  # SUPERVISOR_PD_API_HOST
    ports = {p["name"]: p["ports"] for p in now["processes"]}
    coordinator = ports["coordinator"]
    assert by_process.pop("coordinator") == {
        (POD_IP, coordinator["predict"]),
        ("127.0.0.1", coordinator["manage"]),
        ("127.0.0.1", coordinator["status"]),
        ("127.0.0.1", coordinator["external"]),
    }
    assert by_process.pop("controller") == {(POD_IP, ports["controller"]["port"])}
    for name, found in by_process.items():
        assert name.startswith("server-"), (name, found)
        server = ports[name]
        assert {("127.0.0.1", server[key]) for key in ("port", "management", "metrics")} <= found
        assert found <= {("127.0.0.1", port) for port in server.values()}, name
    assert len(by_process) == 4


def test_tokens_and_prompts_leave_no_trace(run: SupervisorRun) -> None:
    chat = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4}
    for body in (chat, {**chat, "stream": True}):
        code, reply = run.api("POST", "/v1/chat/completions", body, headers=JSON)
        assert code == 200, reply
    code, _ = run.api("POST", "/v1/completions", {"prompt": PROMPT, "max_tokens": 2}, headers=JSON)
    assert code == 200
    # A refused control request: logged with the peer, never with what it sent.
    for path in ("/v1/drain", "/v1/processes/server-2/restart"):
        assert run.api("POST", path, headers={"Authorization": f"Bearer {WRONG}"})[0] == 401
    # A request the HTTP parser refuses, with the token in it: logged as a one-line reason.
    with socket.create_connection(("127.0.0.1", run.ports.api), timeout=5) as sock:
        sock.sendall(f"POST /v1/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\x01\r\n\r\n".encode())
        assert sock.recv(65536).split(b" ", 2)[1] == b"400"
    # An accepted one: the Server restarts alone and comes back.
    restarts = run.log().count("server-2: starting -> running")
    code, body = run.api("POST", "/v1/processes/server-2/restart", headers={"Authorization": f"Bearer {TOKEN}"})
    assert code == 202, body
    run.wait_log(r"server-2: starting -> running", count=restarts + 1)

    lines = run.supervisor_lines()
    refused = [line for line in lines if "refused" in line]
    # The second refusal of the same kind within 10 s is counted, not logged (docs/SECURITY.md).
    assert refused == ["control request POST /v1/drain from 127.0.0.1 refused: no valid token"]
    assert "restart of server-2 requested through the API" in lines
    assert [line for line in lines if line.startswith("Error handling request from 127.0.0.1: 400")]
    names = [p["name"] for p in status(run)["processes"]]
    seen = {"the supervisor's output (every process's lines)": run.log().encode()}
    for path in ("/v1/status", "/v1/processes", "/metrics"):
        seen[path] = run.api("GET", path)[1]
    for name in [*names, "supervisor"]:
        seen[f"logs of {name}"] = run.api("GET", f"/v1/processes/{name}/logs?tail=1000")[1]
    for file in (run.state / "logs").iterdir():
        seen[str(file)] = file.read_bytes()
    for where, data in seen.items():
        assert data, where
        for secret in (TOKEN, WRONG, PROMPT):
            assert secret.encode() not in data, f"{secret} in {where}"


def test_no_child_gets_the_token(run: SupervisorRun) -> None:
    assert run.process is not None
    supervisor = environ(run.process.pid)
    assert f"SUPERVISOR_PD_API_TOKEN={TOKEN}".encode() in supervisor.split(b"\0")  # it was given one
    pids = descendants(run.process.pid)
    children = {p["pid"] for p in status(run)["processes"]}
    assert children <= pids
    assert len(pids) > len(children)  # the Servers' workers and the guardian too
    for pid in pids:
        env = environ(pid)
        if not env:
            continue  # gone meanwhile
        assert TOKEN.encode() not in env, pid
        names = [item.split(b"=", 1)[0].upper() for item in env.split(b"\0")]
        assert b"SUPERVISOR_PD_API_TOKEN" not in names, pid
        assert TOKEN.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_what_it_writes_is_closed_to_others(run: SupervisorRun) -> None:
    state = run.state
    assert mode(state / "api.sock") == 0o600 and stat.S_ISSOCK((state / "api.sock").lstat().st_mode)
    conf = state / "conf"
    assert mode(conf) == 0o750
    assert {f.name for f in conf.iterdir()} >= {"config1.json", "ms_coordinator.json", "global_ranktable.json"}
    for file in conf.iterdir():
        assert mode(file) == 0o640, file
    assert mode(state / "logs") == 0o750
    logs = list((state / "logs").iterdir())
    assert {f.name for f in logs} >= {"server-1.log", "coordinator.log", "controller.log"}
    for file in logs:
        assert mode(file) == 0o640, file
    umask = os.umask(0)
    os.umask(umask)
    for folder in ("controller", "coordinator", "servers/server-1", "run"):
        assert mode(state / folder) == 0o750 & ~umask, folder
    # Below the state folder nothing supervisor_pd made is writable by others.
    for path in [state, *state.rglob("*")]:
        if not path.is_symlink():
            assert not mode(path) & stat.S_IWOTH, path


def test_the_right_token_drains_the_stack(run: SupervisorRun) -> None:
    assert run.process is not None
    assert run.api("POST", "/v1/drain")[0] == 401
    code, body = run.api("POST", "/v1/drain", headers={"Authorization": f"Bearer {TOKEN}"})
    assert code == 202 and json.loads(body)["result"] == "draining"
    assert run.process.wait(30) == 0
    run.wait_log(r"service: \w+ -> draining: drain requested through the HTTP port")
    wait_until(lambda: not (run.state / "api.sock").exists(), 5, what="the socket removed")
    assert TOKEN not in run.log()
