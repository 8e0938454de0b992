"""supervisor_pd's HTTP port and operator CLI against a running simulated stack.

One stack serves the read-only tests of this module; tests that restart or stop things get
their own (tests/e2e/test_api_lifecycle.py).
"""

from __future__ import annotations

import itertools
import json
import queue
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.simstack import http, wait_until
from tests.superstack import SupervisorRun, running

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
JSON = {"Content-Type": "application/json"}


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """A child's output lines as they come, read by a thread (a test never blocks on a pipe)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorRun]:
    with running(tmp_path_factory.mktemp("api"), env={"SUPERVISOR_PD_API_TOKEN": TOKEN}) as stack:
        yield stack


@pytest.fixture
def client(run: SupervisorRun) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{run.ports.api}/v1", api_key="unused", max_retries=0, timeout=20)


def model_name(run: SupervisorRun) -> str:
    return json.loads((run.conf / "config.json").read_text())["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0][
        "modelName"
    ]


def raw(run: SupervisorRun, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are to the HTTP port and return the whole reply."""
    with socket.create_connection(("127.0.0.1", run.ports.api), timeout=timeout) as sock:
        sock.sendall(data)
        reply = bytearray()
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except TimeoutError:
            pass
    return bytes(reply)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


# --- the inference API ---------------------------------------------------------------------------


def test_openai_client_non_streaming(run: SupervisorRun, client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=model_name(run), messages=[{"role": "user", "content": "hello"}], max_tokens=6
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens == 6
    completion = client.completions.create(model=model_name(run), prompt="once upon a time", max_tokens=3)
    assert completion.choices[0].text


def test_openai_client_streaming_relays_every_chunk(run: SupervisorRun, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=model_name(run), messages=[{"role": "user", "content": "hello"}], max_tokens=12, stream=True
    )
    chunks = list(stream)
    assert len(chunks) == 12
    assert chunks[-1].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks).strip()


def test_streams_are_not_buffered_and_carry_the_request_id(run: SupervisorRun) -> None:
    body = json.dumps({**CHAT, "stream": True, "max_tokens": 3}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"X-Request-Id: req-1234\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    reply = raw(run, request)
    head, _, payload = reply.partition(b"\r\n\r\n")
    headers = head.decode().lower()
    assert status_of(reply) == 200
    assert "x-accel-buffering: no" in headers
    assert "x-request-id: req-1234" in headers
    assert "text/event-stream" in headers
    assert payload.count(b"data: ") == 4  # three tokens and [DONE]


def test_a_request_id_is_made_when_the_client_sends_none(run: SupervisorRun) -> None:
    reply = raw(
        run,
        b'POST /v1/tokenizer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 17\r\n\r\n{"inputs":"a b"}\n',
    )
    assert b"x-request-id: " in reply.lower()


def test_every_inference_path_reaches_the_coordinator(run: SupervisorRun) -> None:
    bodies = {
        "/v1/completions": {"prompt": "hi", "max_tokens": 2},
        "/infer": {"inputs": "hi", "parameters": {"max_new_tokens": 2}},
        "/generate": {"inputs": "hi", "parameters": {"max_new_tokens": 2}},
        "/generate_stream": {"inputs": "hi", "parameters": {"max_new_tokens": 2}},
        "/v2/models/llama/generate": {"text_input": "hi", "parameters": {"max_new_tokens": 2}},
        "/v2/models/llama/infer": {
            "id": "1",
            "inputs": [{"name": "input0", "shape": [1, 2], "datatype": "UINT32", "data": [1, 2]}],
            "parameters": {"max_new_tokens": 2},
        },
        "/v1/tokenizer": {"inputs": "a b c"},
    }
    for path, body in bodies.items():
        code, data = run.api("POST", path, body, headers=JSON)
        assert code == 200, (path, data[:300])


def test_v1_models_answers_from_the_server_config(run: SupervisorRun, client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [model_name(run)]
    assert client.models.retrieve(model_name(run)).id == model_name(run)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("not-a-model")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"best_of": 3}, "best_of"),
        ({"use_beam_search": True}, "use_beam_search"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"stop": ["\n"]}, "stop"),
    ],
)
def test_parameters_pd_cannot_serve_get_an_openai_400(
    run: SupervisorRun, client: openai.OpenAI, extra: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(
            model=model_name(run), messages=[{"role": "user", "content": "hi"}], max_tokens=2, extra_body=extra
        )
    assert error.value.body["param"] == param  # type: ignore[index]
    assert "disaggregation" in error.value.message


def test_mindie_paths_get_the_same_check_in_their_own_error_format(run: SupervisorRun) -> None:
    code, data = run.api("POST", "/generate", {"inputs": "hi", "parameters": {"best_of": 2}}, headers=JSON)
    assert code == 400
    assert json.loads(data)["error_type"] == "Input Validation Error"
    code, data = run.api("POST", "/generate", {"inputs": "hi", "parameters": {"n": 1}}, headers=JSON)
    assert code == 200


def test_bad_bodies_get_4xx_json(run: SupervisorRun) -> None:
    code, data = run.api("POST", "/v1/chat/completions", b"{not json", headers=JSON)
    assert code == 400
    assert json.loads(data)["error"]["type"] == "invalid_request_error"
    limit = json.loads((run.conf / "ms_coordinator.json").read_text())["request_limit"]["body_limit"]
    big = b'{"prompt":"' + b"x" * (limit * 1024 * 1024 + 10) + b'"}'
    code, data = run.api("POST", "/v1/completions", big, headers=JSON)
    assert code == 413
    assert "error" in json.loads(data)
    code, _ = run.api("GET", "/v1/chat/completions")
    assert code == 405


# --- probes ----------------------------------------------------------------------------------------


def test_every_child_runs_with_jemalloc_preloaded_as_mindies_boot_does(run: SupervisorRun) -> None:
    for name in ("server-1", "coordinator", "controller"):
        environ = Path(f"/proc/{run.pid_of(name)}/environ").read_bytes().split(b"\0")
        preload = [entry for entry in environ if entry.startswith(b"LD_PRELOAD=")]
        assert len(preload) == 1, name
        library = Path(preload[0].split(b"=", 1)[1].decode().split(":")[0])
        assert library.name == "libjemalloc.so.2" and library.is_file(), (name, library)


def test_probes_when_ready(run: SupervisorRun) -> None:
    for path in ("/livez", "/readyz", "/startupz"):
        code, data = run.api("GET", path)
        assert (code, data) == (200, b"ok\n")
    code, data = run.api("GET", "/readyz?verbose")
    lines = data.decode().splitlines()
    assert code == 200
    assert lines[-1] == "readyz check passed"
    assert {line.split()[0] for line in lines[:-1]} == {
        "[+]coordinator",
        "[+]prefill",
        "[+]decode",
        "[+]servers",
        "[+]npu",
        "[+]service",
        "[+]not-draining",
    }
    assert run.api("GET", "/readyz/prefill")[0] == 200
    code, data = run.api("GET", "/readyz/nothing")
    assert code == 404
    assert "nothing" in json.loads(data)["error"]


def test_probe_command_exit_codes(run: SupervisorRun) -> None:
    for kind in ("startup", "readiness", "liveness"):
        result = run.cli("probe", kind)
        assert result.returncode == 0, result.stderr
    verbose = run.cli("probe", "readiness", "--verbose")
    assert "[+]decode" in verbose.stdout
    over_tcp = run.cli("probe", "liveness", "--url", f"http://127.0.0.1:{run.ports.api}")
    assert over_tcp.returncode == 0
    elsewhere = run.cli("probe", "readiness", "--url", "http://127.0.0.1:1", "--timeout", "0.5")
    assert elsewhere.returncode == 1
    assert "cannot reach the supervisor" in elsewhere.stderr


def test_probe_shim_accepts_the_reference_arguments(run: SupervisorRun, tmp_path: Path) -> None:
    shim = Path(__file__).resolve().parents[2] / "boot" / "probe.sh"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # The shim runs whatever `supervisor-pd` is first on PATH: make it this checkout's.
    (bindir / "supervisor-pd").write_text(f'#!/bin/sh\nexec {sys.executable} -m supervisor_pd "$@"\n')
    (bindir / "supervisor-pd").chmod(0o755)
    env = {**run.env, "PATH": f"{bindir}:{run.env['PATH']}"}
    for argv in (
        ["readiness", "single_container"],
        ["readiness", "1", "0", "single_container"],
        ["liveness"],
        ["startup", "3", "1"],
    ):
        result = subprocess.run([str(shim), *argv], env=env, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, (argv, result.stderr)
    bad = subprocess.run([str(shim), "sideways"], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode != 0
    assert "startup|readiness|liveness" in bad.stderr


# --- status and logs -------------------------------------------------------------------------------


def test_status_lists_every_process_and_no_secret(run: SupervisorRun) -> None:
    code, data = run.api("GET", "/v1/status")
    assert code == 200
    assert TOKEN.encode() not in data
    status = json.loads(data)
    assert status["phase"] == "ready"
    names = [p["name"] for p in status["processes"]]
    assert names == ["server-1", "server-2", "server-3", "server-4", "coordinator", "controller"]
    for process in status["processes"]:
        assert process["state"] == "running"
        assert process["ready"] is (process["component"] != "controller")  # it has no readiness of its own
        assert isinstance(process["pid"], int)
        assert process["health"]["ok"] is True
        assert process["ports"]
    roles = {p["name"]: p["role"] for p in status["processes"]}
    assert sorted(roles[f"server-{i}"] for i in range(1, 5)) == ["decode", "decode", "prefill", "prefill"]
    assert status["plan"]["model"] == model_name(run)
    code, one = run.api("GET", "/v1/processes/server-2")
    assert code == 200
    assert json.loads(one)["devices"] == status["processes"][1]["devices"]


def test_status_command_prints_a_table(run: SupervisorRun) -> None:
    result = run.cli("status")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("phase: ready")
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("server-", "coord", "contr"))]
    assert [row[0] for row in rows] == ["server-1", "server-2", "server-3", "server-4", "coordinator", "controller"]
    assert all(row[2] == "running" for row in rows)
    as_json = run.cli("status", "--json")
    assert json.loads(as_json.stdout)["phase"] == "ready"


def test_a_new_user_reads_a_summary_first_and_three_commands_that_work(run: SupervisorRun) -> None:
    """The first lines summarise the run before the full plan; once ready, the commands to try
    name this run's port, come once, and do what they say."""
    run.wait_log(r"supervisor \| try it:")
    own = run.supervisor_lines()
    assert own[0].startswith("supervisor-pd run: ")
    assert f"127.0.0.1:{run.ports.api} supervisor-pd" in own[2]
    assert next(i for i, line in enumerate(own) if line.startswith("supervisor-pd plan: ")) > 5  # the plan after it
    assert own.count("try it:") == 1
    start = own.index("try it:")
    assert any("-> ready" in line for line in own[:start])  # after the service is ready
    chat, status, metrics = (shlex.split(line) for line in own[start + 1 : start + 4])
    assert chat[2] == f"http://127.0.0.1:{run.ports.api}/v1/chat/completions"
    reply = subprocess.run([*chat, "--max-time", "20"], capture_output=True, text=True, timeout=30, check=False)
    assert reply.returncode == 0 and reply.stdout.startswith("data: "), reply
    assert status[:2] == ["supervisor-pd", "status"]
    table = run.cli(*status[1:])
    assert table.returncode == 0 and "server-1" in table.stdout, table
    scraped = subprocess.run([*metrics, "-sf"], capture_output=True, text=True, timeout=30, check=False)
    assert scraped.returncode == 0 and "supervisor_pd_process_state" in scraped.stdout


def test_logs_of_a_process(run: SupervisorRun) -> None:
    # A child's output can hold what its requests carried: on TCP the logs need the token.
    assert run.api("GET", "/v1/processes/server-1/logs?tail=2")[0] == 401
    assert run.api("GET", "/v1/processes/server-1/logs?tail=2", headers={"Authorization": "Bearer no"})[0] == 401
    code, data = run.api("GET", "/v1/processes/server-1/logs?tail=2", headers=AUTH)
    assert code == 200
    body = json.loads(data)
    assert len(body["lines"]) == 2
    result = run.cli("logs", "supervisor", "-n", "5")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 5
    unknown = run.cli("logs", "server-99")
    assert unknown.returncode == 2
    assert "no process named 'server-99'" in unknown.stderr


def test_logs_follow_prints_new_lines(run: SupervisorRun) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "supervisor_pd", "logs", "supervisor", "-n", "1", "-f"],
        env=run.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        lines = lines_of(follower.stdout)
        assert lines.get(timeout=20).strip()  # the last line so far
        # A status request under a name no page of this pod has is refused and logged: a new line.
        # (Refusals of one kind are logged once per 10 s: this module makes no other of this kind.)
        assert run.api("GET", "/v1/status", headers={"Host": "nope.example"})[0] == 421
        line = lines.get(timeout=20)
        assert "refused" in line and "/v1/status" in line and "nope.example" in line
    finally:
        follower.terminate()
        follower.wait(10)


# --- metrics ---------------------------------------------------------------------------------------


def metrics(run: SupervisorRun) -> dict[str, list]:  # type: ignore[type-arg]
    code, data = run.api("GET", "/metrics")
    assert code == 200
    families = {}
    for family in text_string_to_metric_families(data.decode()):
        families[family.name] = family.samples
    return families


def test_metrics_merge_ours_and_every_child(run: SupervisorRun, client: openai.OpenAI) -> None:
    list(
        client.chat.completions.create(
            model=model_name(run), messages=[{"role": "user", "content": "x"}], max_tokens=3, stream=True
        )
    )
    families = metrics(run)
    for name in (
        "supervisor_pd_process_state",
        "supervisor_pd_process_restarts",
        "supervisor_pd_health_check_seconds",
        "supervisor_pd_requests",
        "supervisor_pd_time_to_first_token_seconds",
        "supervisor_pd_time_per_output_token_seconds",
        "supervisor_pd_requests_in_flight",
        "supervisor_pd_streams_in_flight",
        "supervisor_pd_draining",
        "supervisor_pd_service_requests_running",
        "supervisor_pd_service_requests_waiting",
        "num_requests_running",
        "request_success",
        "supervisor_pd_child_scrape_up",
    ):
        assert name in families, name
    assert "up" not in families
    up = {(s.labels["component"], s.labels["process"]): s.value for s in families["supervisor_pd_child_scrape_up"]}
    assert up == {**{("server", f"server-{i}"): 1.0 for i in range(1, 5)}, ("coordinator", "coordinator"): 1.0}
    for sample in families["num_requests_running"]:
        assert set(sample.labels) >= {"component", "process", "role"}
    roles = {s.labels["process"]: s.labels["role"] for s in families["num_requests_running"] if s.labels["role"]}
    assert sorted(roles.values()) == ["decode", "decode", "prefill", "prefill"]
    ttft = [s for s in families["supervisor_pd_time_to_first_token_seconds"] if s.name.endswith("_count")]
    assert sum(s.value for s in ttft) >= 1
    ok = [s for s in families["supervisor_pd_requests"] if s.labels.get("code") == "200"]
    assert sum(s.value for s in ok) >= 1


POD_GAUGES = ("supervisor_pd_pod_requests_waiting", "supervisor_pd_pod_requests_running")
POD_KV = "supervisor_pd_pod_kv_cache_usage_ratio"


def pod_scrape(run: SupervisorRun) -> tuple[tuple[float, float, float], bytes]:
    """The pod's gauges (waiting, running, KV cache) and the children's part of the same scrape,
    which is cached for 2 s here: the same bytes twice is the cache answering."""
    code, data = run.api("GET", "/metrics")
    assert code == 200
    text = data.decode()
    values = {}
    for name in (*POD_GAUGES, POD_KV):
        (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
        values[name] = float(line.split()[1])
    return (values[POD_GAUGES[0]], values[POD_GAUGES[1]], values[POD_KV]), data[data.index(b"# HELP num_requests") :]


def test_the_pod_gauges_follow_load_and_are_read_fresh_under_the_childrens_cache(run: SupervisorRun) -> None:
    streams = 6
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1000, "stream": True}
    url = f"http://127.0.0.1:{run.ports.api}/v1/chat/completions"
    idle = wait_until(lambda: (s := pod_scrape(run))[0] == (0, 0, 0) and s, 10, what="an idle pod")
    seen = [idle]
    replies: list[int] = []
    threads = [
        threading.Thread(target=lambda: replies.append(http("POST", url, body, timeout=60, headers=JSON)[0]))
        for _ in range(streams)
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        seen.append(pod_scrape(run))
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    seen.append(wait_until(lambda: (s := pod_scrape(run))[0] == (0, 0, 0) and s, 10, what="the pod idle again"))
    assert replies == [200] * streams
    # Every stream runs on a decode Server once its first token is out: six at once, using cache.
    assert any(running == streams and kv > 0 for (_, running, kv), _ in seen)
    assert all(kv < 1 for (_, _, kv), _ in seen)
    # The gauges moved between two scrapes that got the same cached children's part.
    assert any(a[1] == b[1] and a[0] != b[0] for a, b in itertools.pairwise(seen))


def pod_route(run: SupervisorRun) -> dict[str, float]:
    code, data = run.api("GET", "/metrics/pod")
    assert code == 200
    return {family.name: family.samples[0].value for family in text_string_to_metric_families(data.decode())}


def test_the_pod_route_serves_the_gauges_alone_and_they_follow_load(run: SupervisorRun) -> None:
    # What an endpoint picker polling every 50 ms reads (docs/scale-out.md): 4 series, not every child's.
    idle = wait_until(lambda: (v := pod_route(run))[POD_GAUGES[1]] == 0 and v, 10, what="an idle pod")
    assert idle == {POD_GAUGES[0]: 0, POD_GAUGES[1]: 0, POD_KV: 0, "supervisor_pd_service_ready": 1}
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1000, "stream": True}
    url = f"http://127.0.0.1:{run.ports.api}/v1/chat/completions"
    replies: list[int] = []
    thread = threading.Thread(target=lambda: replies.append(http("POST", url, body, timeout=60, headers=JSON)[0]))
    thread.start()
    try:
        # Running on the prefill Server first (no decode cache yet), then decoding: cache in use.
        decoding = wait_until(
            lambda: (v := pod_route(run))[POD_GAUGES[1]] == 1 and v[POD_KV] > 0 and v, 20, what="one request decoding"
        )
        assert decoding[POD_GAUGES[0]] == 0 and decoding["supervisor_pd_service_ready"] == 1
    finally:
        thread.join()
    assert replies == [200]


# --- control and auth ------------------------------------------------------------------------------


def test_control_on_tcp_needs_the_token(run: SupervisorRun) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": "Basic " + TOKEN},
    ):
        code, data = run.api("POST", "/v1/drain", headers=headers)
        assert code == 401, headers
        assert json.loads(data)["error"] == "a valid bearer token is required"
        code, _ = run.api("POST", "/v1/processes/server-1/restart", headers=headers)
        assert code == 401
    # With the token the request is judged on its merits.
    code, data = run.api("POST", "/v1/processes/server-99/restart", headers={"Authorization": f"Bearer {TOKEN}"})
    assert code == 404
    assert TOKEN not in run.log()


def test_control_socket_is_private_and_needs_no_token(run: SupervisorRun) -> None:
    sock = run.state / "api.sock"
    assert sock.stat().st_mode & 0o777 == 0o600
    result = run.cli("restart", "server-99")
    assert result.returncode == 2
    assert "no process named 'server-99'" in result.stderr


# --- what clients get wrong ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /v1/processes/..%2F..%2Fetc%2Fpasswd/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /v1/processes/%00/logs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /v1/processes/server-1/logs?tail=-5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /v1/processes/server-1/logs?tail=abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /v1/processes/server-1/logs?tail=99999999999999999999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\nConnection: close\r\n\r\n",
        b"BREW /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"not http at all\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n"
        b"Connection: close\r\n\r\nhello",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"zz\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\n[1]",
        b"POST /v1/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xff\r\nConnection: close\r\n\r\n",
    ],
)
def test_malformed_requests_get_4xx_never_500(run: SupervisorRun, request_bytes: bytes) -> None:
    reply = raw(run, request_bytes)
    assert reply.startswith(b"HTTP/1.") and status_of(reply) // 100 == 4, reply[:200]
    assert run.api("GET", "/livez")[0] == 200


def test_a_slow_client_does_not_block_others(run: SupervisorRun) -> None:
    with socket.create_connection(("127.0.0.1", run.ports.api)) as slow:
        slow.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")  # and never finishes its headers
        began = time.monotonic()
        assert run.api("GET", "/readyz")[0] == 200
        assert time.monotonic() - began < 5
    wait_until(lambda: run.api("GET", "/livez")[0] == 200, 5)
