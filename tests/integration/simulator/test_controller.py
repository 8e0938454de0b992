"""Conformance of the simulated Controller with reference §3."""

from __future__ import annotations

import json
import signal

from tests.simstack import Stack, http, wait_until


def controller_get(stack: Stack, path: str) -> tuple[int, bytes]:
    return http("GET", f"http://127.0.0.1:{stack.ports.controller}{path}")


def bring_up(stack: Stack) -> None:
    stack.start_all()
    stack.wait_ready()


def test_probe_endpoints_answer_unconditionally(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    stack.start_controller()  # no Server is up: the probe answers anyway (reference §3.3)
    wait_until(lambda: controller_get(stack, "/v1/startup")[0] == 200, what="the probe server")
    assert json.loads(controller_get(stack, "/v1/health")[1]) == {"message": "", "status": "0"}
    assert controller_get(stack, "/v1/healthz/anything")[0] == 200  # prefix match
    code, body = controller_get(stack, "/v1/status")
    assert code == 404 and body.startswith(b"Cannot find the resource")


def test_bring_up_assigns_roles_in_ranktable_order(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    bring_up(stack)
    roles = [stack.server_status(i)["service"]["currentRole"] for i in range(1, 5)]
    assert roles == ["prefill", "prefill", "decode", "decode"]
    peers = {i: sorted(p["target"] for p in stack.server_status(i)["linkStatus"]["peers"]) for i in range(1, 5)}
    assert peers == {1: [2, 3], 2: [2, 3], 3: [0, 1], 4: [0, 1]}
    saved = json.loads((stack.tmp / "controller" / "logs" / "controller_process_status.json").read_text())
    assert [entry["role"] for entry in saved["server_list"]] == roles


def test_rates_from_the_environment(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack(knobs={"MINDIE_MS_P_RATE": "1", "MINDIE_MS_D_RATE": "3"})
    bring_up(stack)
    roles = [stack.server_status(i)["service"]["currentRole"] for i in range(1, 5)]
    assert roles == ["prefill", "decode", "decode", "decode"]


def test_single_container_init_is_all_or_nothing(make_stack) -> None:  # type: ignore[no-untyped-def]
    # check_role_attempt_times bounds how long the Controller polls for RoleReady (300 x 5 s by default).
    stack = make_stack(
        knobs={"SUPERVISOR_PD_SIM_FAULTS": "server-4:load_fail"},
        change=lambda f: f["ms_controller.json"].update(check_role_attempt_times=4),
    )
    stack.start_all()
    wait_until(
        lambda: "Failed to initialize cluster when using single container." in stack.log("controller"),
        what="the whole-group failure",
    )
    assert stack.processes["server-4"].wait(10) == -signal.SIGKILL
    # The group is faulty: even the healthy Servers are never offered to the Coordinator.
    assert stack.status("/v1/readiness")[0] == 503
    code, body = http("GET", f"http://127.0.0.1:{stack.ports.manage}/v1/coordinator_info")
    assert code == 200 and json.loads(body)["schedule_info"] == []


def test_a_restarted_server_is_unlinked_readmitted_and_relinked(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    bring_up(stack)
    stack.kill("server-3")
    stack.start_server(3)
    wait_until(lambda: "Server 2 re-admitted as decode" in stack.log("controller"), what="re-admission")
    assert stack.server_status(3)["service"] == {"roleStatus": "RoleReady", "currentRole": "decode"}
    # Its peers were first given their role without it, then with it again (reference §3.7).
    requests = [
        line.split("role request: ")[1] for line in stack.log("server-1").splitlines() if "role request" in line
    ]
    assert requests == ["prefill, peers [2, 3]", "prefill, peers [3]", "prefill, peers [2, 3]"]
    wait_until(lambda: {p["target"] for p in stack.server_status(1)["linkStatus"]["peers"]} == {2, 3}, what="relink")
    stack.wait_ready()


def test_restart_recovers_from_the_process_file(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    bring_up(stack)
    stack.kill("controller")
    stack.start_controller()  # same working folder: ./logs/controller_process_status.json is there
    wait_until(lambda: "recovered roles" in stack.log("controller"), what="recovery")
    assert stack.status("/v1/readiness")[0] == 200


def test_restart_without_the_process_file_cannot_recover(make_stack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    bring_up(stack)
    stack.kill("controller")
    stack.start_controller(cwd=tmp_path / "elsewhere")
    wait_until(lambda: stack.log("controller").count("recovery from") >= 2, what="repeated recovery failures")
    assert "recovered roles" not in stack.log("controller")


def test_an_invalid_ranktable_is_retried(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    ranktable = stack.out / "global_ranktable.json"
    data = json.loads(ranktable.read_text())
    data["server_group_list"] = data["server_group_list"][:1]  # no Coordinator group
    ranktable.write_text(json.dumps(data))
    stack.start_controller()
    wait_until(lambda: "invalid ranktable" in stack.log("controller"), what="the ranktable error")
    assert stack.processes["controller"].poll() is None


def test_a_repeated_node_id_loads_no_server_and_is_retried(make_stack) -> None:  # type: ignore[no-untyped-def]
    # RankTableLoader accepts the file but its parse gives up: no Server, so bring-up waits and retries.
    stack = make_stack()
    ranktable = stack.out / "global_ranktable.json"
    data = json.loads(ranktable.read_text())
    group = next(g for g in data["server_group_list"] if g["group_id"] == "2")
    group["server_list"].append(group["server_list"][0])
    ranktable.write_text(json.dumps(data))
    stack.start_controller()
    wait_until(lambda: stack.log("controller").count("non-unique node id") >= 2, what="two loads with no Server")
    assert "only 0 Server(s) available" in stack.log("controller")
    assert "invalid ranktable" not in stack.log("controller")
    assert stack.processes["controller"].poll() is None


def test_an_invalid_config_stops_the_start(make_stack) -> None:  # type: ignore[no-untyped-def]
    stack = make_stack()
    path = stack.out / "ms_controller.json"
    data = json.loads(path.read_text())
    data["deploy_mode"] = "cloud"
    path.write_text(json.dumps(data))
    assert stack.start_controller().wait(10) == 1
    assert "deploy_mode" in stack.log("controller")


def test_under_mindcluster_the_controller_waits_for_clusterds_ranktable(make_stack) -> None:  # type: ignore[no-untyped-def]
    # Controller.cpp Controller::Init and NodeScheduler.cpp IsUseClusterD: MINDX_TASK_ID and
    # MINDX_SERVER_IP both set start the ClusterD client and make NodeScheduler::Run wait for
    # ClusterD's ranktable (6 x 1 s, NodeScheduler.h) before it initialises the cluster.
    stack = make_stack(knobs={"MINDX_TASK_ID": "job-7", "MINDX_SERVER_IP": "127.0.0.1"})
    bring_up(stack)
    log = stack.log("controller")
    assert log.count("Wait for the clusterD's GRT save to complete.") == 6
    assert log.index("Wait for the clusterD's GRT save") < log.index("cluster initialised")
    # The planned ms_controller.json has no cluster_port (supervisor_pd removes it): no address.
    assert "ClusterD client started for task job-7 (nowhere)" in log


def test_refresh_names_only_peers_linked_both_ways() -> None:
    # CoordinatorRequestHandler.cpp SetPeers: a configured peer goes into dynamic_info.peers only
    # when this node reports the link ok and the peer reports it back (IsNodeLinkedByPeer).
    from supervisor_pd.simulator.controller.nodes import Node, instance

    def node(ident: int, role: str, peers: list[int], links: dict[int, str]) -> Node:
        made = Node(ident, "127.0.0.1", 1000 + ident, 2000 + ident, 3000 + ident, None, [], role=role, peers=peers)
        made.status = {"linkStatus": {"peers": [{"target": t, "link": link} for t, link in links.items()]}}
        return made

    nodes = {
        0: node(0, "prefill", [2, 3, 4], {2: "ok", 3: "ok", 4: "linking"}),
        2: node(2, "decode", [0], {0: "ok"}),
        3: node(3, "decode", [0], {0: "linking"}),  # not linked back
        4: node(4, "decode", [0], {0: "ok"}),  # 0 does not report it ok
    }
    assert instance(nodes[0], nodes)["dynamic_info"]["peers"] == [2]
    assert instance(nodes[2], nodes)["dynamic_info"]["peers"] == [0]
    assert instance(nodes[3], nodes)["dynamic_info"]["peers"] == []
