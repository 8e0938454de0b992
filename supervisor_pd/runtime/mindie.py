"""MindIE's rules: what the generic engine must know about how MindIE's components behave.

Which other processes a failure drags along (docs/running.md "Restarts"; reference §3.5-3.7,
§10), how a Controller that stopped refreshing the Coordinator is recognised, and how to read a
Server's role and its work in flight from its `/v1/status` (reference §2.2). The plan's typed
fields are read, never the rendered JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from supervisor_pd.runtime.events import Probe
from supervisor_pd.runtime.probes import Result
from supervisor_pd.runtime.spec import Kind
from supervisor_pd.runtime.states import UP, ProcState, RestartCause

if TYPE_CHECKING:
    from supervisor_pd.plan.model import Plan
    from supervisor_pd.runtime.child import Child
    from supervisor_pd.runtime.engine import Engine

ROLES = ("prefill", "decode")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class MindieRules:
    def __init__(self, plan: Plan, stall_seconds: float, quarantine_seconds: float = 10.0) -> None:
        self.recovery_file = plan.controller.recovery_file
        self.stall_seconds = stall_seconds
        self.quarantine_seconds = quarantine_seconds
        self.stall_since: float | None = None
        # The decode Servers' runs, and the Coordinator's, when the Coordinator was last ready: a
        # decode run that changed since means the Coordinator lost that Server's /dresult link.
        self.decodes: set[str] = set()
        self.linked_runs: dict[str, int] = {}
        self.linked_coordinator_run: int | None = None
        # A Server failed during the first role assignment: the Controller must restart once it is back.
        self.controller_restart_pending = False

    @staticmethod
    def _one(engine: Engine, kind: Kind) -> Child:
        return next(child for child in engine.children.values() if child.kind is kind)

    @staticmethod
    def _servers(engine: Engine) -> list[Child]:
        return [child for child in engine.children.values() if child.kind is Kind.SERVER]

    # --- what answers say ----------------------------------------------------------------------

    def answered(self, engine: Engine, child: Child, probe: Probe, result: Result) -> None:
        if child.kind is not Kind.SERVER:
            return
        body = result.body if isinstance(result.body, dict) else {}
        service = body.get("service")
        if isinstance(service, dict):
            child.role_status, child.current_role = service.get("roleStatus"), service.get("currentRole")
            if child.current_role == "decode":
                self.decodes.add(child.name)
        if probe is Probe.READY and result.ok and child.role_status in (None, "RoleUnknown"):
            # In dmi mode /v2/health/ready first answers 200 once the role was ready (MindIE-LLM
            # HealthChecker::WaitForLlmEngineReady); later the role may be switching while the
            # Server stays ready, which only its /v1/status tells.
            child.role_status = "RoleReady"
            if child.current_role not in ROLES:
                engine.request(child, Probe.LIVE)  # its /v1/status names the role

    def busy(self, result: Result) -> int:
        body = result.body if isinstance(result.body, dict) else {}
        resource = body.get("resource")
        if not isinstance(resource, dict):
            return 0
        return _count(resource.get("runningRequestNum")) + _count(resource.get("waitingRequestNum"))

    # --- which failures drag which processes along ----------------------------------------------

    def failed(self, engine: Engine, child: Child) -> None:
        controller = self._one(engine, Kind.CONTROLLER)
        if child.kind is Kind.SERVER and not engine.ever_ready and controller.state is not ProcState.PENDING:
            # The Controller's single-container init is all or nothing (reference §3.5): its group is
            # now faulty and only a restart of the Controller, with the Server back, recovers it.
            if not self.controller_restart_pending:
                engine.log(
                    f"{child.name} failed during the first role assignment: the Controller's single-container "
                    "group is faulty, so the Controller restarts once the Server is back"
                )
            self.controller_restart_pending = True
        if child.kind is Kind.CONTROLLER and not self._recovery_possible(engine, child):
            # Without its file the Controller cannot take back the roles the Servers hold (reference §10).
            with_roles = [s for s in self._servers(engine) if s.role_status not in (None, "RoleUnknown")]
            if with_roles:
                engine.log(
                    "the Controller's recovery file is missing while Servers hold roles: restarting the Servers so "
                    "they return without a role"
                )
                for server in with_roles:
                    engine.restart(server, "the Controller cannot recover their roles")

    def _recovery_possible(self, engine: Engine, controller: Child) -> bool:
        if self.recovery_file is None:
            return False
        return engine.fx.exists(controller.spec.cwd / self.recovery_file)

    # --- periodic judgement ---------------------------------------------------------------------

    def tick(self, engine: Engine, now: float) -> float | None:
        controller = self._one(engine, Kind.CONTROLLER)
        coordinator = self._one(engine, Kind.COORDINATOR)
        servers = self._servers(engine)
        if self.controller_restart_pending:
            if all(s.state in UP for s in servers) and controller.state in UP:
                self.controller_restart_pending = False
                engine.restart(
                    controller, "its group went faulty during the first role assignment; the Servers are back"
                )
            elif controller.startable:
                self.controller_restart_pending = False  # it is starting anew anyway
        return self._judge_controller(engine, now, controller, coordinator, servers)

    def _judge_controller(
        self, engine: Engine, now: float, controller: Child, coordinator: Child, servers: list[Child]
    ) -> float | None:
        """The Controller's own endpoints always answer; judge it by what the Coordinator sees."""
        every_server = all(s.state in UP and s.readiness.last is not None for s in servers)
        stalled = (
            every_server
            and coordinator.state in UP
            and coordinator.readiness.last is None
            and controller.state is ProcState.RUNNING
        )
        if coordinator.state in UP and coordinator.readiness.last is not None:
            self.linked_runs = {name: engine.children[name].run for name in self.decodes}
            self.linked_coordinator_run = coordinator.run
        if not stalled:
            self.stall_since = None
            return None
        if self.stall_since is None:
            self.stall_since = now
        lost = [name for name, run in self.linked_runs.items() if engine.children[name].run != run]
        if lost and coordinator.run == self.linked_coordinator_run:
            # MindIE-Motor DExceptionHandler.cpp AddToFaulty: a decode link lost for good takes out
            # every instance sharing its virtual id (all of them in single-container mode), and
            # ControllerListener::IdsAddOrUpdate refuses them for 2 minutes. Only a new Coordinator
            # forgets that; the Controller refills it within one synchronisation.
            if now - self.stall_since < self.quarantine_seconds:
                return self.stall_since + self.quarantine_seconds
            self.stall_since = None
            self.linked_runs = {}
            engine.restart(
                coordinator,
                f"not ready for {self.quarantine_seconds:g} s after {', '.join(lost)} restarted while every Server "
                "is role-ready: MindIE's Coordinator refuses every instance for 2 minutes once it loses a decode "
                "Server's link, and a restart clears that",
            )
            return None
        if now - self.stall_since >= self.stall_seconds:
            self.stall_since = None
            engine.fail(
                controller,
                f"the Coordinator has not been ready for {self.stall_seconds:g} s while every Server is role-ready: "
                "the Controller is not refreshing it",
                RestartCause.LIVENESS,
            )
            return None
        return self.stall_since + self.stall_seconds
