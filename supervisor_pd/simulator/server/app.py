"""A simulated Server's endpoints: management (§2.1-2.3), business (§2.4-2.6; the generation
paths are in inference.py), metrics (§2.7)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from supervisor_pd.simulator import textgen
from supervisor_pd.simulator.httpd import (
    Request,
    Response,
    Router,
    json_response,
    text_response,
)
from supervisor_pd.simulator.knobs import Knobs, first_time
from supervisor_pd.simulator.server import dmi, pd
from supervisor_pd.simulator.server.config import ServerConfig
from supervisor_pd.simulator.server.devices import claim_devices
from supervisor_pd.simulator.server.inference import Inference
from supervisor_pd.simulator.server.replies import error, log
from supervisor_pd.simulator.server.role_request import check_role_body
from supervisor_pd.simulator.server.state import ROLE_SWITCHING, Peer, ServerState

if TYPE_CHECKING:
    from supervisor_pd.simulator.server.tlsstart import InterCommTls

# Management routes with no stop or health check of their own (see management_gate).
UNGATED = frozenset({"/stopService", "/v1/config"})


class SimServer:
    def __init__(
        self,
        config: ServerConfig,
        knobs: Knobs,
        on_stop: Callable[[], None],
        intercomm: InterCommTls | None = None,
    ) -> None:
        self.config = config
        self.knobs = knobs
        self.intercomm = intercomm
        self.state = ServerState(config)
        self.dispatcher = pd.DResultDispatcher(keepalive=knobs.scaled(5.0))
        self._on_stop = on_stop
        self._intercomm: asyncio.Server | None = None
        self._locks: list[int] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_calls = 0
        self._model_ready = asyncio.Event()
        slow = knobs.fault(config.target, "slow_health")
        self._slow = (slow.value or 0.0) if slow is not None and first_time(config.target, slow) else 0.0
        self._never_ready = knobs.fault(config.target, "never_ready") is not None
        load_fail = knobs.fault(config.target, "load_fail")
        self._load_fail = load_fail is not None and first_time(config.target, load_fail)
        retry = knobs.fault(config.target, "retry_requests")
        retries = int(retry.value or 1) if retry is not None else 0
        self.inference = Inference(config, knobs, self.state, self.dispatcher, self.spawn, retries, intercomm)

    def toggle_slow(self) -> None:
        """SIGUSR1: management answers become `knobs.slow` seconds late, or prompt again."""
        self._slow = 0.0 if self._slow else self.knobs.slow
        state = f"delayed by {self._slow:g} s" if self._slow else "prompt again"
        log(f"management answers {state} (SIGUSR1)")

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- gates ------------------------------------------------------------------------

    async def management_gate(self, request: Request) -> Response | None:
        """Which management routes check the stop flag and the daemon's health first (MindIE-LLM
        http_handler.cpp: CheckHealthAndStop for the health, info, slot and metrics-json routes;
        the same checks inline in /v1/status and /v2/status; /health/timed answers "healthy"
        once stopped). /v1/config, /v1/role and /stopService check nothing."""
        if self._slow and request.method == "GET":
            await asyncio.sleep(self._slow)
        path = request.path
        if path in UNGATED or path.startswith(("/v1/role/", "/v2/role/")):
            return None
        if path.startswith("/health/timed"):
            if self.state.stopped:
                return json_response({"status": "healthy"})
            return None if self.state.healthy else Response(status=503, body=b"")
        if self.state.stopped:
            return error(503, "The service has been stopped.")
        if not self.state.healthy:
            return Response(status=503, body=b"")
        return None

    async def business_gate(self, request: Request) -> Response | None:
        if not self.state.healthy:
            return Response(status=503, body=b"")
        return None

    # --- routes -----------------------------------------------------------------------

    def management_routes(self) -> Router:
        router = Router()
        router.add("GET", "/health/timed", self.health_timed)
        router.add("GET", "/health/timed-{n}", self.health_timed)
        router.add("GET", "/v2/health/live", self.health_live)
        router.add("GET", "/v2/health/ready", self.health_ready)
        router.add("GET", "/v2/models/{model}/ready", self.model_ready)
        router.add("GET", "/health", self.tgi_health)
        router.add("GET", "/info", self.info)
        router.add("GET", "/v2/models/{model}/getSlotCount", self.slot_count)
        router.add("GET", "/metrics-json", self.metrics_json)
        router.add("GET", "/stopService", self.stop_service)
        router.add("GET", "/v1/config", self.v1_config)
        router.add("GET", "/v1/status", self.v1_status)
        router.add("POST", "/v1/role/{role}", self.post_role)
        return router

    def business_routes(self) -> Router:
        router = Router()
        router.add("GET", "/v1/models", self.models)
        router.add("GET", "/v1/models/{model*}", self.model)
        router.add("GET", "/v2", self.triton_server)
        router.add("GET", "/v2/models/{model}", self.triton_model)
        router.add("GET", "/v2/models/{model}/config", self.triton_model)
        for path in textgen.GENERATION_PATHS:
            router.add("POST", path, self.inference.generate)
        for suffix in ("infer", "generate", "generate_stream"):
            router.add("POST", "/v2/models/{model}/" + suffix, self.inference.generate)
        router.add("POST", "/v2/models/{model}/stopInfer", self.stop_infer)
        router.add("POST", "/v1/tokenizer", self.tokenizer)
        router.add("GET", "/dresult", self.inference.dresult)
        return router

    def metrics_routes(self) -> Router:
        router = Router()
        router.add("GET", "/metrics", self.metrics)
        return router

    # --- management ---------------------------------------------------------------------

    async def health_timed(self, request: Request) -> Response:
        if self.state.model_loaded:
            return json_response({"status": "healthy"})
        return json_response({"status": "unhealthy"}, 500)

    def _health(self, liveness: bool) -> Response:
        """HttpHandler::HandleGetLivenessAndReadiness and HandleHealthResponse (MindIE-LLM
        src/server/endpoint/http_wrapper/http_handler.cpp): the engine first, then the service
        status; BUSY is alive (200) but not ready (503). Failed links are not simulated, so
        "DMI connection is unhealthy" never comes."""
        state = self.state
        if not state.model_loaded:  # InferInstance::GetNodeStatus, CHECK_INITIALIZATION
            message = "Failed to get node status: Model instance has been finalized or not initialized."
            return json_response({"message": message}, 500)
        if not state.ready:
            return json_response({"message": "Service is abnormal"}, 500)
        if state.busy and liveness:
            return json_response({"message": "Service is alive but busy"}, 200)
        if state.busy:
            return json_response({"message": "Service is alive but busy. Consider reducing request frequency"}, 503)
        return Response(status=200, body=b"")

    async def health_ready(self, request: Request) -> Response:
        return self._health(liveness=False)

    async def health_live(self, request: Request) -> Response:
        return self._health(liveness=True)

    async def model_ready(self, request: Request) -> Response:
        if request.params["model"] != self.config.model_name:
            return error(404, f"model {request.params['model']} is not served here")
        return await self.health_ready(request)

    async def tgi_health(self, request: Request) -> Response:
        return await self.health_ready(request)

    async def info(self, request: Request) -> Response:
        return json_response(
            {
                "model_id": self.config.model_name,
                "max_input_length": self.config.max_seq_len,
                "max_total_tokens": self.config.max_seq_len,
                "max_batch_size": self.config.max_batch_size,
                "version": "sim",
            }
        )

    async def slot_count(self, request: Request) -> Response:
        return json_response({"availableSlots": self.config.max_batch_size - self.state.slots.running})

    async def metrics_json(self, request: Request) -> Response:
        metrics = self.state.metrics
        return json_response(
            {
                "request_received_total": metrics.received,
                "request_success_total": metrics.success,
                "request_failed_total": metrics.failed,
                "num_requests_running": self.state.slots.running,
                "num_requests_waiting": self.state.slots.waiting,
            }
        )

    async def v1_config(self, request: Request) -> Response:
        return json_response(
            {
                "modelName": self.config.model_name,
                "maxSeqLen": self.config.max_seq_len,
                "npuMemSize": self.config.npu_mem_size,
                "cpuMemSize": self.config.cpu_mem_size,
                "worldSize": self.config.world_size,
                "maxOutputLen": self.config.max_output_len,
                "cacheBlockSize": self.config.cache_block_size,
            }
        )

    async def v1_status(self, request: Request) -> Response:
        return json_response(self.state.status_body())

    async def stop_service(self, request: Request) -> Response:
        """HttpHandler::StopService and ForceStop (MindIE-LLM http_handler.cpp): the stopped flag
        first, so status, health and new inference answer 503 from then on; graceful waits until
        nothing runs or waits and answers 200 with no body, and the daemon stays up (whoever
        asked stops it); `mode=Force`, exactly so spelled, answers 200 at once and SIGKILLs the
        process group 5 s later. A second call of either kind gets 500 with no body."""
        force = request.query.get("mode") == "Force"
        if self.state.stopped:
            log("[WARN] Service has been stop!")
            return Response(status=500, body=b"")
        self.state.stopped = True
        if force:
            log("Force stop instance after 5 seconds...")
            asyncio.get_running_loop().call_later(self.knobs.scaled(5.0), self._on_stop)
            return Response(status=200, body=b"")
        log("Waiting for running requests to complete...")
        await self.state.slots.idle.wait()
        return Response(status=200, body=b"")

    async def post_role(self, request: Request) -> Response:
        role = request.params["role"]
        if role not in ("prefill", "decode", "flex"):
            return error(404, f"unknown role {role}")
        if not self.config.dmi:
            return error(400, "role assignment needs inferMode dmi")
        body = request.json()
        problem = check_role_body(body)
        if problem is not None:
            # DmiRole::HandlePDRoleV1 (MindIE-LLM dmi_role.cpp): its own words, whatever the fault.
            log(f"[ERROR] role request refused: {problem}")
            message = "Req body converts to json fail. Reset to previous node status."
            return json_response({"error": message, "error_type": "Input validation error"}, 422)
        peers = body["peers"]
        # UpdatePDSwitchInfo: empty peers are refused only when the role is first set (needInit)
        # for P, D, or flex at p_percentage 0 or 100.
        p_percentage = body["local"].get("p_percentage")
        if self.state.role == "none" and not peers and (role != "flex" or p_percentage in (0, 100)):
            log(f"[ERROR] {role} initialisation needs at least one peer")
            message = "Update pd info failed. Reset to previous node status."
            return json_response({"error": message, "error_type": "Service Unavailable"}, 503)
        local = body["local"]
        self.state.instance_id = int(local["id"]) if "id" in local else self.state.instance_id
        new, dropped = dmi.update_links(self.state, peers)
        # ProcessPDRoleSwitch: RoleSwitching on every accepted request; only a link query sets
        # RoleReady again, and only after a new link (dmi.py).
        self.state.role = role
        self.state.role_status = ROLE_SWITCHING
        if new or dropped:
            self.spawn(self._link_task(new))
        log(f"role request: {role}, peers {[int(p.get('id', -1)) for p in peers]}")
        if not self.state.model_loaded and not self.state.loading:
            self.state.loading = True
            # The model loads on the logical ids (MindIE-LLM dmi_role.cpp: localDeviceLogicalIds
            # from local.device[].device_logical_id), not on device_id.
            self.spawn(self._load_model([d["device_logical_id"] for d in local.get("device", [])]))
        return json_response({"result": "ok"})

    async def _link_task(self, new: list[Peer]) -> None:
        """ExecuteLinkTask: once the model is on the NPUs, the backend makes the new links."""
        await self._model_ready.wait()
        await asyncio.sleep(self.knobs.link)
        for peer in new:
            peer.made = True
        self.state.role_assigned = True

    def start_timers(self) -> None:
        """At daemon start: the link query thread (dmi only) and the HealthChecker's wait."""
        if self.config.dmi:
            self.spawn(dmi.query_loop(self.state, self.knobs, log))
        self.spawn(dmi.health_wait(self.state, self.knobs, log))

    async def _load_model(self, devices: list[str]) -> None:
        problem = claim_devices(devices, self._locks)
        if problem is None and self._load_fail:
            problem = "aclrtSetDevice failed, ret=507033: the device is unavailable (injected fault)"
        if problem is not None:
            log(f"[ERROR] NPU initialisation failed: {problem}")
            log("[ERROR] model worker exited with a non-zero status; killing the process group")
            os.killpg(os.getpgrp(), signal.SIGKILL)
            return
        try:
            accept = self.inference.accept_decode
            context = self._intercomm_context()
            if context is not False:
                self._intercomm = await pd.serve_intercomm(
                    self.config.ip, self.config.inter_comm_port, accept, ssl=context or None
                )
        except OSError as exc:
            log(f"[ERROR] gRPC server failed to bind interCommPort {self.config.inter_comm_port}: {exc.strerror}")
            os.killpg(os.getpgrp(), signal.SIGKILL)
            return
        log(f"loading model {self.config.model_name} on devices {devices}")
        await asyncio.sleep(self.knobs.model_load)
        if self._never_ready:
            log("model load hangs (injected fault)")
            return
        self.state.model_loaded = True
        self.state.loading = False
        log("model loaded")
        self._model_ready.set()

    def _intercomm_context(self) -> Any:
        """The link listener's SSL context; None when the link is plain; False when its files are
        refused: GrpcCommunicationMng::RunServer then logs and returns, and nothing listens (the
        Server goes on, and hand-offs to it fail)."""
        if self.intercomm is None:
            return None
        from supervisor_pd.simulator.tls import TlsError

        try:
            return self.intercomm.server()
        except TlsError as exc:
            for line in str(exc).splitlines():
                log(f"[ERROR] {line}")
            log("[ERROR] Failed to get certificateProvider")
            return False

    # --- business -----------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        return json_response({"object": "list", "data": [self._model_card()]})

    async def model(self, request: Request) -> Response:
        if request.params["model"] != self.config.model_name:
            return error(404, f"The model `{request.params['model']}` does not exist.")
        return json_response(self._model_card())

    def _model_card(self) -> dict[str, Any]:
        name = self.config.model_name
        return {"id": name, "object": "model", "created": 0, "owned_by": "MindIE Server", "root": name, "parent": name}

    async def triton_server(self, request: Request) -> Response:
        return json_response({"name": "MindIE Server", "version": "sim", "extensions": []})

    async def triton_model(self, request: Request) -> Response:
        if request.params["model"] != self.config.model_name:
            return error(404, f"model {request.params['model']} is not served here")
        return json_response({"name": self.config.model_name, "versions": ["1"], "platform": "MindIE"})

    async def stop_infer(self, request: Request) -> Response:
        return json_response({"result": "ok"})

    async def tokenizer(self, request: Request) -> Response:
        body = request.json()
        text = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(text, str):
            return error(422, "inputs must be a string")
        tokens = textgen.tokenize(text)
        return json_response({"token_number": len(tokens), "tokens": tokens})

    # --- metrics ------------------------------------------------------------------------

    async def metrics(self, request: Request) -> Response:
        if os.environ.get("MIES_SERVICE_MONITOR_MODE") != "1":
            return error(500, "Service monitor mode is off: set MIES_SERVICE_MONITOR_MODE=1.")
        state = self.state
        usage = state.slots.blocks_used / state.total_blocks if state.total_blocks else 0.0
        text = state.metrics.render(self.config.model_name, state.slots.running, state.slots.waiting, usage)
        return text_response(text)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._intercomm is not None:
            self._intercomm.close()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
