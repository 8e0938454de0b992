"""The Coordinator's view of the Servers: admission from the Controller's refresh (reference
§4.3) and one long-lived `/dresult` stream per decode instance (§2.6)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from supervisor_pd.simulator.motortls import Link

PREFILL_ROLE, DECODE_ROLE = 80, 68
STATIC_LABELS = {2, 3}


def log(message: str) -> None:
    print(f"[ms_coordinator] {message}", flush=True)


@dataclass
class Instance:
    id: int
    ip: str
    port: int
    metric_port: int
    inter_comm_port: int | None
    role: int
    peers: list[int]
    model_name: str
    static: dict[str, Any]
    dynamic: dict[str, Any]
    virtual_id: int = 1
    online: bool = True
    outstanding: int = 0
    tasks: set[str] = field(default_factory=set)

    @property
    def is_prefill(self) -> bool:
        return self.role == PREFILL_ROLE

    @property
    def is_decode(self) -> bool:
        return self.role == DECODE_ROLE


def _port(value: Any) -> int | None:
    text = str(value)
    if text.isdigit() and 1024 <= int(text) <= 65535:
        return int(text)
    return None


def admit(item: Any) -> tuple[Instance | None, str]:
    """Instance admission checks (ControllerListener L440-620); (instance, "") or (None, why)."""
    if not isinstance(item, dict):
        return None, "not an object"
    static, dynamic = item.get("static_info"), item.get("dynamic_info")
    if not isinstance(static, dict) or not isinstance(dynamic, dict):
        return None, "static_info and dynamic_info are required"
    port, metric_port = _port(item.get("port")), _port(item.get("metric_port"))
    inter_comm = _port(item.get("inter_comm_port"))
    if port is None or metric_port is None:
        return None, "port and metric_port must be valid ports"
    if inter_comm is None:
        return None, "inter_comm_port must be a valid port in single-container mode"
    max_seq, max_out = static.get("max_seq_len", 0), static.get("max_output_len", 0)
    checks = (
        (static.get("total_block_num", 0) > 0, "total_block_num must be > 0"),
        (1 <= static.get("block_size", 0) <= 128, "block_size must be in [1, 128]"),
        (static.get("label") in STATIC_LABELS, "label must be a static label"),
        (max_seq > 0, "max_seq_len must be > 0"),
        (1 <= max_out <= max_seq, "max_output_len must be in [1, max_seq_len]"),
        (1 <= static.get("total_slots_num", 0) <= 5000, "total_slots_num must be in [1, 5000]"),
        (static.get("role") in (PREFILL_ROLE, DECODE_ROLE), "role must be P or D"),
    )
    for ok, why in checks:
        if not ok:
            return None, why
    return (
        Instance(
            id=int(item["id"]),
            ip=str(item["ip"]),
            port=port,
            metric_port=metric_port,
            inter_comm_port=inter_comm,
            role=static["role"],
            peers=[int(p) for p in dynamic.get("peers", [])],
            model_name=str(item.get("model_name", "")),
            static=static,
            dynamic=dynamic,
            virtual_id=int(static.get("virtual_id", 1)),
        ),
        "",
    )


class DecodeStream:
    """Reads `reqId:<id>\\0<prefix><body>\\0` frames from one D and hands them to waiting requests.

    A stream that was up and breaks is ConnDErrHandler's case (MindIE-Motor
    DExceptionHandler.cpp, fed by DRequestRepeater DResErrorHandler): `max_retry` immediate
    reconnects, and if none takes, `on_fault` (AddToFaulty) quarantines the instance and every
    instance sharing its virtual id."""

    def __init__(
        self,
        instance: Instance,
        session: aiohttp.ClientSession,
        waiters: dict[str, asyncio.Queue],
        max_retry: int,
        on_fault: Callable[[Instance], Awaitable[None]],
        link: Link | None = None,
    ) -> None:
        self.instance = instance
        self.link = link or Link()  # mindie_client
        self.session = session
        self.waiters = waiters
        self.max_retry = max_retry
        self.on_fault = on_fault
        self.connected = asyncio.Event()
        # ConnDErrHandler is under way: it runs to its end on its own thread in MindIE, even if a
        # refresh removes the instance meanwhile.
        self.broken = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        url = self.link.url(self.instance.ip, self.instance.port, "/dresult")
        retries_left: int | None = None  # set once an established stream has broken
        while True:
            if await self._stream(url):
                retries_left = self.max_retry  # ConnDErrHandler: reconnect at once
                self.broken = True
                continue
            self.broken = retries_left is not None
            if retries_left is None:
                await asyncio.sleep(1.0)  # never linked yet: the next refresh's LinkWithDNode
                continue
            retries_left -= 1
            if retries_left <= 0:
                log(f"Decode instance {self.instance.ip}:{self.instance.port} connect failed.")
                await self.on_fault(self.instance)
                return

    async def _stream(self, url: str) -> bool:
        """One connection to /dresult, read to its end; True if it was established."""
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
            async with self.session.get(url, timeout=timeout, **self.link.options) as response:
                if response.status != 200:
                    raise aiohttp.ClientError(f"/dresult answered {response.status}")
                self.connected.set()
                self.broken = False
                await self._read(response)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if self.connected.is_set():
                log(f"/dresult stream of instance {self.instance.id} ended: {exc}")
        established = self.connected.is_set()
        self.connected.clear()
        return established

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        buffer = b""
        request_id: str | None = None
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\0" in buffer:
                # One message per \0, read by its keyword as DRequestRepeater::DResChunkHandler
                # does (MindIE-Motor): reqId sets whose the next ones are; ka is a heartbeat.
                part, buffer = buffer.split(b"\0", 1)
                prefix, colon, body = part.partition(b":")
                kind = prefix.decode(errors="replace")
                if not colon or not body:
                    continue
                if kind == "reqId":
                    request_id = body.decode(errors="replace")
                elif kind == "close":
                    return
                elif kind in ("data", "lastData", "error", "retry") and request_id is not None:
                    queue = self.waiters.get(request_id)
                    if queue is not None:
                        queue.put_nowait((kind, body))
