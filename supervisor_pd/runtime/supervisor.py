"""The supervision loop (see gunicorn's arbiter): one readable loop, handlers that only enqueue.

    run(): clean up after a dead predecessor, become a subreaper, start the guardian, then
        tick -> wait for the next event or wake-up time -> handle it (and any queued) -> tick ...

Events come from exit watchers (a pidfd per child), the signal watcher, probe tasks, group
cleanup, NPU health collections and the HTTP layer's commands; all go through `post()`. The
engine (runtime/engine.py) decides; the effects (runtime/os_effects.py) act. The HTTP layer reads
`snapshot()`.
"""

from __future__ import annotations

import math
import secrets
import signal
import ssl
import time
from collections.abc import Mapping
from pathlib import Path

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream

from supervisor_pd.runtime import processes
from supervisor_pd.runtime.cgroups import Cgroups
from supervisor_pd.runtime.engine import Engine, Rules
from supervisor_pd.runtime.events import Event, Signal
from supervisor_pd.runtime.logs import LogSink
from supervisor_pd.runtime.os_effects import DrainHook, OsEffects, ProbeListener
from supervisor_pd.runtime.probes import Prober
from supervisor_pd.runtime.snapshot import Snapshot, snapshot
from supervisor_pd.runtime.spec import ProcessSpec
from supervisor_pd.settings import Settings

ORPHAN_REAP_INTERVAL = 1.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Supervisor:
    def __init__(
        self,
        specs: list[ProcessSpec] | tuple[ProcessSpec, ...],
        settings: Settings,
        sink: LogSink,
        state_dir: Path,
        apply_cpus: bool,
        rules: Rules | None = None,
        file_limit: int | None = None,
        tls: ssl.SSLContext | None = None,
        host_env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.tls = tls
        self.sink = sink
        self._send, self._receive = anyio.create_memory_object_stream[Event](math.inf)
        self.pidfile = processes.PidFile(state_dir / "run" / "children.json")
        self.fx = OsEffects(
            self.post,
            sink,
            self.pidfile,
            secrets.token_hex(6),
            apply_cpus=apply_cpus,
            file_limit=file_limit,
            host_env=host_env,
        )
        self.engine = Engine(specs, settings, self.fx, rules)
        self.heartbeat = time.monotonic()

    @property
    def drain_hooks(self) -> list[DrainHook]:
        """Run when a drain begins, until half the grace period (the HTTP port's own drain)."""
        return self.fx.hooks

    @property
    def on_probe(self) -> list[ProbeListener]:
        return self.fx.on_probe

    def post(self, event: Event) -> None:
        self._send.send_nowait(event)

    def snapshot(self) -> Snapshot:
        return snapshot(self.engine, self.heartbeat)

    def log(self, message: str) -> None:
        self.sink.info(message)

    async def run(self) -> int:
        """Supervise until asked to stop or out of options; returns the exit code."""
        leftovers = self.pidfile.sweep()
        if leftovers:
            self.log(f"killed leftovers of an earlier run: {', '.join(leftovers)}")
        if not processes.become_subreaper():
            self.log("could not become a child subreaper: orphaned grandchildren will go to PID 1")
        if self.settings.cgroups == "auto":
            self.fx.cgroups = Cgroups.take(self.fx.instance)
            if self.fx.cgroups is not None:
                self.log(f"each child runs in a cgroup of its own under {self.fx.cgroups.base}")
        engine = self.engine
        try:
            async with Prober(self.settings.health_timeout, self.tls) as prober, anyio.create_task_group() as tg:
                self.fx.bind(tg, prober)
                tg.start_soon(self._watch_signals)
                tg.start_soon(self._reap_orphans)
                engine.begin()
                await self._loop(engine, self._receive)
                tg.cancel_scope.cancel()
        finally:
            self.fx.close()
        return int(engine.exit_code)

    async def _loop(self, engine: Engine, receive: MemoryObjectReceiveStream[Event]) -> None:
        while True:
            self.heartbeat = time.monotonic()
            engine.tick()
            if engine.finished:
                return
            # What is queued first, then wait for the next event or the engine's next moment.
            try:
                event = receive.receive_nowait()
            except anyio.WouldBlock:
                with anyio.move_on_after(max(0.0, engine.next_wakeup() - time.monotonic())):
                    event = await receive.receive()
                    self._handle(engine, event, receive)
                continue
            self._handle(engine, event, receive)
            await anyio.lowlevel.checkpoint()  # a stream of events never starves the HTTP port

    @staticmethod
    def _handle(engine: Engine, event: Event, receive: MemoryObjectReceiveStream[Event]) -> None:
        engine.handle(event)
        while True:  # everything already queued, before the next tick
            try:
                event = receive.receive_nowait()
            except anyio.WouldBlock:
                return
            engine.handle(event)

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP and self.settings.sighup == "ignore":
                    self.log("SIGHUP ignored (SUPERVISOR_PD_SIGHUP=ignore)")
                    continue
                self.post(Signal(signum))

    async def _reap_orphans(self) -> None:
        """Grandchildren handed to us as subreaper (or PID 1) have no pidfd of ours: sweep for them."""
        while True:
            self.fx.reap()
            await anyio.sleep(ORPHAN_REAP_INTERVAL)
