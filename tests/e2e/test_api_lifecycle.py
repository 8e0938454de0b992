"""The HTTP port while the stack comes up, loses a Server, restarts one and drains."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from typing import Any

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.simstack import http, wait_until
from tests.superstack import SupervisorRun, check_stop_order

SLOW_TOKENS = {"SUPERVISOR_PD_SIM_TPOT_MS": "20"}
FRESH_METRICS = {"SUPERVISOR_PD_METRICS_CACHE_SECONDS": "0", "SUPERVISOR_PD_METRICS_TIMEOUT": "0.3"}


def client(run: SupervisorRun) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{run.ports.api}/v1", api_key="unused", max_retries=0, timeout=60)


def samples(run: SupervisorRun, family: str) -> list[Any]:
    code, data = run.api("GET", "/metrics")
    assert code == 200
    for found in text_string_to_metric_families(data.decode()):
        if found.name == family:
            return list(found.samples)
    return []


def process(run: SupervisorRun, name: str) -> dict[str, Any]:
    code, data = run.api("GET", f"/v1/processes/{name}")
    assert code == 200
    return json.loads(data)  # type: ignore[no-any-return]


def test_probes_follow_the_bring_up(runs) -> None:  # type: ignore[no-untyped-def]
    # Models take a second to load: the port answers long before the service is ready.
    run = runs(env={"SUPERVISOR_PD_SIM_MODEL_LOAD_SECONDS": "1"})
    run.start()
    seen: list[tuple[int, int, int]] = []

    def ready() -> bool:
        codes = tuple(run.api("GET", path, timeout=2)[0] for path in ("/livez", "/startupz", "/readyz"))
        seen.append(codes)  # type: ignore[arg-type]
        return codes == (200, 200, 200)

    wait_until(ready, 60, interval=0.02, what="every probe passing")
    # Before the service was ready: alive, not started, not ready, and never an error.
    assert (200, 503, 503) in seen
    assert all(code in (200, 503) for codes in seen for code in codes if code)
    assert all(codes[0] == 200 for codes in seen if codes[0])


def test_startup_probe_names_what_it_waits_for(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={"SUPERVISOR_PD_SIM_MODEL_LOAD_SECONDS": "3", "SUPERVISOR_PD_PROGRESS_SECONDS": "0.5"})
    run.start()
    wait_until(lambda: run.api("GET", "/livez", timeout=2)[0] == 200, 30, what="the HTTP port")
    code, data = run.api("GET", "/startupz?verbose")
    assert code == 503
    assert "[-]service failed: not ready yet" in data.decode()
    assert data.decode().endswith("startupz check failed\n")
    probe = run.cli("probe", "startup")
    assert probe.returncode == 1
    assert "startupz check failed" in probe.stderr

    # While the models load, every Server is `running` yet `loading`, and everything says so.
    def loading() -> dict[str, Any] | None:
        status = run.status()
        servers = [p for p in status["processes"] if p["component"] == "server"]
        running = all(p["state"] == "running" and p["serving"]["state"] == "loading" for p in servers)
        return status if running else None

    status = wait_until(loading, 30, interval=0.05, what="every Server running and loading")
    assert status["phase"] == "starting" and "server-1 (loading " in status["phase_reason"]
    table = run.cli("status")
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[3:] if line.strip()}
    assert rows["server-1"][2] == "running" and rows["server-1"][4] == "loading", table.stdout
    code, data = run.api("GET", "/readyz?verbose")
    assert code == 503 and "server-1 (loading " in data.decode()
    run.wait_log(r"server-2: loading for \d+s \(running, not role-ready", timeout=20)

    run.wait_ready()
    assert run.cli("probe", "startup").returncode == 0
    served = {p["name"]: p["serving"]["state"] for p in run.status()["processes"]}
    assert served == {
        **{f"server-{i}": "role-ready" for i in (1, 2, 3, 4)},
        "coordinator": "ready",
        "controller": "ready",
    }


def test_a_requested_restart_is_graceful_and_probes_stay_green(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs()
    run.start()
    run.wait_ready()
    before = process(run, "server-3")
    result = run.cli("restart", "server-3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "server-3: restarting\n"
    wait_until(lambda: process(run, "server-3")["restarts"] == 1, 20, what="server-3 restarted")
    run.wait_ready(count=2)
    after = process(run, "server-3")
    assert after["pid"] != before["pid"]
    assert after["state"] == "running" and after["ready"]
    # SIGTERM first: the simulated Server's own stop path ends in abort().
    assert "server-3: running -> stopping: restart requested through the API" in run.log()
    assert after["last_exit"] == "stopped for a restart requested through the API (killed by SIGABRT)"
    assert after["restart_causes"] == {"operator": 1}
    assert run.api("GET", "/livez")[0] == 200
    assert run.api("GET", "/readyz")[0] == 200


def test_metrics_keep_their_labels_when_a_child_stops_answering(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env=FRESH_METRICS)
    run.start()
    run.wait_ready()
    pid = run.pid_of("server-4")
    os.killpg(pid, signal.SIGSTOP)  # it hangs until liveness has it killed

    def server_4_down() -> dict[str, Any] | None:
        up = {s.labels["process"]: s for s in samples(run, "supervisor_pd_child_scrape_up")}
        return up if up["server-4"].value == 0 else None

    up = wait_until(server_4_down, 20, what="supervisor_pd_child_scrape_up 0 for server-4")
    assert up["server-4"].labels == {"component": "server", "process": "server-4", "role": "decode"}
    assert [up[f"server-{i}"].value for i in (1, 2, 3)] == [1, 1, 1]
    # (The Coordinator's own /metrics aggregates the Servers' and may wait on server-4 too.)
    run.wait_log("server-4: unhealthy -> backoff")
    run.wait_ready(count=2, timeout=60)
    wait_until(
        lambda: {s.labels["process"]: s.value for s in samples(run, "supervisor_pd_child_scrape_up")}["server-4"] == 1,
        20,
    )


def test_a_client_that_goes_away_cancels_its_upstream_request(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env={**SLOW_TOKENS, **FRESH_METRICS})
    run.start()
    run.wait_ready()
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000, "stream": True}).encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", run.ports.api), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            received = b""
            while b"data: " not in received:
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
            assert samples(run, "supervisor_pd_streams_in_flight")[0].value >= 1
    # A 1000-token stream at 20 ms a token runs 20 s; gone within a few means it was cancelled.
    wait_until(lambda: samples(run, "supervisor_pd_requests_in_flight")[0].value == 0, 8, what="proxy idle")

    def coordinator_idle() -> bool:
        code, data = http("GET", f"http://127.0.0.1:{run.ports.manage}/v1/coordinator_info")
        return code == 200 and json.loads(data)["request_num"] == 0

    # The Coordinator saw its requests end: what it then tells the Servers is its own business.
    wait_until(coordinator_idle, 8, what="the Coordinator's request_num 0")


def test_drain_refuses_new_requests_and_lets_streams_finish(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env=SLOW_TOKENS)
    run.start()
    run.wait_ready()
    api = client(run)
    outcomes: list[tuple[int, str | None]] = []

    def stream() -> None:
        chunks = list(
            api.chat.completions.create(
                model="llama3-8b", messages=[{"role": "user", "content": "hi"}], max_tokens=60, stream=True
            )
        )
        outcomes.append((len(chunks), chunks[-1].choices[0].finish_reason))

    threads = [threading.Thread(target=stream) for _ in range(8)]
    for thread in threads:
        thread.start()
    wait_until(lambda: samples(run, "supervisor_pd_streams_in_flight")[0].value == 8, 20, what="8 streams")
    drain = run.cli("drain")
    assert drain.returncode == 0, drain.stderr
    assert drain.stdout == "supervisor: draining\n"
    wait_until(lambda: run.api("GET", "/readyz")[0] == 503, 10, what="readyz 503")
    with pytest.raises(openai.APIStatusError) as refused:
        api.chat.completions.create(model="llama3-8b", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert refused.value.status_code == 503
    assert refused.value.response.headers["Retry-After"]
    assert refused.value.response.headers["Connection"] == "close"
    # Kubernetes sends SIGTERM after the preStop hook: the drain under way is left alone.
    assert run.process is not None
    run.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(60)
    assert outcomes == [(60, "length")] * 8
    assert run.process.wait(60) == 0
    lines = run.supervisor_lines()
    assert "SIGTERM received: already draining" in lines
    assert any(
        line.startswith("service: ready -> draining: drain requested through the control socket") for line in lines
    )
    check_stop_order(lines)
    assert not (run.state / "api.sock").exists()


def test_sigterm_waits_for_streams_through_the_port(runs) -> None:  # type: ignore[no-untyped-def]
    run = runs(env=SLOW_TOKENS)
    run.start()
    run.wait_ready()
    api = client(run)
    outcomes: list[int] = []

    def stream() -> None:
        outcomes.append(len(list(api.completions.create(model="llama3-8b", prompt="once", max_tokens=40, stream=True))))

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: samples(run, "supervisor_pd_streams_in_flight")[0].value == 4, 20, what="4 streams")
    assert run.stop(60) == 0
    for thread in threads:
        thread.join(30)
    assert outcomes == [40] * 4
