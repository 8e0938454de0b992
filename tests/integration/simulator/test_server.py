"""Conformance of the simulated Server with reference §1.1, §1.5, §2 and §2.8."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

from tests.simstack import Stack, wait_until


def role_body(stack: Stack, index: int, peers: list[int]) -> dict[str, Any]:
    def node(position: int) -> dict[str, Any]:
        server = stack.plan["servers"][position - 1]
        devices = [
            {
                "device_id": str(d["phy_id"]),
                "device_ip": d["device_ip"],
                "device_logical_id": str(d["logical_id"]),
                "rank_id": str(d["rank_id"]),
            }
            for d in server["devices"]
        ]
        return {"server_ip": "127.0.0.1", "id": position - 1, "host_ip": "127.0.0.1", "device": devices}

    local = node(index) | {"instance_idx_in_pod": index - 1, "num_instances_per_pod": 16, "is_single_container": True}
    return {"local": local, "peers": [node(p) for p in peers]}


@pytest.fixture
def stack(make_stack) -> Stack:  # type: ignore[no-untyped-def]
    return make_stack()


def started(stack: Stack, index: int = 1, **env: str) -> subprocess.Popen[bytes]:
    process = stack.start_server(index, env=env or None)
    stack.wait_server_up(index)
    return process


def test_a_server_started_as_a_session_leader_exits_at_once(stack: Stack) -> None:
    # llm_daemon.cpp main: setpgrp() first; it fails with EPERM in a session leader, and then
    # main returns -1. A launcher that uses setsid stops every real Server.
    argv = ["mindieservice_daemon", "--config-file", str(stack.out / "config1.json")]
    result = subprocess.run(argv, env=stack.env, capture_output=True, text=True, timeout=30, start_new_session=True)
    assert result.returncode == 255
    assert "Failed to set process group. errno is 1" in result.stdout


def test_a_port_kept_by_a_connection_of_the_last_run_stops_the_start(stack: Stack) -> None:
    # IsPortUsed binds 0.0.0.0 without SO_REUSEADDR: a connection the last run closed first keeps
    # the port (FIN-WAIT-2, then TIME_WAIT), and the Server kills its group at once.
    process = started(stack)
    management = stack.server_ports(1)["management"]
    client = socket.create_connection(("127.0.0.1", management))
    try:
        client.sendall(b"GET /v1/config HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(1024).startswith(b"HTTP/1.1 200")  # a kept-alive connection
        stack.kill("server-1")
        assert process.returncode == -signal.SIGKILL
        again = stack.start_server(1, env={"SUPERVISOR_PD_SIM_PORT_CHECK": "mindie"})
        assert again.wait(20) == -signal.SIGKILL
        assert "is already in use" in stack.log("server-1")
    finally:
        client.close()


def test_management_answers_503_without_body_until_the_daemon_has_started(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_STARTUP_SECONDS": "1.5"})
    stack.start_server(1)
    code, body = wait_until(lambda: (r := stack.mgmt(1, "/v1/status"))[0] and r, what="a first answer")
    assert (code, body) == (503, b"")
    assert "Daemon start success!" not in stack.log("server-1")
    wait_until(lambda: stack.mgmt(1, "/v1/status")[0] == 200, what="the daemon to start")
    assert "Daemon start success!" in stack.log("server-1")


def test_v1_config_has_no_health_or_stop_gate(make_stack) -> None:  # type: ignore[no-untyped-def]
    # http_handler.cpp: /v1/config answers from the loaded config at once; /v1/status checks
    # the stop flag and the daemon's health first (503 with no body before the daemon starts).
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_STARTUP_SECONDS": "3"})
    stack.start_server(1)
    code, _ = wait_until(lambda: (r := stack.mgmt(1, "/v1/config"))[0] and r, what="a first answer")
    assert code == 200
    assert stack.mgmt(1, "/v1/status") == (503, b"")


def test_config_and_status_before_a_role(stack: Stack) -> None:
    started(stack)
    code, body = stack.mgmt(1, "/v1/config")
    assert code == 200
    assert json.loads(body) == {
        "modelName": "llama3-8b",
        "maxSeqLen": 2560,
        "npuMemSize": -1,
        "cpuMemSize": 0,
        "worldSize": 2,
        "maxOutputLen": 512,
        "cacheBlockSize": 128,
    }
    status = stack.server_status(1)
    assert status["service"] == {"roleStatus": "RoleUnknown", "currentRole": "none"}
    assert set(status["resource"]) == {
        "availSlotsNum",
        "availBlockNum",
        "waitingRequestNum",
        "runningRequestNum",
        "swappedRequestNum",
        "freeNpuBlockNums",
        "freeCpuBlockNums",
        "totalNpuBlockNums",
        "totalCpuBlockNums",
    }
    assert status["linkStatus"] == {"peers": []}
    # Before the first role request no engine runs: HandleGetLivenessAndReadiness's first answer.
    not_started = b'{"message":"Failed to get node status: Model instance has been finalized or not initialized."}'
    assert stack.mgmt(1, "/v2/health/ready") == (500, not_started)
    assert stack.mgmt(1, "/v2/health/live") == (500, not_started)
    assert stack.mgmt(1, "/v1/health")[0] == 404  # the Server has no /v1/health


def holds(check: Any, seconds: float) -> None:
    """`check` stays true for `seconds` (a promise that something does not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check()
        time.sleep(0.05)


QUERY = 10 * 0.05  # dmi_role.cpp QUERY_INTERVAL_SECONDS, scaled as the tests scale MindIE's timers


def test_role_assignment_loads_the_model_and_links(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_MODEL_LOAD_SECONDS": "0.5"})
    started(stack)
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3])) == (200, b'{"result":"ok"}')
    status = stack.server_status(1)
    assert status["service"] == {"roleStatus": "RoleSwitching", "currentRole": "prefill"}
    assert status["linkStatus"]["peers"] == []  # a link still being made is not listed
    assert stack.mgmt(1, "/v2/health/ready")[0] == 500  # loading
    wait_until(lambda: stack.server_status(1)["service"]["roleStatus"] == "RoleReady", what="RoleReady")
    status = stack.server_status(1)
    assert status["linkStatus"]["peers"] == [{"target": 2, "link": "ok"}]
    assert status["resource"]["availSlotsNum"] == 200
    assert status["resource"]["totalNpuBlockNums"] > 0
    # WaitForLlmEngineReady: readiness follows RoleReady after one more 5 s check (scaled).
    wait_until(lambda: stack.mgmt(1, "/v2/health/ready") == (200, b""), what="ready")
    assert stack.mgmt(1, "/v2/health/live") == (200, b"")


def test_every_role_request_switches_and_only_a_new_link_makes_the_role_ready_again(stack: Stack) -> None:
    # ProcessPDRoleSwitch sets RoleSwitching on every accepted request; CheckAllLinksCompleted,
    # from the 10 s link query, is the only way back to RoleReady, and the query is skipped while
    # nothing is linking. Readiness, once NORMAL, no longer follows the role status.
    started(stack)
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3]))[0] == 200
    wait_until(lambda: stack.mgmt(1, "/v2/health/ready") == (200, b""), what="ready")
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3, 4]))[0] == 200
    assert stack.server_status(1)["service"]["roleStatus"] == "RoleSwitching"
    assert stack.mgmt(1, "/v2/health/ready") == (200, b"")
    wait_until(lambda: stack.server_status(1)["service"]["roleStatus"] == "RoleReady", what="RoleReady again")
    assert [p["target"] for p in stack.server_status(1)["linkStatus"]["peers"]] == [2, 3]
    # The same peers again: nothing to link, so RoleSwitching stays, and readiness with it.
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3, 4]))[0] == 200
    holds(lambda: stack.server_status(1)["service"]["roleStatus"] == "RoleSwitching", 3 * QUERY)
    assert stack.mgmt(1, "/v2/health/ready") == (200, b"")
    # Dropping a peer makes no link either.
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3]))[0] == 200
    assert [p["target"] for p in stack.server_status(1)["linkStatus"]["peers"]] == [2]
    holds(lambda: stack.server_status(1)["service"]["roleStatus"] == "RoleSwitching", 3 * QUERY)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda b: b.pop("local"), 422),
        (lambda b: b["local"].update(server_ip="localhost"), 422),
        (lambda b: b["local"]["device"][0].update(device_id=3), 422),
        (lambda b: b["local"]["device"][0].update(device_ip="x"), 422),
        (lambda b: b["local"].pop("host_ip"), 422),
        (lambda b: b["local"].update(p_percentage=101), 422),
        (lambda b: b["peers"][0].update(p_percentage=-1), 422),
        (lambda b: b.pop("peers"), 422),
        (lambda b: b.update(peers=[]), 503),
    ],
)
def test_role_requests_are_validated(stack: Stack, change, status: int) -> None:  # type: ignore[no-untyped-def]
    started(stack)
    body = role_body(stack, 1, [3])
    change(body)
    code, reply = stack.mgmt(1, "/v1/role/prefill", "POST", body)
    assert code == status
    assert set(json.loads(reply)) == {"error", "error_type"}
    assert stack.server_status(1)["service"]["currentRole"] == "none"


def test_a_device_held_by_another_server_fails_like_an_npu_init_failure(stack: Stack) -> None:
    started(stack, 1)
    second = started(stack, 2)
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3]))[0] == 200
    wait_until(lambda: stack.server_status(1)["service"]["roleStatus"] == "RoleReady", what="server-1 ready")
    assert stack.mgmt(2, "/v1/role/prefill", "POST", role_body(stack, 1, [3]))[0] == 200  # server-1's devices
    assert second.wait(10) == -signal.SIGKILL
    assert "NPU initialisation failed" in stack.log("server-2")
    assert "used by another process" in stack.log("server-2")


def test_a_logical_id_the_container_does_not_have_fails(stack: Stack) -> None:
    process = started(stack)
    body = role_body(stack, 1, [3])
    body["local"]["device"][0]["device_logical_id"] = "42"
    assert stack.mgmt(1, "/v1/role/prefill", "POST", body)[0] == 200
    assert process.wait(10) == -signal.SIGKILL
    assert "device logical id 42 is not one of the 8 this process sees" in stack.log("server-1")


def test_the_model_loads_on_the_logical_ids_not_device_id(stack: Stack) -> None:
    # MindIE-LLM dmi_role.cpp: localDeviceLogicalIds. Server-2 names other physical ids but the
    # logical ids of server-1: it meets server-1's devices, whatever device_id says.
    started(stack, 1)
    second = started(stack, 2)
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3]))[0] == 200
    wait_until(lambda: stack.server_status(1)["service"]["roleStatus"] == "RoleReady", what="server-1 ready")
    body = role_body(stack, 1, [3])
    for device, physical in zip(body["local"]["device"], ("6", "7"), strict=True):
        device["device_id"] = physical
    assert stack.mgmt(2, "/v1/role/prefill", "POST", body)[0] == 200
    assert second.wait(10) == -signal.SIGKILL
    assert "used by another process" in stack.log("server-2")


def test_a_port_in_use_on_any_interface_stops_the_start(stack: Stack) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", stack.server_ports(1)["metrics"]))
        blocker.listen()
        process = stack.start_server(1)
        assert process.wait(10) == -signal.SIGKILL
    assert f"Port {stack.server_ports(1)['metrics']} is already in use" in stack.log("server-1")


def test_metrics_need_the_monitor_mode(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"MIES_SERVICE_MONITOR_MODE": "0"})
    started(stack)
    port = stack.server_ports(1)["metrics"]
    from tests.simstack import http

    assert http("GET", f"http://127.0.0.1:{port}/metrics")[0] == 500
    stack.stop_all()
    stack = make_stack()
    started(stack)
    code, body = http("GET", f"http://127.0.0.1:{stack.server_ports(1)['metrics']}/metrics")
    assert code == 200
    text = body.decode()
    for name in (
        "request_received_total",
        "num_requests_running",
        "npu_cache_usage_perc",
        "time_to_first_token_seconds_bucket",
        "e2e_request_latency_seconds_count",
    ):
        assert f'{name}{{model_name="llama3-8b"' in text, name


def test_sigterm_path_ends_in_sigabrt_with_the_group_gone(stack: Stack) -> None:
    process = started(stack)
    group = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(group) >= 2  # the daemon and its worker
    begun = time.monotonic()
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: stack.mgmt(1, "/v1/status")[0] in (0, 503), what="unhealthy")
    assert process.wait(10) == -signal.SIGABRT
    assert time.monotonic() - begun >= 5 * 0.05 * 0.9  # the 5 s linger, scaled
    assert subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True).returncode == 1


def standard_mode(stack: Stack) -> None:
    path = stack.out / "config1.json"  # plans always write dmi; edit the file as a user could
    data = json.loads(path.read_text())
    data["ServerConfig"]["inferMode"] = "standard"
    path.write_text(json.dumps(data))


STOPPED = {"error": "The service has been stopped.", "error_type": "Service Unavailable"}


def test_stop_service_sets_the_flag_first_waits_for_work_answers_200_empty_and_stays_up(stack: Stack) -> None:
    # HttpHandler::StopService (MindIE-LLM http_handler.cpp): stopServiceFlag first, so status
    # and health answer 503 and new inference 503 (SingleReqInferInterfaceBase::Process) while
    # requests drain; then 200 with no body; nothing exits. A second call: 500, no body.
    standard_mode(stack)
    process = started(stack, SUPERVISOR_PD_SIM_TPOT_MS="100")
    chat = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 20}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(stack.business, 1, "/v1/chat/completions", "POST", chat)
        wait_until(lambda: json.loads(stack.mgmt(1, "/metrics-json")[1])["num_requests_running"] == 1, what="work")
        stopping = pool.submit(stack.mgmt, 1, "/stopService")
        code, body = wait_until(lambda: (r := stack.mgmt(1, "/v1/status"))[0] == 503 and r, what="the flag")
        assert json.loads(body) == STOPPED
        assert not stopping.done()  # the flag is set before the wait, not after it
        for path in ("/v2/health/ready", "/health", "/metrics-json"):
            code, body = stack.mgmt(1, path)
            assert (code, json.loads(body)) == (503, STOPPED), path
        assert stack.mgmt(1, "/health/timed") == (200, b'{"status":"healthy"}')
        code, body = stack.business(1, "/v1/chat/completions", "POST", chat)
        assert (code, json.loads(body)["error"]) == (503, "The service has been stopped")
        assert running.result(timeout=20)[0] == 200  # the request in flight finished
        assert stopping.result(timeout=20) == (200, b"")
    assert stack.mgmt(1, "/v1/config")[0] == 200  # still up: whoever asked stops it
    assert process.poll() is None
    assert stack.mgmt(1, "/stopService") == (500, b"")
    assert stack.mgmt(1, "/stopService?mode=Force") == (500, b"")
    process.send_signal(signal.SIGTERM)  # its own shutdown path, as the supervisor's drain sends
    assert process.wait(10) == -signal.SIGABRT


def test_stop_service_force_answers_at_once_and_sigkills_the_group_5_s_later(stack: Stack) -> None:
    # HttpHandler::ForceStop: only `mode=Force` exactly; 200 with no body, then after WAIT_TIME
    # (5 s, scaled here) killpg(getpgrp(), SIGKILL): no shutdown path, the workers go too.
    process = started(stack)
    group = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(group) >= 2
    begun = time.monotonic()
    assert stack.mgmt(1, "/stopService?mode=Force") == (200, b"")
    code, body = stack.mgmt(1, "/v1/status")
    assert (code, json.loads(body)) == (503, STOPPED)
    assert process.wait(10) == -signal.SIGKILL
    assert time.monotonic() - begun >= 5 * 0.05 * 0.9  # WAIT_TIME, scaled
    # The worker was killed with it; its zombie lasts until its new parent reaps it.
    wait_until(lambda: subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True).returncode == 1)


def test_stop_service_mode_is_case_sensitive(stack: Stack) -> None:
    # "mode=force" is not "Force": the graceful path, which never kills anything.
    process = started(stack)
    assert stack.mgmt(1, "/stopService?mode=force") == (200, b"")
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(5 * 0.05 * 4)  # four times the Force path's scaled wait
    assert stack.mgmt(1, "/v1/config")[0] == 200


def test_business_rules_in_dmi_mode(stack: Stack) -> None:
    started(stack)
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    assert stack.business(1, "/v1/chat/completions", "POST", chat)[0] == 503  # no role yet
    models = json.loads(stack.business(1, "/v1/models")[1])
    assert models["data"][0]["id"] == "llama3-8b" and models["data"][0]["owned_by"] == "MindIE Server"
    assert stack.business(1, "/dresult")[0] == 400  # not a decode instance
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3]))[0] == 200
    wait_until(lambda: stack.server_status(1)["service"]["roleStatus"] == "RoleReady", what="ready")
    assert stack.business(1, "/v1/chat/completions", "POST", chat)[0] == 400  # not from the Coordinator
    headers = {"req-type": "prefill", "req-id": "12", "d-target": "127.0.0.1;1"}
    code, body = stack.business(1, "/v1/chat/completions", "POST", chat | {"max_tokens": 1}, headers)
    reply = json.loads(body)
    assert code == 200
    assert reply["reqId"] == "12" and reply["isLastResp"] is True and reply["isStream"] is False
    assert json.loads(reply["output"])["object"] == "chat.completion"


def test_standard_mode_serves_directly(stack: Stack) -> None:
    standard_mode(stack)
    started(stack)
    code, body = stack.business(
        1, "/v1/chat/completions", "POST", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 4}
    )
    reply = json.loads(body)
    assert code == 200 and reply["usage"]["completion_tokens"] == 4
    code, body = stack.business(1, "/v1/completions", "POST", {"prompt": "x", "max_tokens": 3, "stream": True})
    frames = [line for line in body.decode().split("\n\n") if line]
    assert frames[-1] == "data: [DONE]" and len(frames) == 4


def test_dresult_heartbeat_is_one_message_without_a_request_id(stack: Stack) -> None:
    # SendDResultKa (MindIE-LLM http_handler.cpp) sends "ka:heartbeat\0"; the Coordinator's
    # DResChunkHandler reads each \0-message by its keyword (MindIE-Motor DRequestRepeater.cpp).
    import http.client

    started(stack)
    assert stack.mgmt(1, "/v1/role/decode", "POST", role_body(stack, 1, [3]))[0] == 200
    wait_until(lambda: stack.server_status(1)["service"]["roleStatus"] == "RoleReady", what="ready")
    connection = http.client.HTTPConnection("127.0.0.1", stack.server_ports(1)["port"], timeout=10)
    try:
        connection.request("GET", "/dresult")
        reply = connection.getresponse()
        assert reply.status == 200
        assert reply.read(len(b"ka:heartbeat\0") * 2) == b"ka:heartbeat\0" * 2
    finally:
        connection.close()


def test_role_refusals_use_mindies_words_and_empty_peers_only_matter_first(stack: Stack) -> None:
    # DmiRole::HandlePDRoleV1 and UpdatePDSwitchInfo (MindIE-LLM dmi_role.cpp).
    started(stack)
    body = role_body(stack, 1, [3])
    body["local"]["server_ip"] = "localhost"
    code, reply = stack.mgmt(1, "/v1/role/prefill", "POST", body)
    assert (code, json.loads(reply)) == (
        422,
        {
            "error": "Req body converts to json fail. Reset to previous node status.",
            "error_type": "Input validation error",
        },
    )
    code, reply = stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, []))
    assert (code, json.loads(reply)["error"]) == (503, "Update pd info failed. Reset to previous node status.")
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, [3]))[0] == 200
    # Once it has a role, a request with no peers is accepted (a Controller unlinking its only D).
    assert stack.mgmt(1, "/v1/role/prefill", "POST", role_body(stack, 1, []))[0] == 200
    wait_until(lambda: stack.server_status(1)["linkStatus"]["peers"] == [], what="the peer dropped")
