"""The HTTP port's authentication and limits, served in-process on loopback; the token kept from
host tools and the guardian; the least privilege the Dockerfile, the manifests and the docker
commands declare (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import hmac
import io
import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from supervisor_pd.api import server as api_server
from supervisor_pd.api.proxy import PREDICT_PATHS, TRITON_SUFFIXES
from supervisor_pd.api.server import MAX_TAIL, ApiServer
from supervisor_pd.errors import InputError
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.platform.tools import run_tool
from supervisor_pd.runtime.logs import MAX_LINE, SUPERVISOR, TAIL_LINES, LogSink
from supervisor_pd.runtime.processes import Guardian
from supervisor_pd.runtime.spec import build_specs
from supervisor_pd.runtime.supervisor import Supervisor
from supervisor_pd.settings import Settings
from tests import factories
from tests.helpers import REPO
from tests.simstack import wait_until

TOKEN = "right-t0ken-3b9f2c"
WRONG = "wr0ng-t0ken-77d1e0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, api: ApiServer, supervisor: Supervisor, port: int) -> None:
        self.api = api
        self.supervisor = supervisor
        self.url = f"http://127.0.0.1:{port}"
        self.socket = api.socket_path

    def log(self) -> list[str]:
        return self.supervisor.sink.tail(SUPERVISOR, 1000)

    async def tcp(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(method, self.url + path, headers=headers or {}) as reply,
        ):
            return reply.status, await reply.read()

    async def unix(self, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        connector = aiohttp.UnixConnector(path=str(self.socket))
        async with (
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.request(method, "http://localhost" + path, headers=headers or {}) as reply,
        ):
            return reply.status, await reply.read()


def make_api(tmp_path: Path, token: str | None, **extra: Any) -> ApiServer:
    """supervisor_pd's ApiServer for a planned 800I A2, on a free loopback port; no child runs."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        **extra,
        api_host="127.0.0.1",  # type: ignore[arg-type]
        api_port=free_port(),
        api_socket=tmp_path / "api.sock",
        api_token=token,  # type: ignore[arg-type]
        state_dir=tmp_path / "state",
    )
    plan = make_plan(
        factories.facts(factories.chips(8, per_node=4)), factories.inputs(), settings, factories.FakeChecker()
    )
    specs = build_specs(plan, settings, {"PATH": "/usr/bin"}, tmp_path / "conf", tmp_path / "state")
    supervisor = Supervisor(specs, settings, LogSink(out=io.BytesIO()), tmp_path / "state", apply_cpus=False)
    return ApiServer(supervisor, plan, settings)


@asynccontextmanager
async def serve(tmp_path: Path, token: str | None, **extra: Any) -> AsyncIterator[Served]:
    api = make_api(tmp_path, token, **extra)
    await api.start()
    try:
        yield Served(api, api.supervisor, api.plan.supervisor.api_port)
    finally:
        await api.stop()
        api.supervisor.sink.close()


def refusal_count(served: Served, reason: str) -> float:
    value = served.api.metrics.registry.get_sample_value("supervisor_pd_requests_refused_total", {"reason": reason})
    return value or 0.0


def posted(served: Served) -> int:
    """Commands the API handed to the supervision loop."""
    return int(served.supervisor._send.statistics().current_buffer_used)


pytestmark = pytest.mark.anyio
# Held to the route table by the test below.
ROUTES = [
    "/v1/processes/{name}/restart",
    "/v1/processes/{name}/stop",
    "/v1/processes/{name}/start",
    "/v1/servers/rolling-restart",
    "/v1/drain",
    "/v1/tls/renew",
]


def control_routes(tmp_path: Path) -> list[str]:
    """Every POST route of the port that is not an inference path, from the real route table."""
    inference = set(PREDICT_PATHS) | {"/v2/models/{model}/" + suffix for suffix in TRITON_SUFFIXES}
    api = make_api(tmp_path, None)
    try:
        routes = [r for r in api.app().router.routes() if r.method == "POST" and r.resource is not None]
    finally:
        api.supervisor.sink.close()
    return [r.resource.canonical for r in routes if r.resource is not None and r.resource.canonical not in inference]


def concrete(route: str) -> str:
    return route.replace("{name}", "server-1")


async def test_control_routes_are_exactly_the_listed_ones(tmp_path: Path) -> None:
    assert sorted(control_routes(tmp_path)) == sorted(ROUTES)


async def test_without_a_token_control_on_tcp_is_off(tmp_path: Path) -> None:
    async with serve(tmp_path, token=None) as served:
        for route in ROUTES:
            for headers in ({}, {"Authorization": f"Bearer {WRONG}"}):
                code, body = await served.tcp("POST", concrete(route), headers)
                assert code == 403, route
                assert b"SUPERVISOR_PD_API_TOKEN" in body
        refused = [line for line in served.log() if "refused" in line]
        # Logged once per interval (a client cannot flood the log), every one counted.
        assert len(refused) == 1 and "from 127.0.0.1 refused: no token is set" in refused[0]
        assert refusal_count(served, "control-off") == 2 * len(ROUTES)
        assert not [line for line in served.log() if WRONG in line]
        assert posted(served) == 0  # nothing reached the supervision loop


@pytest.mark.parametrize(
    "header",
    [
        None,
        f"Bearer {WRONG}",
        TOKEN,  # no scheme
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer  {TOKEN}",
        "Bearer ",
    ],
)
async def test_a_missing_or_wrong_token_gets_401(tmp_path: Path, header: str | None) -> None:
    async with serve(tmp_path, token=TOKEN) as served:
        headers = {"Authorization": header} if header is not None else {}
        for route in ROUTES:
            code, body = await served.tcp("POST", concrete(route), headers)
            assert code == 401, (route, header)
            assert body == b'{"error":"a valid bearer token is required"}'
        async with aiohttp.ClientSession() as session, session.post(served.url + "/v1/drain", headers=headers) as reply:
            assert reply.headers["WWW-Authenticate"] == "Bearer"
        lines = served.log()
        refused = [line for line in lines if "refused: no valid token" in line]
        assert len(refused) == 1 and " from 127.0.0.1 " in refused[0]
        assert refusal_count(served, "unauthorized") == len(ROUTES) + 1
        assert not [line for line in lines if TOKEN in line or WRONG in line]
        assert posted(served) == 0


async def test_the_right_token_is_checked_in_constant_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        compared.append((given, expected))
        return original(given, expected)

    monkeypatch.setattr(api_server.hmac, "compare_digest", spy)
    async with serve(tmp_path, token=TOKEN) as served:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        # Past the check, a request is judged on its merits: server-1 has not started yet.
        assert (await served.tcp("POST", "/v1/processes/server-1/restart", auth))[0] == 409
        # The scheme is case-insensitive (RFC 7235), the token is not.
        lower = {"Authorization": f"bearer {TOKEN}"}
        assert (await served.tcp("POST", "/v1/processes/server-1/restart", lower))[0] == 409
        assert (await served.tcp("POST", "/v1/drain", {"Authorization": f"Bearer {WRONG}"}))[0] == 401
        assert (await served.tcp("POST", "/v1/drain", auth))[0] == 202
        pairs = ((TOKEN, TOKEN), (TOKEN, TOKEN), (WRONG, TOKEN), (TOKEN, TOKEN))
        assert compared == [(a.encode(), b.encode()) for a, b in pairs]
        assert posted(served) == 1  # the drain
        assert not [line for line in served.log() if TOKEN in line]


@pytest.mark.parametrize("token", [None, TOKEN])
async def test_the_socket_is_0600_and_needs_no_token(tmp_path: Path, token: str | None) -> None:
    previous = os.umask(0)  # whatever the umask, the socket is never open to others
    try:
        async with serve(tmp_path, token=token) as served:
            assert stat.S_IMODE(served.socket.stat().st_mode) == 0o600
            assert stat.S_ISSOCK(served.socket.stat().st_mode)
            assert (await served.unix("POST", "/v1/processes/server-1/restart"))[0] == 409
            assert (await served.unix("POST", "/v1/drain"))[0] == 202
            assert posted(served) == 1
            assert not [line for line in served.log() if "refused" in line]
        assert not served.socket.exists()  # removed when the port closes
    finally:
        os.umask(previous)


async def test_the_socket_removed_at_the_end_is_only_the_one_this_server_made(tmp_path: Path) -> None:
    async with serve(tmp_path, token=None) as served:
        # Another process replaced it meanwhile (its own socket at the same path).
        served.socket.unlink()
        other = socket.socket(socket.AF_UNIX)
        other.bind(str(served.socket))
    try:
        assert served.socket.exists() and stat.S_ISSOCK(served.socket.stat().st_mode)
    finally:
        other.close()


async def test_a_socket_another_process_listens_on_is_refused_and_a_stale_one_replaced(tmp_path: Path) -> None:
    api = make_api(tmp_path, None)
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(api.socket_path))
    live.listen()
    try:
        with pytest.raises(InputError, match="another process listens on"):
            await api.start()
        assert api.socket_path.exists()
    finally:
        live.close()  # now stale: bound, nobody listening
    async with serve(tmp_path, token=None) as served:
        assert (await served.unix("GET", "/livez"))[0] == 200


async def test_a_socket_path_that_holds_a_file_is_refused_and_kept(tmp_path: Path) -> None:
    api = make_api(tmp_path, None)
    api.socket_path.write_text("not a socket")
    with pytest.raises(InputError, match="is not a socket; it is not replaced"):
        await api.start()
    assert api.socket_path.read_text() == "not a socket"


@pytest.mark.parametrize(
    "path",
    [
        *("/livez", "/readyz", "/startupz", "/v1/status", "/v1/processes", "/v1/processes/server-1"),
        *("/v1/models", "/metrics", "/metrics/pod"),
    ],
)
async def test_read_only_paths_need_no_token(tmp_path: Path, path: str) -> None:
    async with serve(tmp_path, token=TOKEN) as served:
        code, body = await served.tcp("GET", path)
        assert code in (200, 503), (path, code)  # 503: a probe before the service is ready
        assert TOKEN.encode() not in body


@pytest.mark.parametrize("path", ["/v1/processes/supervisor/logs", "/v1/processes/server-1/logs?tail=5"])
async def test_logs_need_the_token_on_tcp_and_nothing_on_the_socket(tmp_path: Path, path: str) -> None:
    # A child's output can carry what requests held (prompts, headers): the logs are not public.
    async with serve(tmp_path, token=TOKEN) as served:
        assert (await served.tcp("GET", path))[0] == 401
        assert (await served.tcp("GET", path, {"Authorization": "Bearer wrong"}))[0] == 401
        assert (await served.tcp("GET", path, {"Authorization": f"Bearer {TOKEN}"}))[0] == 200
        assert (await served.unix("GET", path))[0] == 200
        assert refusal_count(served, "unauthorized") == 2
    async with serve(tmp_path / "off", token=None) as served:
        code, body = await served.tcp("GET", path)
        assert code == 403 and b"log on the TCP port is off" in body
        assert refusal_count(served, "log-off") == 1
        assert (await served.unix("GET", path))[0] == 200


# --- limits -------------------------------------------------------------------------------------


async def test_idle_connections_give_way_to_probes(tmp_path: Path) -> None:
    # 100 connections that never send a request, against a port that holds 40: the oldest are
    # closed as new ones come, and every probe is answered.
    async with serve(tmp_path, token=None, api_max_connections=40) as served:
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        idle = [await asyncio.open_connection(host, int(port)) for _ in range(100)]
        try:
            for _ in range(10):
                assert (await served.tcp("GET", "/livez"))[0] == 200

            async def closed(reader: asyncio.StreamReader) -> bool:
                try:
                    return await asyncio.wait_for(reader.read(1), 0.5) == b""
                except TimeoutError:
                    return False

            results = [await closed(reader) for reader, _ in idle[:60]]
            assert all(results), f"{results.count(False)} of the 60 oldest idle connections still open"
            assert served.api.connections.open() <= 40
            assert refusal_count(served, "connections") >= 60
        finally:
            for _, writer in idle:
                writer.close()


async def raw_status(served: Served, data: bytes) -> int:
    """The status code of the reply to `data`, sent as it is."""
    host, port = served.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return int(line.split(b" ", 2)[1])


async def test_request_size_limits(tmp_path: Path) -> None:
    async with serve(tmp_path, token=TOKEN) as served:
        limit = served.api.plan.coordinator.body_limit
        assert limit == 1 << 20  # the sample ms_coordinator.json: request_limit.body_limit 1 (MB)
        # Refused before any byte goes to the Coordinator (which does not run here: that would be 502).
        head = f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {limit + 1}\r\n\r\n".encode()
        assert await raw_status(served, head + b"x" * (limit + 1)) == 413
        chunked = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"%x\r\n%s\r\n" % (limit // 2, b"x" * (limit // 2))
        assert await raw_status(served, chunked + chunk * 3 + b"0\r\n\r\n") == 413
        # aiohttp's parser limits: 8190 bytes per request line or header line, 128 headers.
        long_line = b"GET /livez?" + b"a" * 8200 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        assert await raw_status(served, long_line) == 400
        long_header = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8200 + b"\r\n\r\n"
        assert await raw_status(served, long_header) == 400
        for count, refused in ((120, False), (130, True)):
            many = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
            code = await raw_status(served, b"GET /livez HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
            assert (code == 400) is refused, count
        assert await raw_status(served, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n") == 200


async def test_what_replies_reveal(tmp_path: Path) -> None:
    async with serve(tmp_path, token=TOKEN) as served:
        async with (
            aiohttp.ClientSession() as session,
            session.get(served.url + "/livez") as reply,
        ):
            assert "aiohttp/" in reply.headers["Server"]  # the software and its version
        # A request the parser refuses gets its offending bytes quoted back, to its sender only.
        host, port = served.url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /v1/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\x01\r\n\r\n".encode())
        reply_bytes = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert reply_bytes.split(b" ", 2)[1] == b"400" and TOKEN.encode() in reply_bytes
        assert not [line for line in served.log() if TOKEN in line]


async def test_log_reads_are_bounded(tmp_path: Path) -> None:
    async with serve(tmp_path, token=TOKEN) as served:
        sink = served.supervisor.sink
        for index in range(TAIL_LINES + 500):
            sink.line("server-1", "stdout", f"line {index}")
        sink.line("server-1", "stdout", "y" * (4 * MAX_LINE))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert (await served.tcp("GET", f"/v1/processes/server-1/logs?tail={MAX_TAIL + 1}", auth))[0] == 400
        code, body = await served.tcp("GET", f"/v1/processes/server-1/logs?tail={MAX_TAIL}", auth)
        assert code == 200
        lines = orjson.loads(body)["lines"]
        assert len(lines) == TAIL_LINES  # what is kept in memory per process
        assert len(lines[-1]) == MAX_LINE  # a longer line is cut


# --- processes other than the children -----------------------------------------------------------


@pytest.mark.parametrize("name", ["SUPERVISOR_PD_API_TOKEN", "supervisor_pd_api_token"])
def test_host_tools_and_the_guardian_never_get_the_token(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, TOKEN)
    monkeypatch.setenv("SOME_OTHER_VARIABLE", "kept")
    # npu-smi, hccn_tool and lspci run through run_tool; `env` prints what such a tool gets.
    shown = run_tool(["env"], timeout=5).stdout
    assert "SOME_OTHER_VARIABLE=kept" in shown.splitlines()
    assert TOKEN not in shown
    guardian = Guardian()
    guardian.start()
    try:
        assert guardian.pid is not None
        # Popen returns once the child execs; the kernel fills in the new environment just after.
        environ = wait_until(lambda: Path(f"/proc/{guardian.pid}/environ").read_bytes(), 5, 0.01, "its environ")
        assert b"SOME_OTHER_VARIABLE=kept" in environ.split(b"\0")
        assert TOKEN.encode() not in environ
    finally:
        guardian.close()  # the guardian exits when its pipe closes
        if guardian._process is not None:
            guardian._process.wait(5)


# --- the image and the manifests -----------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions by stage name, continuation lines joined."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    stages: dict[str, list[str]] = {"": []}
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if found:
            current = found.group(1)
            stages[current] = []
        stages[current].append(line)
    return stages


def test_the_image_runs_as_uid_1000_and_never_simulates_in_production() -> None:
    stages = dockerfile_stages()
    production = stages["production"]
    assert "ARG APP_UID=1000" in production and "ARG APP_GID=1000" in production
    users = [line for line in production if line.startswith("USER ")]
    assert users == ["USER ${APP_UID}:${APP_GID}"]
    # The state folder is the only one it writes to, its user's own, closed to others.
    run = next(line for line in production if line.startswith("RUN "))
    assert 'chown "$APP_UID:$APP_GID" /var/lib/supervisor-pd' in run
    assert "chmod 0750 /var/lib/supervisor-pd" in run
    # The code it runs is root's: copied without --chown, so uid 1000 cannot change it.
    copies = [line for name in ("production", "demo") for line in stages[name] if line.startswith("COPY ")]
    assert copies and not [line for line in copies if "--chown" in line]
    assert len([line for line in production if line.startswith("RUN ")]) == 1
    # The simulator runs only in the demo stage, which is built FROM production.
    for name, lines in stages.items():
        simulate = [line for line in lines if "SUPERVISOR_PD_SIMULATE" in line]
        assert not simulate or name == "demo", name
    assert stages["demo"][0].startswith("FROM production AS demo")


def yaml() -> Any:
    return pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate: pip install -e '.[test]'")


@pytest.mark.parametrize("platform", ["800i-a2", "800i-a3"])
def test_the_pod_asks_for_nothing_beyond_its_devices(platform: str) -> None:
    documents = list(yaml().safe_load_all((REPO / "configs" / "k8s" / f"{platform}.yaml").read_text()))
    deployment = next(doc for doc in documents if doc and doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field), field
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert not context.get("privileged")
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in context["capabilities"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The token comes from a Secret, never a literal in the manifest.
    token = next(item for item in container["env"] if item["name"] == "SUPERVISOR_PD_API_TOKEN")
    assert "value" not in token and token["valueFrom"]["secretKeyRef"]["name"] == "mindie-server-api-token"
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/dev/shm"]  # everything else it mounts is read-only
    # The shipped Service opens both ports on every node.
    service = next(doc for doc in documents if doc and doc["kind"] == "Service")
    assert service["spec"]["type"] == "NodePort"
    assert {port["port"] for port in service["spec"]["ports"]} == {1025, 8080}


def docker_run_commands() -> list[str]:
    """The `docker run` commands of docs/docker.md for real hosts (continuations joined)."""
    text = (REPO / "docs" / "docker.md").read_text()
    blocks = re.findall(r"```sh\n(.+?)\n```", text, re.DOTALL)
    return [block.replace("\\\n", " ") for block in blocks if "--name mindie-pd" in block and "docker run" in block]


def test_the_docker_commands_add_devices_not_privileges() -> None:
    commands = docker_run_commands()
    assert len(commands) == 2  # the A2 and the A3
    for command in commands:
        words = command.split()
        for option in ("--privileged", "--cap-add", "--security-opt", "--pid", "--ipc", "--userns"):
            assert option not in command, option
        assert not [w for w in words if w.startswith(("--user", "-u"))]
        for device in ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"):
            assert f"--device={device}" in words, device
        assert "davinci%d" in command or "--device=/dev/davinci0" in words
        assert "--group-add" in words
        mounts = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-v"]
        assert len(mounts) >= 7
        for mount in mounts:
            assert mount.endswith(":ro"), mount


def test_the_network_policy_example_is_valid(tmp_path: Path) -> None:
    text = (REPO / "docs" / "SECURITY.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.+?)```", text, re.DOTALL) if "kind: NetworkPolicy" in b]
    policy = yaml().safe_load(textwrap.dedent(block))
    deployment = next(
        doc
        for doc in yaml().safe_load_all((REPO / "configs" / "k8s" / "800i-a2.yaml").read_text())
        if doc and doc["kind"] == "Deployment"
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ports = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert ports == {8080, 1025}  # not the Controller's listener, nor any MindIE port
    tool = Path(sys.executable).parent / "kubernetes-validate"
    if not tool.is_file():
        pytest.skip(f"kubernetes-validate is not installed next to {sys.executable}: pip install -e '.[test]'")
    file = tmp_path / "policy.yaml"
    file.write_text(textwrap.dedent(block))
    done = subprocess.run(
        [str(tool), "--strict", "-k", "1.32", "--quiet", str(file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- Host (DNS rebinding) -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/status", "/v1/processes", "/v1/processes/server-1"])
async def test_status_answers_no_name_a_page_could_have_rebound(tmp_path: Path, path: str) -> None:
    async with serve(tmp_path, token=TOKEN, api_hosts="pd.example.svc, Other.Example") as served:
        port = served.url.rsplit(":", 1)[1]
        code, body = await served.tcp("GET", path, {"Host": f"evil.example:{port}"})
        assert code == 421
        assert b"SUPERVISOR_PD_API_HOSTS" in body and b"evil.example" in body
        assert (await served.tcp("GET", path, {"Host": "127.0.0.1.evil.example"}))[0] == 421
        assert refusal_count(served, "host") == 2
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "[::1]:80", "LOCALHOST.", "pod.localhost"):
            assert (await served.tcp("GET", path, {"Host": host}))[0] == 200, host
        for host in ("pd.example.svc", f"other.example:{port}"):  # listed in SUPERVISOR_PD_API_HOSTS
            assert (await served.tcp("GET", path, {"Host": host}))[0] == 200, host
        assert (await served.unix("GET", path, {"Host": "evil.example"}))[0] == 200  # the 0600 socket


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/metrics", "/metrics/pod", "/v1/models"])
async def test_probes_and_metrics_answer_any_host(tmp_path: Path, path: str) -> None:
    # Services, kubelets and scrapers reach the port by names the supervisor cannot know.
    async with serve(tmp_path, token=None) as served:
        assert (await served.tcp("GET", path, {"Host": "pd.default.svc.cluster.local"}))[0] in (200, 503)
