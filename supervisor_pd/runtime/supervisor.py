"""The supervision loop.

    run(): clean up after a dead predecessor, start the guardian, then loop:
        wait for the next event or deadline -> handle it -> reconcile (start what may start).

Events come from exit watchers (a pidfd per child: an exit is noticed at once), the signal
watcher (SIGTERM/SIGINT stop),
the health checkers (a starting child answers; liveness; service readiness) and group cleanup
(a dead child's process group is empty). Handlers only change state; reconcile() decides what
to start. Restarts are decided in fail() by the pure restart policy.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import TaskGroup

from supervisor_pd.errors import ExitCode
from supervisor_pd.plan.model import Plan
from supervisor_pd.runtime import processes
from supervisor_pd.runtime.child import Child, describe_exit
from supervisor_pd.runtime.logs import LogSink
from supervisor_pd.runtime.probes import Prober, Result
from supervisor_pd.runtime.restart import Action, RestartPolicy, Run, decide
from supervisor_pd.runtime.spec import Kind, ProcessSpec
from supervisor_pd.runtime.states import Phase, ProcState
from supervisor_pd.settings import Settings

UP_POLL = 0.1
GROUP_GONE_LIMIT = 10.0
ORPHAN_REAP_INTERVAL = 1.0


@dataclass(frozen=True)
class Exited:
    pid: int
    code: int


@dataclass(frozen=True)
class Up:
    name: str


@dataclass(frozen=True)
class Live:
    name: str
    result: Result


@dataclass(frozen=True)
class Service:
    coordinator_ready: bool
    servers_ready: dict[str, bool]


@dataclass(frozen=True)
class Stop:
    """A signal to stop, or (signum None) a drain asked for through the control API."""

    signum: int | None
    source: str = ""


@dataclass(frozen=True)
class GroupGone:
    name: str


@dataclass(frozen=True)
class Command:
    """A request from the control API: `action` on process `name`."""

    action: str
    name: str


Event = Exited | Up | Live | Service | Stop | GroupGone | Command
DrainHook = Callable[[float], Awaitable[None]]


class Supervisor:
    def __init__(
        self,
        plan: Plan,
        specs: list[ProcessSpec],
        settings: Settings,
        sink: LogSink,
        state_dir: Path,
        apply_cpus: bool,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.sink = sink
        self.apply_cpus = apply_cpus
        self.children: dict[str, Child] = {spec.name: Child(spec) for spec in specs}
        self.servers = [c for c in self.children.values() if c.kind is Kind.SERVER]
        self.coordinator = self.children["coordinator"]
        self.controller = self.children["controller"]
        self.policy = RestartPolicy(
            backoff=settings.restart_backoff,
            cap=settings.restart_backoff_max,
            stable_after=settings.restart_stable_seconds,
            budget=settings.restart_budget,
        )
        self.phase = Phase.STARTING
        self.phase_since = time.monotonic()
        self.phase_reason = "starting"
        self.started = time.monotonic()
        self.ever_ready = False
        self.coordinator_ready = False
        self.servers_ready: dict[str, bool] = {}
        self.stall_since: float | None = None
        self.controller_restart_pending = False
        self.exit_code = ExitCode.OK
        self.exit_reason = ""
        self.finished = anyio.Event()
        self.heartbeat = time.monotonic()
        self.drain_hooks: list[DrainHook] = []
        self.on_phase: list[Callable[[Phase], None]] = []
        self.on_health: list[Callable[[Child, Result], None]] = []
        self.guardian = processes.Guardian()
        self.pidfile = processes.PidFile(state_dir / "run" / "children.json")
        self._send, self._receive = anyio.create_memory_object_stream[Event](math.inf)
        self._tg: TaskGroup | None = None
        self._prober: Prober | None = None
        self._stop_signals = 0

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> int:
        """Supervise until asked to stop or out of options; returns the exit code."""
        leftovers = self.pidfile.sweep()
        if leftovers:
            self.log(f"killed leftovers of an earlier run: {', '.join(leftovers)}")
        if not processes.become_subreaper():
            self.log("could not become a child subreaper: orphaned grandchildren will go to PID 1")
        self.guardian.start()
        try:
            async with Prober(self.settings.health_timeout) as prober, anyio.create_task_group() as tg:
                self._prober, self._tg = prober, tg
                tg.start_soon(self._watch_signals)
                tg.start_soon(self._reap_orphans)
                tg.start_soon(self._check_starting)
                tg.start_soon(self._check_health)
                self.reconcile()
                while not self.finished.is_set():
                    self.heartbeat = time.monotonic()
                    with anyio.move_on_after(max(0.0, self._next_deadline() - time.monotonic())):
                        self.handle(await self._receive.receive())
                    self._check_deadlines()
                    self.reconcile()
                tg.cancel_scope.cancel()
        finally:
            self.guardian.close()
        return int(self.exit_code)

    def post(self, event: Event) -> None:
        self._send.send_nowait(event)

    def handle(self, event: Event) -> None:
        match event:
            case Exited():
                self.on_exited(event)
            case Up():
                self.on_up(self.children[event.name])
            case Live():
                self.on_live(self.children[event.name], event.result)
            case Service():
                self.on_service(event)
            case Stop():
                self.on_stop(event)
            case GroupGone():
                self.on_group_gone(self.children[event.name])
            case Command():
                self.on_command(event)

    def log(self, message: str) -> None:
        self.sink.info(message)

    # --- handlers ---------------------------------------------------------------------------

    def on_exited(self, event: Exited) -> None:
        child = next((c for c in self.children.values() if c.pid == event.pid), None)
        if child is None:
            if event.pid != self.guardian.pid:
                self.log(f"reaped orphan pid {event.pid} ({describe_exit(event.code)})")
            return
        if child.popen is not None:
            child.popen.returncode = event.code
        if child.exited is not None:
            child.exited.set()
        child.pid = None
        child.last_exit = describe_exit(event.code)
        self._cleanup_group(child)
        if self.phase in (Phase.DRAINING, Phase.FAILED, Phase.STOPPED):
            self.transition(child, ProcState.STOPPED, child.last_exit)
        elif child.state is ProcState.STOPPING and child.restart_when_stopped:
            child.restart_when_stopped = False
            child.restart_at = time.monotonic()
            child.restarts += 1
            self.transition(child, ProcState.BACKOFF, f"restarting ({child.last_exit})")
        elif child.state is not ProcState.BACKOFF:
            self.fail(child, f"exited ({child.last_exit})")

    def on_up(self, child: Child) -> None:
        if child.state is not ProcState.STARTING:
            return
        child.failures = 0
        child.ready_once = True
        child.next_live = time.monotonic() + self.settings.health_interval
        endpoints = " and ".join(check.path for check in child.spec.up)
        self.transition(child, ProcState.READY, f"answers {endpoints}")

    def on_live(self, child: Child, result: Result) -> None:
        if child.state not in (ProcState.READY, ProcState.UNHEALTHY):
            return
        if self.phase in (Phase.DRAINING, Phase.FAILED, Phase.STOPPED) and not result.ok:
            return  # a Server told to stop answers 503 on purpose: not a failure
        child.health, child.health_at, child.health_wall = result, time.monotonic(), time.time()
        for listener in self.on_health:
            listener(child, result)
        if child.kind is Kind.SERVER and isinstance(result.body, dict):
            service = result.body.get("service", {})
            child.role_status, child.current_role = service.get("roleStatus"), service.get("currentRole")
        if result.ok:
            child.failures = 0
            if child.state is ProcState.UNHEALTHY:
                self.transition(child, ProcState.READY, "liveness recovered")
            return
        child.failures += 1
        limit = self.settings.liveness_failures
        if child.failures >= limit:
            self.fail(child, f"{child.failures} liveness checks failed in a row (last: {result.detail})")
        elif child.state is ProcState.READY:
            self.transition(
                child, ProcState.UNHEALTHY, f"liveness check {child.failures}/{limit} failed: {result.detail}"
            )

    def on_service(self, event: Service) -> None:
        self.coordinator_ready = event.coordinator_ready
        self.servers_ready = event.servers_ready
        all_servers = len(event.servers_ready) == len(self.servers) and all(event.servers_ready.values())
        if event.coordinator_ready and all_servers:
            if self.phase in (Phase.STARTING, Phase.DEGRADED):
                took = time.monotonic() - self.started
                note = f"service ready after {took:.1f} s" if not self.ever_ready else "service ready again"
                self.ever_ready = True
                self.set_phase(Phase.READY, "the Coordinator is ready and every Server is role-ready")
                self.log(note)
        elif self.phase is Phase.READY:
            missing = [name for name, ok in event.servers_ready.items() if not ok]
            why = "the Coordinator is not ready" if not event.coordinator_ready else f"not ready: {', '.join(missing)}"
            self.set_phase(Phase.DEGRADED, why)
        self._judge_controller(all_servers)

    def on_stop(self, event: Stop) -> None:
        if event.signum is None:  # a drain request: asking twice changes nothing
            if self.phase not in (Phase.DRAINING, Phase.FAILED, Phase.STOPPED):
                self.set_phase(Phase.DRAINING, f"drain requested {event.source}".strip())
                self._start_task(self.drain(stop_servers=True))
            return
        self._stop_signals += 1
        name = signal.Signals(event.signum).name
        if self._stop_signals > 1 or self.phase is Phase.FAILED:
            self.log(f"{name} again: stopping now" if self._stop_signals > 1 else f"{name} while failing: stopping now")
            for child in self.children.values():
                if child.pgid is not None and child.group_alive:
                    processes.signal_group(child.pgid, signal.SIGKILL)
            return
        if self.phase is Phase.DRAINING:  # a preStop hook asked for the drain first: let it finish
            self.log(f"{name} received: already draining")
            return
        self.set_phase(Phase.DRAINING, f"{name} received")
        self._start_task(self.drain(stop_servers=True))

    def on_group_gone(self, child: Child) -> None:
        child.group_alive = False
        if child.pgid is not None:
            self.guardian.forget(child.pgid)
        self._write_pidfile()
        if self.phase in (Phase.DRAINING, Phase.FAILED) and not any(
            c.group_alive or c.pid for c in self.children.values()
        ):
            self._finish()

    def on_command(self, command: Command) -> None:
        child = self.children.get(command.name)
        if child is None or command.action != "restart":
            return
        if child.state.running:
            self.restart(child, "restart requested through the API", graceful=True)
            if self.phase is Phase.READY and child.kind is not Kind.CONTROLLER:
                self.set_phase(Phase.DEGRADED, f"{child.name} is restarting")

    # --- decisions ----------------------------------------------------------------------------

    def fail(self, child: Child, reason: str) -> None:
        """A failure of `child`: kill what is left of it, then restart after a backoff, or escalate."""
        now = time.monotonic()
        child.runs.append(Run(child.started_at or now, now))
        self._kill(child)
        decision = decide(self.policy, tuple(child.runs))
        if decision.action is Action.ESCALATE:
            self.transition(child, ProcState.FAILED, f"{reason}; {decision.reason}")
            self.escalate(ExitCode.BUDGET_EXHAUSTED, f"{child.name} failed too often: {decision.reason}")
            return
        child.restart_at = now + decision.delay
        child.restarts += 1
        self.transition(child, ProcState.BACKOFF, f"{reason}; restart in {decision.delay:.1f} s ({decision.reason})")
        if self.phase is Phase.READY and child.kind is not Kind.CONTROLLER:
            self.set_phase(Phase.DEGRADED, f"{child.name} is down")
        self._restart_scope(child)

    def _restart_scope(self, child: Child) -> None:
        """Which other processes a failure drags along (reference §3.5-3.7, §10)."""
        if child.kind is Kind.SERVER and not self.ever_ready and self.controller.state is not ProcState.PENDING:
            if not self.controller_restart_pending:
                self.log(
                    f"{child.name} failed during the first role assignment: the Controller's single-container "
                    "group is faulty, so the Controller restarts once the Server is back"
                )
            self.controller_restart_pending = True
        if child.kind is Kind.CONTROLLER and not self._recovery_possible():
            with_roles = [s for s in self.servers if s.role_status not in (None, "RoleUnknown")]
            if with_roles:
                self.log(
                    "the Controller's recovery file is missing while Servers hold roles: restarting the Servers so "
                    "they return without a role"
                )
                for server in with_roles:
                    self.restart(server, "the Controller cannot recover their roles")

    def _recovery_possible(self) -> bool:
        try:
            config = json.loads(self.plan.file("ms_controller.json").content)
        except (KeyError, ValueError):
            return False
        manager = config.get("process_manager", {})
        if manager.get("to_file") is False:
            return False
        path = Path(manager.get("file_path", "./logs/controller_process_status.json"))
        return (self.controller.spec.cwd / path).exists()

    def _judge_controller(self, all_servers_ready: bool) -> None:
        """The Controller's own endpoints always answer; judge it by what the Coordinator sees."""
        if not (all_servers_ready and not self.coordinator_ready and self.controller.state is ProcState.READY):
            self.stall_since = None
            return
        now = time.monotonic()
        if self.stall_since is None:
            self.stall_since = now
        elif now - self.stall_since >= self.settings.controller_stall_seconds:
            self.stall_since = None
            self.fail(
                self.controller,
                f"the Coordinator has not been ready for {self.settings.controller_stall_seconds:g} s while every "
                "Server is role-ready: the Controller is not refreshing it",
            )

    def restart(self, child: Child, reason: str, graceful: bool = False) -> None:
        """A deliberate restart: not a failure, no backoff. Graceful: SIGTERM first, SIGKILL at a deadline."""
        child.restart_when_stopped = True
        self.transition(child, ProcState.STOPPING, reason)
        if graceful and child.pid is not None and child.pgid is not None:
            processes.signal_group(child.pgid, signal.SIGTERM)
            self._start_task(self._kill_after(child, child.pid, self.settings.stop_seconds))
        else:
            self._kill(child)

    async def _kill_after(self, child: Child, pid: int, seconds: float) -> None:
        await anyio.sleep(seconds)
        if child.pid == pid:
            self.log(f"{child.name} still running {seconds:g} s after SIGTERM: SIGKILL")
            self._kill(child)

    def escalate(self, code: ExitCode, reason: str) -> None:
        if self.phase is Phase.FAILED:
            return
        self.exit_code, self.exit_reason = code, reason
        self.set_phase(Phase.FAILED, reason)
        self.log(f"giving up: {reason} (exit code {int(code)})")
        self._start_task(self.drain(stop_servers=False))

    def reconcile(self) -> None:
        """Start whatever may start now, in dependency order, gated on readiness."""
        if self.phase in (Phase.DRAINING, Phase.FAILED, Phase.STOPPED):
            return
        now = time.monotonic()
        due = lambda c: c.startable and (c.restart_at is None or c.restart_at <= now)  # noqa: E731
        starting = sum(1 for s in self.servers if s.state is ProcState.STARTING)
        limit = self.settings.start_concurrency or len(self.servers)
        for server in self.servers:
            if due(server) and starting < limit:
                self.start(server)
                starting += 1
        servers_up = all(s.state in (ProcState.READY, ProcState.UNHEALTHY) for s in self.servers)
        first_start = self.coordinator.state is ProcState.PENDING
        if due(self.coordinator) and (servers_up or not first_start):
            self.start(self.coordinator)
        coordinator_up = self.coordinator.state in (ProcState.READY, ProcState.UNHEALTHY)
        if due(self.controller) and servers_up and coordinator_up:
            self.start(self.controller)
        if (
            self.controller_restart_pending
            and servers_up
            and self.controller.state in (ProcState.READY, ProcState.UNHEALTHY)
        ):
            self.controller_restart_pending = False
            self.restart(
                self.controller, "its group went faulty during the first role assignment; the Servers are back"
            )
        elif self.controller_restart_pending and self.controller.startable:
            self.controller_restart_pending = False  # it is restarting anyway

    def _check_deadlines(self) -> None:
        if self.phase in (Phase.DRAINING, Phase.FAILED, Phase.STOPPED):
            return  # stopping: the drain keeps its own deadline
        now = time.monotonic()
        for child in self.children.values():
            if child.state is ProcState.STARTING and child.start_deadline is not None and now > child.start_deadline:
                endpoints = " and ".join(check.path for check in child.spec.up)
                self.fail(child, f"did not answer {endpoints} within {child.spec.start_deadline:g} s")
        if not self.ever_ready and self.phase is Phase.STARTING and now - self.started > self.settings.ready_seconds:
            self.escalate(
                ExitCode.STARTUP_DEADLINE, f"the service was not ready within {self.settings.ready_seconds:g} s"
            )

    def _next_deadline(self) -> float:
        """When the loop must wake up even if no event comes. A restart that is already due but
        waits on its dependencies is woken by their events, not by the clock."""
        now = time.monotonic()
        if self.phase in (Phase.DRAINING, Phase.FAILED, Phase.STOPPED):
            return now + 1.0
        times = [self.started + self.settings.ready_seconds] if self.phase is Phase.STARTING else []
        for child in self.children.values():
            if child.state is ProcState.STARTING and child.start_deadline is not None:
                times.append(child.start_deadline)
            if child.state is ProcState.BACKOFF and child.restart_at is not None and child.restart_at > now:
                times.append(child.restart_at)
        # At least once a second, so the heartbeat (what /livez reports) stays fresh.
        return min([*times, now + 1.0])

    # --- acting on processes -------------------------------------------------------------------

    def start(self, child: Child) -> None:
        cpus = child.spec.cpus if self.apply_cpus else None
        try:
            child.popen = processes.spawn(child.spec, cpus)
        except OSError as exc:
            self.fail(child, f"could not be started: {exc.strerror}")
            return
        now = time.monotonic()
        child.pid = child.pgid = child.popen.pid
        child.group_alive = True
        child.started_at, child.start_deadline = now, now + child.spec.start_deadline
        child.failures, child.role_status, child.current_role = 0, None, None
        child.exited = anyio.Event()
        self.guardian.watch(child.pid)
        self._write_pidfile()
        self._start_task(self._watch_exit(child.pid))
        for stream, pipe in (("stdout", child.popen.stdout), ("stderr", child.popen.stderr)):
            if pipe is not None:
                self._start_task(self._pump(child.name, stream, pipe))
        where = f", CPUs {_cpus(cpus)}" if cpus else ""
        self.transition(child, ProcState.STARTING, f"pid {child.pid}: {' '.join(child.spec.argv)}{where}")

    def _kill(self, child: Child) -> None:
        if child.pid is not None and child.pgid is not None:
            processes.signal_group(child.pgid, signal.SIGKILL)

    def _cleanup_group(self, child: Child) -> None:
        """After the leader exits, nothing of its group may survive (workers hold NPU memory)."""
        if child.pgid is None:
            return
        self._start_task(self._clear_group(child.name, child.pgid))

    async def _clear_group(self, name: str, pgid: int) -> None:
        processes.signal_group(pgid, signal.SIGKILL)
        # No event tells when a process group is empty; its members are reaped as they die.
        with anyio.move_on_after(GROUP_GONE_LIMIT):
            while processes.group_alive(pgid):  # noqa: ASYNC110
                await anyio.sleep(0.01)
        self.post(GroupGone(name))

    def transition(self, child: Child, state: ProcState, reason: str) -> None:
        previous = child.state
        child.state, child.since, child.reason = state, time.time(), reason
        self.log(f"{child.name}: {previous.value} -> {state.value}: {reason}")

    def set_phase(self, phase: Phase, reason: str) -> None:
        if phase is self.phase:
            return
        self.log(f"service: {self.phase.value} -> {phase.value}: {reason}")
        self.phase, self.phase_since, self.phase_reason = phase, time.monotonic(), reason
        for listener in self.on_phase:
            listener(phase)

    def _anything_left(self) -> bool:
        return any(c.group_alive or c.pid is not None for c in self.children.values())

    def _finish(self) -> None:
        if self.phase is Phase.DRAINING:
            self.set_phase(Phase.STOPPED, "every process has stopped")
        self.finished.set()

    def _write_pidfile(self) -> None:
        alive = {
            c.name: (c.pgid, processes.start_time(c.pgid)) for c in self.children.values() if c.group_alive and c.pgid
        }
        try:
            self.pidfile.write(alive)  # type: ignore[arg-type]
        except OSError as exc:
            self.log(f"cannot record the process groups: {exc.strerror}")

    def _start_task(self, coroutine: Awaitable[Any]) -> None:
        assert self._tg is not None

        async def runner() -> None:
            await coroutine

        self._tg.start_soon(runner)

    # --- stopping -------------------------------------------------------------------------------

    async def drain(self, stop_servers: bool) -> None:
        """Stop within the grace period: in-flight work, /stopService, then TERM in reverse order, KILL at the end."""
        grace = self.settings.grace_seconds
        deadline = time.monotonic() + grace
        self.log(f"draining within {grace:g} s")
        # Half the grace period for work in flight; the rest for the processes' own stop paths.
        settle = time.monotonic() + grace / 2
        for hook in self.drain_hooks:
            with anyio.move_on_after(max(0.0, settle - time.monotonic())):
                await hook(settle)
        if stop_servers:
            with anyio.move_on_after(max(0.0, settle - time.monotonic())):
                await self._wait_idle()
            await self._stop_services(deadline)
        for group in ([self.controller], [self.coordinator], self.servers):
            live = [c for c in group if c.pid is not None]
            if not live:
                continue
            self.log(f"stopping {', '.join(c.name for c in live)} (SIGTERM)")
            for child in live:
                self.transition(child, ProcState.STOPPING, "draining")
                processes.signal_group(child.pgid, signal.SIGTERM)  # type: ignore[arg-type]
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                for child in live:
                    if child.exited is not None:
                        await child.exited.wait()
        remaining = [c for c in self.children.values() if c.pgid and processes.group_alive(c.pgid)]
        if remaining:
            self.log(f"grace period over: SIGKILL to {', '.join(c.name for c in remaining)}")
            for child in remaining:
                processes.signal_group(child.pgid, signal.SIGKILL)  # type: ignore[arg-type]
        for child in self.children.values():
            if child.state is not ProcState.STOPPED and child.pid is None and not child.group_alive:
                self.transition(child, ProcState.STOPPED, "stopped")
        if not self._anything_left():
            self._finish()
        else:
            with anyio.move_on_after(GROUP_GONE_LIMIT):
                await self.finished.wait()
            self._finish()

    async def _wait_idle(self) -> None:
        """Until no Server has a request running or waiting (read from their /v1/status)."""
        assert self._prober is not None
        prober = self._prober
        live = [s for s in self.servers if s.state in (ProcState.READY, ProcState.UNHEALTHY)]
        reported = False
        while live:
            results = [await prober.check(s.spec.live, parse=True) for s in live]
            busy = sum(
                r.body.get("resource", {}).get("runningRequestNum", 0)
                + r.body.get("resource", {}).get("waitingRequestNum", 0)
                for r in results
                if r.ok and isinstance(r.body, dict)
            )
            if not busy:
                return
            if not reported:
                self.log(f"waiting for {busy} request(s) in flight on the Servers")
                reported = True
            await anyio.sleep(0.1)

    async def _stop_services(self, deadline: float) -> None:
        """Ask each Server to stop the way the reference preStop does: GET /stopService."""
        assert self._prober is not None
        live = [s for s in self.servers if s.state in (ProcState.READY, ProcState.UNHEALTHY)]
        if not live:
            return
        self.log(f"asking {len(live)} Server(s) to stop (/stopService)")
        budget = max(0.5, (deadline - time.monotonic()) / 2)

        async def ask(server: Child) -> None:
            check = server.spec.live
            result = await self._prober.get(f"http://{check.host}:{check.port}/stopService", budget)  # type: ignore[union-attr]
            if not result.ok:
                self.log(f"{server.name}: /stopService {result.detail}")

        async with anyio.create_task_group() as tg:
            for server in live:
                tg.start_soon(ask, server)

    # --- tasks feeding the loop --------------------------------------------------------------------

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                self.post(Stop(signum))

    def _reap(self) -> None:
        """The one place exit statuses are collected: ours and orphans' alike."""
        for pid, code in processes.reap():
            self.post(Exited(pid, code))

    async def _watch_exit(self, pid: int) -> None:
        """Notice a child's exit at once: its pidfd becomes readable when it ends."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._reap()
            return
        try:
            await anyio.wait_readable(fd)
        finally:
            os.close(fd)
        self._reap()

    async def _reap_orphans(self) -> None:
        """Grandchildren handed to us as subreaper (or PID 1) have no pidfd of ours: sweep for them."""
        while True:
            self._reap()
            await anyio.sleep(ORPHAN_REAP_INTERVAL)

    async def _check_starting(self) -> None:
        assert self._prober is not None
        prober = self._prober
        pending: set[str] = set()

        async def probe(child: Child) -> None:
            try:
                results = [await prober.check(check) for check in child.spec.up]
                if all(result.ok for result in results) and child.state is ProcState.STARTING:
                    self.post(Up(child.name))
            finally:
                pending.discard(child.name)

        async with anyio.create_task_group() as tg:
            while True:
                for child in self.children.values():
                    if child.state is ProcState.STARTING and child.name not in pending:
                        pending.add(child.name)
                        tg.start_soon(probe, child)
                await anyio.sleep(UP_POLL)

    async def _check_health(self) -> None:
        """Each tick: readiness of the Coordinator and every Server (the service's phase), then
        liveness of each process that is due. A process that just answered its readiness check
        is alive; only the others get a liveness request, which halves the steady-state traffic."""
        assert self._prober is not None
        prober = self._prober
        interval = self.settings.health_interval
        up = (ProcState.READY, ProcState.UNHEALTHY)

        async def readiness(child: Child, ready: dict[str, bool]) -> None:
            result = await prober.check(child.spec.ready)  # type: ignore[arg-type]
            ready[child.name] = result.ok
            if result.ok:
                if child.kind is Kind.SERVER:
                    child.role_status = "RoleReady"
                    if child.current_role not in ("prefill", "decode"):  # learn its role once it has one
                        status = await prober.check(child.spec.live, parse=True)
                        if status.ok and isinstance(status.body, dict):
                            child.current_role = status.body.get("service", {}).get("currentRole")
                self.post(Live(child.name, result))

        async def liveness(child: Child) -> None:
            result = await prober.check(child.spec.live, parse=child.kind is Kind.SERVER)
            self.post(Live(child.name, result))

        while True:
            now = time.monotonic()
            ready: dict[str, bool] = {}
            async with anyio.create_task_group() as tg:
                for child in [*self.servers, self.coordinator]:
                    if child.state in up and child.spec.ready is not None:
                        tg.start_soon(readiness, child, ready)
            answered = {name for name, ok in ready.items() if ok}
            if self.coordinator.state is not ProcState.PENDING or self.phase is not Phase.STARTING:
                coordinator_ok = ready.pop(self.coordinator.name, False)
                self.post(Service(coordinator_ok, {s.name: ready.get(s.name, False) for s in self.servers}))
            async with anyio.create_task_group() as tg:
                for child in self.children.values():
                    if child.state in up and now >= child.next_live:
                        child.next_live = now + interval
                        if child.name not in answered:
                            tg.start_soon(liveness, child)
            # Until the service is first ready, look more often: the time to ready is what an
            # operator waits on.
            await anyio.sleep(min(interval, 0.5) if not self.ever_ready else interval)

    async def _pump(self, name: str, stream: str, pipe: IO[bytes]) -> None:
        """Copy a child's output, line by line, to the log sink. Never blocks the loop."""
        fd = pipe.fileno()
        os.set_blocking(fd, False)
        buffer = b""
        try:
            while True:
                await anyio.wait_readable(fd)
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    self.sink.line(name, stream, line.decode(errors="replace").rstrip("\r"))
                if len(buffer) > 65536:
                    self.sink.line(name, stream, buffer.decode(errors="replace"))
                    buffer = b""
            if buffer:
                self.sink.line(name, stream, buffer.decode(errors="replace"))
        finally:
            pipe.close()


def _cpus(cpus: tuple[int, ...] | None) -> str:
    from supervisor_pd.platform.cpuset import format_cpulist

    return format_cpulist(cpus) if cpus else "-"
