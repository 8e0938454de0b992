"""Conformance of the simulated Coordinator with reference §4."""

from __future__ import annotations

import json
import subprocess
import threading
import time

from tests.simstack import Stack, http, wait_until

CHAT = {"model": "llama3-8b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 6}


def manage(stack: Stack, path: str, method: str = "GET", body: object = None) -> tuple[int, bytes]:
    return http(method, f"http://127.0.0.1:{stack.ports.manage}{path}", body)


def test_cli_takes_at_most_two_valid_ips(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    env = {**stack.env, "MINDIE_MS_COORDINATOR_CONFIG_FILE_PATH": str(stack.out / "ms_coordinator.json")}
    for args in (["127.0.0.1", "127.0.0.1", "127.0.0.1"], ["not-an-ip"], ["0.0.0.0"]):
        result = subprocess.run(
            ["ms_coordinator", *args], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 1, args


def test_not_ready_until_one_prefill_and_one_decode(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    stack.start_coordinator()
    wait_until(lambda: stack.status("/v1/startup")[0] == 200, what="the status port")
    assert stack.status("/v1/health")[0] == 200
    assert stack.status("/v2/health/live")[0] == 200
    assert stack.status("/v1/readiness")[0] == 503
    assert stack.status("/v2/health/ready")[0] == 503
    code, body = stack.predict("/v1/chat/completions", CHAT)
    assert (code, body) == (503, b"MindIE-MS Coordinator is not ready\r\n")
    assert manage(stack, "/v1/coordinator_info")[0] == 503  # before the first refresh


def test_refresh_admission_checks(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    stack.start_coordinator()
    wait_until(lambda: stack.status("/v1/startup")[0] == 200, what="the status port")
    assert manage(stack, "/v1/instances/refresh", "POST", {"bad": 1})[0] == 400
    good = {
        "id": 0,
        "ip": "127.0.0.1",
        "port": "2001",
        "metric_port": "2003",
        "inter_comm_port": "2004",
        "model_name": "m",
        "dynamic_info": {"peers": [1]},
        "static_info": {
            "group_id": 0,
            "max_seq_len": 2560,
            "max_output_len": 512,
            "total_slots_num": 200,
            "total_block_num": 640,
            "block_size": 128,
            "label": 2,
            "role": 80,
        },
    }
    bad_block = json.loads(json.dumps(good)) | {"id": 1}
    bad_block["static_info"]["block_size"] = 0
    no_comm = json.loads(json.dumps(good)) | {"id": 2, "inter_comm_port": ""}
    too_long = json.loads(json.dumps(good)) | {"id": 3}
    too_long["static_info"]["max_output_len"] = 9999
    body = {"ids": [0, 1, 2, 3], "instances": [good, bad_block, no_comm, too_long]}
    assert manage(stack, "/v1/instances/refresh", "POST", body)[0] == 200
    info = json.loads(manage(stack, "/v1/coordinator_info")[1])
    assert [entry["id"] for entry in info["schedule_info"]] == [0]
    assert stack.status("/v1/readiness")[0] == 503  # a prefill alone is not enough


def test_routing_through_prefill_and_decode(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    stack.start_all()
    stack.wait_ready()
    assert http("GET", f"http://127.0.0.1:{stack.ports.predict}/v1/models")[0] in (404, 405)
    code, body = stack.predict("/v1/chat/completions", CHAT)
    reply = json.loads(body)
    assert code == 200 and reply["object"] == "chat.completion"
    assert reply["usage"]["completion_tokens"] == 6
    code, body = stack.predict("/v1/chat/completions", CHAT | {"stream": True})
    frames = [f for f in body.decode().split("\n\n") if f]
    assert code == 200 and len(frames) == 7 and frames[-1] == "data: [DONE]"
    text = "".join(json.loads(f[6:])["choices"][0]["delta"]["content"] for f in frames[:-1])
    assert text == reply["choices"][0]["message"]["content"]  # P's first token + D's tokens, in order
    for path, payload in (
        ("/infer", {"inputs": "hi", "parameters": {"max_new_tokens": 3}}),
        ("/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 3}}),
        ("/v1/completions", {"prompt": "hi", "max_tokens": 3}),
        ("/v2/models/llama3-8b/generate", {"text_input": "hi", "parameters": {"max_new_tokens": 3}}),
        ("/v2/models/llama3-8b/infer", {"inputs": [{"name": "text", "data": ["hi"]}]}),
    ):
        code, body = stack.predict(path, payload)
        assert code == 200, (path, body)
    code, body = stack.predict("/generate_stream", {"inputs": "hi", "parameters": {"max_new_tokens": 3}})
    assert code == 200 and body.count(b"data:") == 3
    assert stack.predict("/v1/chat/completions", b"{not json")[0] == 400
    code, body = stack.predict("/v1/tokenizer", {"inputs": "one two three"})
    assert code == 200 and json.loads(body)["token_number"] == 3


def test_retry_frames_resend_to_prefill_with_recompute(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-3:retry_requests=1;server-4:retry_requests=1"})
    stack.start_all()
    stack.wait_ready()
    code, body = stack.predict("/v1/chat/completions", CHAT)
    assert code == 200 and json.loads(body)["usage"]["completion_tokens"] == 6


def test_too_many_requests(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"MINDIE_MS_COORDINATOR_CONFIG_MAX_REQ": "1", "SUPERVISOR_PD_SIM_TPOT_MS": "200"})
    stack.start_all()
    stack.wait_ready()
    slow = threading.Thread(target=stack.predict, args=("/v1/chat/completions", CHAT | {"max_tokens": 10}))
    slow.start()
    try:
        wait_until(
            lambda: json.loads(manage(stack, "/v1/coordinator_info")[1])["request_num"] == 1, what="a request in flight"
        )
        assert stack.predict("/v1/chat/completions", CHAT) == (429, b"Too many requests")
    finally:
        slow.join()


def test_a_decode_that_dies_mid_stream_ends_the_stream_with_an_error(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"SUPERVISOR_PD_SIM_TPOT_MS": "50"})
    stack.start_all()
    stack.wait_ready()
    result: dict[str, object] = {}

    def ask() -> None:
        result["reply"] = stack.predict("/v1/chat/completions", CHAT | {"max_tokens": 200, "stream": True}, timeout=30)

    worker = threading.Thread(target=ask)
    worker.start()
    wait_until(
        lambda: any(s["resource"]["runningRequestNum"] for i in (3, 4) if (s := stack.server_status(i))),
        what="decode to start",
    )
    for index in (3, 4):
        if stack.server_status(index).get("resource", {}).get("runningRequestNum"):
            stack.kill(f"server-{index}")
    worker.join(30)
    code, body = result["reply"]  # type: ignore[misc]
    assert code == 200
    assert b'"error"' in body.split(b"\n\n")[-2] or b'"error"' in body
    assert b"[DONE]" not in body


def test_a_lost_decode_link_quarantines_every_instance_for_two_minutes(make_stack) -> None:  # type: ignore[no-untyped-def]
    # DRequestRepeater DResErrorHandler -> ConnDErrHandler: max_retry immediate reconnects, then
    # AddToFaulty removes every instance sharing the D's virtual id (1 for all of them in
    # single-container mode), and IdsAddOrUpdate ignores them in refreshes for 2 minutes.
    stack = make_stack()
    stack.start_all()
    stack.wait_ready()
    info = json.loads(manage(stack, "/v1/coordinator_info")[1])
    assert len(info["schedule_info"]) == 4
    stack.kill("server-3")
    wait_until(lambda: stack.status("/v1/readiness")[0] == 503, what="not ready")
    began = time.monotonic()
    assert json.loads(manage(stack, "/v1/coordinator_info")[1])["schedule_info"] == []  # the P went too
    stack.start_server(3)
    stack.wait_server_up(3)
    wait_until(lambda: stack.status("/v1/readiness")[0] == 200, timeout=30, what="ready after the quarantine")
    assert time.monotonic() - began >= 120 * 0.05 * 0.9  # 2 minutes, scaled
    assert "quarantined" in stack.log("coordinator")


def test_metrics_are_aggregated(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    stack.start_all()
    stack.wait_ready()
    assert stack.predict("/v1/chat/completions", CHAT)[0] == 200
    code, body = http("GET", f"http://127.0.0.1:{stack.ports.external}/metrics")
    assert code == 200
    assert b'request_success_total{model_name="llama3-8b"} 1.0' in body
    assert b"# TYPE time_to_first_token_seconds histogram" in body
