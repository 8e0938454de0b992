"""Control routes an operator steers the stack with, beside restart and drain (api/server.py):

| path | what |
|---|---|
| POST /v1/processes/{name}/stop | stop one process and keep it stopped (202; 409 with the reason) |
| POST /v1/processes/{name}/start | start a stopped process again (202; 409 with the reason) |
| POST /v1/servers/rolling-restart[?role=prefill|decode][&allow-outage=1] | roll the Servers (202; 409) |
| GET /v1/servers/rolling-restart | how the last roll goes |

Each is judged from a snapshot with the same rules the engine applies when the command arrives
(runtime/operator.py, runtime/rolling.py), so a refusal is a 409 naming its reason at once; the
engine's own judgement stays the authority (a refusal it makes later shows in the roll's view and
the log). Token-protected on TCP like every control route.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from supervisor_pd.api.errors import json_response
from supervisor_pd.api.requests import shown
from supervisor_pd.runtime.events import RollingRestart, Start, Stop
from supervisor_pd.runtime.operator import start_refusal, stop_refusal
from supervisor_pd.runtime.rolling import ROLES, RollingView, ServerFact, rolling_refusal
from supervisor_pd.runtime.snapshot import ProcessView, Snapshot
from supervisor_pd.runtime.spec import Kind
from supervisor_pd.runtime.states import UP

if TYPE_CHECKING:
    from supervisor_pd.api.server import ApiServer

ROLLING = "/v1/servers/rolling-restart"
SWITCH = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def roll_view(view: RollingView | None) -> dict[str, Any]:
    if view is None:
        return {"state": "none"}
    return {
        "token": view.token,
        "state": view.state,
        "role": view.role,
        "allow_outage": view.allow_outage,
        "order": list(view.order),
        "done": list(view.done),
        "current": view.current,
        "reason": view.reason,
        "started": view.started,
        "finished": view.finished,
    }


def server_facts(view: Snapshot) -> tuple[list[ServerFact], bool]:
    servers = [ServerFact(p.name, p.role or "", p.state, p.ready) for p in view.of_kind(Kind.SERVER)]
    return servers, any(p.state in UP for p in view.of_kind(Kind.CONTROLLER))


class OperatorRoutes:
    def __init__(self, server: ApiServer) -> None:
        self.server = server

    def add(self, app: web.Application) -> None:
        app.router.add_post("/v1/processes/{name}/stop", self.stop)
        app.router.add_post("/v1/processes/{name}/start", self.start)
        app.router.add_post(ROLLING, self.roll)
        app.router.add_get(ROLLING, self.rolling)

    def _named(self, request: web.Request) -> tuple[Snapshot, ProcessView] | web.Response:
        denied = self.server._denied(request)
        if denied is not None:
            return denied
        name = request.match_info["name"]
        view = self.server.supervisor.snapshot()
        child = view.process(name)
        if child is None:
            known = ", ".join(p.name for p in view.processes)
            return json_response({"error": f"no process named {shown(name)!r}; known: {known}"}, 404)
        return view, child

    async def stop(self, request: web.Request) -> web.Response:
        found = self._named(request)
        if isinstance(found, web.Response):
            return found
        view, child = found
        refusal = stop_refusal(child.name, child.state, view.phase, view.ever_ready)
        if refusal is not None:
            return json_response({"error": f"{child.name} not stopped: {refusal}"}, 409)
        self.server.supervisor.log(f"stop of {child.name} requested through the API")
        self.server.supervisor.post(Stop(child.name))
        return json_response({"result": "stopping", "name": child.name}, 202)

    async def start(self, request: web.Request) -> web.Response:
        found = self._named(request)
        if isinstance(found, web.Response):
            return found
        view, child = found
        refusal = start_refusal(child.name, child.state, view.phase)
        if refusal is not None:
            return json_response({"error": f"{child.name} not started: {refusal}"}, 409)
        self.server.supervisor.log(f"start of {child.name} requested through the API")
        self.server.supervisor.post(Start(child.name))
        return json_response({"result": "starting", "name": child.name}, 202)

    async def roll(self, request: web.Request) -> web.Response:
        denied = self.server._denied(request)
        if denied is not None:
            return denied
        role = request.query.get("role") or None
        if role is not None and role not in ROLES:
            return json_response({"error": f"role must be one of {', '.join(ROLES)}, not {shown(role)!r}"}, 400)
        outage = SWITCH.get(request.query.get("allow-outage", "0").lower())
        if outage is None:
            return json_response({"error": "allow-outage must be 1 or 0 (true or false)"}, 400)
        view = self.server.supervisor.snapshot()
        servers, controller_up = server_facts(view)
        active = view.rolling is not None and view.rolling.state == "running"
        order, refusal = rolling_refusal(view.phase, view.ever_ready, servers, controller_up, role, outage, active)
        if refusal is not None:
            return json_response({"error": f"rolling restart refused: {refusal}"}, 409)
        token = secrets.token_hex(4)
        self.server.supervisor.log(f"rolling restart of {', '.join(order)} requested through the API")
        self.server.supervisor.post(RollingRestart(token, role, outage))
        return json_response({"result": "rolling", "token": token, "order": order}, 202)

    async def rolling(self, request: web.Request) -> web.Response:
        denied = self.server._denied(request)
        if denied is not None:
            return denied
        return json_response(roll_view(self.server.supervisor.snapshot().rolling))
