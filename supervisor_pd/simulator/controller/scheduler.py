"""The Controller's NodeScheduler in single-container mode (reference §3.5-3.7).

Bring-up: read the ranktable, wait for every Server's /v1/config and /v1/status, split P:D by
rate in ranktable order, POST roles with peers, poll until RoleReady, then refresh the
Coordinator every second with the nodes whose links are up both ways. Any failure of the first
role assignment marks the whole group faulty (single container is all or nothing). A Server that
comes back as RoleUnknown is unlinked from its peers, given its role again and relinked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from supervisor_pd.simulator import motortls
from supervisor_pd.simulator.controller.nodes import (
    Node,
    check_config,
    check_status,
    instance,
    nodes_from_ranktable,
    role_body,
    split_roles,
)
from supervisor_pd.simulator.controller.ranktable import RankTableRejected, load_ranktable_file
from supervisor_pd.simulator.files import checks_on, motor_read_error
from supervisor_pd.simulator.knobs import Knobs

MAX_RELOAD_GRT_TIME = 30
MAX_LINK_SERVER_TIME = 2
ROLE_ROUND_PAUSE = 3.0
INIT_RETRY = 5.0
# NodeScheduler.h mWaitClusterDGRTSaveTimeout: seconds NodeScheduler::Run waits, once a second,
# for ClusterD's global ranktable before it initialises the cluster.
CLUSTERD_RANKTABLE_WAIT = 6


def uses_clusterd() -> bool:
    """NodeScheduler.cpp IsUseClusterD (and Controller::Init's test before ClusterClient::Start):
    both variables set, whatever the config says."""
    return os.environ.get("MINDX_TASK_ID") is not None and os.environ.get("MINDX_SERVER_IP") is not None


ROLE_LOOP_PAUSE = 5.0
ROLE_LOOP_ATTEMPTS = 1440


def log(message: str) -> None:
    print(f"[ms_controller] {message}", flush=True)


@dataclass(frozen=True)
class Timers:
    sync: float
    online_wait: float
    check_wait: float
    check_attempts: int
    init_role_attempts: int
    http_timeout: float

    @classmethod
    def from_config(cls, config: dict[str, Any], knobs: Knobs) -> Timers:
        return cls(
            sync=knobs.scaled(float(config.get("cluster_synchronization_seconds", 1))),
            online_wait=knobs.scaled(float(config.get("server_online_wait_seconds", 5))),
            check_wait=knobs.scaled(float(config.get("check_role_wait_seconds", 5))),
            check_attempts=int(config.get("check_role_attempt_times", 300)),
            init_role_attempts=int(config.get("init_role_attempt_times", 2)),
            http_timeout=float(config.get("http_timeout_seconds", 5)),
        )


class NodeScheduler:
    def __init__(
        self,
        config: dict[str, Any],
        ranktable_path: Path,
        rates: tuple[int, int],
        coordinator: tuple[str, int],
        knobs: Knobs,
        server_link: motortls.Link | None = None,
        coordinator_link: motortls.Link | None = None,
    ) -> None:
        self.config = config
        # request_server (toward the Servers' management ports) and request_coordinator (toward
        # the Coordinator's manage port): plain, or the TLS contexts made at start.
        self.server_link = server_link or motortls.Link()
        self.coordinator_link = coordinator_link or motortls.Link()
        self.ranktable_path = ranktable_path
        self.rates = rates
        self.coordinator = coordinator
        self.knobs = knobs
        self.timers = Timers.from_config(config, knobs)
        self.process_file = Path(
            config.get("process_manager", {}).get("file_path", "./logs/controller_process_status.json")
        )
        self.nodes: dict[int, Node] = {}
        self.faulty = False
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timers.http_timeout)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            self._session = session
            if uses_clusterd():
                # No ClusterD answers here: the wait runs out, as it does on hardware when ClusterD
                # is slow; when one answers, its ranktable replaces global_rank_table_file_path.
                for _ in range(CLUSTERD_RANKTABLE_WAIT):
                    log("[NodeScheduler] Wait for the clusterD's GRT save to complete.")
                    await asyncio.sleep(self.knobs.scaled(1.0))
            while True:
                outcome = await self.init_server_cluster()
                if outcome == "ok":
                    break
                if outcome == "faulty":
                    log("Failed to initialize cluster when using single container.")
                    self.faulty = True
                    break
                await asyncio.sleep(self.knobs.scaled(INIT_RETRY))
            await self.refresh()
            while True:
                await asyncio.sleep(self.timers.sync)
                await self.synchronise()

    # --- bring-up -----------------------------------------------------------------------

    def load_ranktable(self) -> list[Node] | None:
        """RankTableLoader::LoadRankTable: None when the file is rejected (it is read again later)."""
        defaults = {
            "port": int(self.config.get("mindie_server_port", 1025)),
            "mgmt_port": int(self.config.get("mindie_server_control_port", 1026)),
            "metric_port": int(self.config.get("mindie_server_metric_port", 1027)),
        }
        strict = checks_on()  # RankTableLoader::LoadRankTable: 0640 and the owner, unless switched off
        refused = motor_read_error(str(self.ranktable_path), 0o640 if strict else 0o777, strict)
        if refused is not None:
            log(f"[ERROR] invalid ranktable {self.ranktable_path}: {refused}")
            return None
        try:
            loaded = load_ranktable_file(
                self.ranktable_path,
                pd_separate=self.config.get("deploy_mode") != "single_node",
                heterogeneous=self.config.get("is_heterogeneous") is True,
                default_mgmt_port=str(defaults["mgmt_port"]),
            )
        except RankTableRejected as exc:
            log(f"[ERROR] invalid ranktable {self.ranktable_path}: {exc}")
            return None
        for warning in loaded.warnings:
            log(f"[WARN] ranktable {self.ranktable_path}: {warning}")
        return nodes_from_ranktable(loaded, defaults)

    async def init_server_cluster(self) -> str:
        nodes, available = await self.get_nodes_from_ranktable()
        if nodes is None or len(available) < 2:
            log(f"only {len(available)} Server(s) available; need at least 2")
            return "retry"
        self.nodes = {node.id: node for node in available}
        if any(node.status["service"]["roleStatus"] != "RoleUnknown" for node in available):
            return "ok" if self.recover() else "retry"
        if not split_roles(available, *self.rates):
            # NodeScheduler::PDModeInit goes on without groups: no role is ever posted.
            log(
                "[ERROR] [DefaultGroupGenerator] Generate groups failed because prefill rate or decode rate "
                f"is invalid ({len(available)} instances, at most 16)"
            )
            return "faulty"
        self.save_process_file()
        if not await self.send_roles(available):
            return "faulty"
        if not await self.check_roles(available):
            return "faulty"
        log(f"cluster initialised: {[(n.id, n.role) for n in available]}")
        return "ok"

    async def get_nodes_from_ranktable(self) -> tuple[list[Node] | None, list[Node]]:
        available: list[Node] = []
        nodes: list[Node] | None = None
        for _ in range(MAX_RELOAD_GRT_TIME):
            nodes = self.load_ranktable()
            if nodes is None:
                await asyncio.sleep(self.timers.online_wait)
                continue
            available = []
            for node in nodes:
                for attempt in range(MAX_LINK_SERVER_TIME):
                    if await self.fetch_static(node) and await self.fetch_status(node):
                        available.append(node)
                        break
                    if attempt + 1 < MAX_LINK_SERVER_TIME:
                        await asyncio.sleep(self.timers.online_wait)
            if len(available) == len(nodes):
                break
        return nodes, available

    async def fetch_static(self, node: Node) -> bool:
        data = await self._get(node, "/v1/config")
        problem = check_config(data) if data is not None else "no answer"
        if problem:
            return False
        node.config = data  # type: ignore[assignment]
        return True

    async def fetch_status(self, node: Node) -> bool:
        data = await self._get(node, "/v1/status")
        if data is None or check_status(data) is not None:
            node.healthy = False
            return False
        node.status = data
        node.healthy = True
        resource = data["resource"]
        node.total_slots = max(node.total_slots, resource["availSlotsNum"] + resource["runningRequestNum"])
        return True

    async def _get(self, node: Node, path: str) -> Any:
        try:
            url = self.server_link.url(node.ip, node.mgmt_port, path)
            async with self.session.get(url, **self.server_link.options) as response:
                if response.status != 200:
                    return None
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def post_role(self, node: Node, exclude: int | None = None) -> bool:
        position = sorted(self.nodes).index(node.id)
        body = role_body(node, self.nodes, position, exclude)
        try:
            url = self.server_link.url(node.ip, node.mgmt_port, f"/v1/role/{node.role}")
            async with self.session.post(url, json=body, **self.server_link.options) as response:
                reply = await response.json(content_type=None) if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        return isinstance(reply, dict) and reply.get("result") == "ok"

    async def send_roles(self, nodes: list[Node]) -> bool:
        pending = list(nodes)
        for _ in range(self.timers.init_role_attempts + 1):
            results = await asyncio.gather(*(self.post_role(node) for node in pending))
            pending = [node for node, ok in zip(pending, results, strict=True) if not ok]
            await asyncio.sleep(self.knobs.scaled(ROLE_ROUND_PAUSE))
            if not pending:
                return True
        log(f"[ERROR] role assignment failed for {[node.id for node in pending]}")
        return False

    async def check_roles(self, nodes: list[Node]) -> bool:
        for _ in range(self.timers.check_attempts):
            await asyncio.gather(*(self.fetch_status(node) for node in nodes))
            if all(self._role_ready(node) for node in nodes):
                return True
            await asyncio.sleep(self.timers.check_wait)
        not_ready = [node.id for node in nodes if not self._role_ready(node)]
        log(f"[ERROR] Servers {not_ready} did not reach RoleReady")
        return False

    @staticmethod
    def _role_ready(node: Node) -> bool:
        service = node.status.get("service", {}) if node.healthy else {}
        return service.get("roleStatus") == "RoleReady" and service.get("currentRole") == node.role

    # --- recovery (the process status file, relative to the working folder) ----------------

    def save_process_file(self) -> None:
        data = {
            "server_list": [
                {"id": n.id, "ip": n.ip, "mgmt_port": n.mgmt_port, "role": n.role, "group": n.group, "peers": n.peers}
                for n in self.nodes.values()
            ],
            "p_rate": self.rates[0],
            "d_rate": self.rates[1],
        }
        self.process_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.process_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, indent=2))
        temporary.replace(self.process_file)

    def recover(self) -> bool:
        try:
            data = json.loads(self.process_file.read_text())
            saved = {(entry["ip"], int(entry["mgmt_port"])): entry for entry in data["server_list"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log(f"[ERROR] Servers already have roles but recovery from {self.process_file} failed: {exc}")
            return False
        for node in self.nodes.values():
            entry = saved.get(node.key)
            if entry is None or entry.get("role") not in ("prefill", "decode"):
                log(f"[ERROR] recovery: Server {node.key} is not in {self.process_file}")
                return False
            node.role = entry["role"]
            node.group = int(entry.get("group", 0))
            node.peers = [int(peer) for peer in entry.get("peers", [])]
        log(f"recovered roles from {self.process_file}: {[(n.id, n.role) for n in self.nodes.values()]}")
        return True

    # --- steady state -------------------------------------------------------------------

    async def synchronise(self) -> None:
        nodes = list(self.nodes.values())
        await asyncio.gather(*(self.fetch_status(node) for node in nodes))
        for node in nodes:
            if (
                not self.faulty
                and node.healthy
                and not node.recovering
                and node.role is not None
                and node.status["service"]["roleStatus"] == "RoleUnknown"
            ):
                node.recovering = True
                task = asyncio.get_running_loop().create_task(self.readmit(node))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        await self.refresh()

    async def readmit(self, node: Node) -> None:
        """ProcessRoleUnknownForPD: unlink the peers, post the role until accepted, relink."""
        log(f"Server {node.id} came back without a role; re-admitting it")
        try:
            peers = [self.nodes[peer] for peer in node.peers if peer in self.nodes]
            await asyncio.gather(*(self.post_role(peer, exclude=node.id) for peer in peers))
            for _ in range(ROLE_LOOP_ATTEMPTS):
                if await self.post_role(node):
                    break
                await asyncio.sleep(self.knobs.scaled(ROLE_LOOP_PAUSE))
            await asyncio.gather(*(self.post_role(peer) for peer in peers))
            for _ in range(self.timers.check_attempts):
                await self.fetch_status(node)
                if self._role_ready(node):
                    log(f"Server {node.id} re-admitted as {node.role}")
                    return
                await asyncio.sleep(self.timers.check_wait)
        finally:
            node.recovering = False

    def included(self) -> list[Node]:
        """Nodes the Coordinator may use: healthy, in their role, linked both ways to a peer."""
        chosen = []
        for node in self.nodes.values():
            if self.faulty or not node.healthy or node.recovering or node.role is None:
                continue
            service = node.status["service"]
            if service["currentRole"] != node.role or service["roleStatus"] == "RoleUnknown":
                continue
            linked = [
                peer
                for peer in node.peers
                if peer in self.nodes
                and self.nodes[peer].healthy
                and node.link_ok(peer)
                and self.nodes[peer].link_ok(node.id)
            ]
            if linked:
                chosen.append(node)
        return chosen

    async def refresh(self) -> None:
        nodes = self.included()
        body = {"ids": [node.id for node in nodes], "instances": [instance(node, self.nodes) for node in nodes]}
        host, port = self.coordinator
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            url = self.coordinator_link.url(host, port, "/v1/instances/refresh")
            async with self.session.post(url, json=body, **self.coordinator_link.options) as response:
                await response.read()
