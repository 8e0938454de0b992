"""Renewing a generated pod certificate before it expires, and bringing it to every process.

MindIE reads its certificates once, at start: neither the Server (MindIE-LLM http_ssl.cpp,
grpc_communication_mng.cpp) nor the Controller and Coordinator (MindIE-Motor HttpServer.cpp,
HttpClient.cpp) reload them, and a peer refuses an expired certificate at the next handshake. So
a renewal is: a new leaf from the same CA (every process already trusts it), the files swapped
in one step (certfiles.py), supervisor_pd's own client context reloaded, then every process
restarted.

All at once, behind one hold, not one after another: the HTTP port holds new requests (bounded),
waits for those in flight to finish, restarts every process that still holds the old leaf (the
engine starts them in dependency order: Servers, Coordinator, Controller) and opens again once the
service is ready. One after another would cost one outage per Server rather than one, since a
Server's restart breaks the Coordinator's links to it (a lost decode link quarantines every
instance for 2 minutes in MindIE's Coordinator, runtime/mindie.py), and on an 800I each restart is
a model load: all Servers load theirs at the same time. Requests through the port wait; none is
lost. A process that restarted since the renewal already holds the new leaf and is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import TYPE_CHECKING

from supervisor_pd.api.proxy import Proxy
from supervisor_pd.certfiles import CertKeeper
from supervisor_pd.plan.model import TlsPlan
from supervisor_pd.runtime.events import Restart
from supervisor_pd.runtime.tlsclient import reload

if TYPE_CHECKING:
    from supervisor_pd.runtime.supervisor import Supervisor

POLL = 0.1


class Renewal:
    def __init__(
        self,
        keeper: CertKeeper,
        tls: TlsPlan,
        supervisor: Supervisor,
        proxy: Proxy,
        stop_seconds: float,
        ready_seconds: float,
    ) -> None:
        self.keeper = keeper
        self.tls = tls
        self.view = supervisor.snapshot
        self.post = supervisor.post
        self.proxy = proxy
        self.log = supervisor.log
        self.stop_seconds = stop_seconds
        self.ready_seconds = ready_seconds
        self.renewals = 0
        self.busy = False
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """The schedule: a renewal when the leaf is due, for as long as the run lasts."""
        self._spawn(self.run())

    def start_now(self) -> None:
        """A renewal at once (the API's POST /v1/tls/renew)."""
        self._spawn(self.renew())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, work: object) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Forever: sleep until the leaf is due, renew it. Returns at once when nothing is generated."""
        while True:
            due = self.keeper.renew_at()
            if due is None:
                return
            wait = (due - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0:
                # In slices: a suspended VM's clock jumps, and a long sleep would not notice.
                await asyncio.sleep(min(wait, 60.0))
                continue
            await self.renew()

    async def renew(self) -> None:
        if self.busy:
            return
        self.busy = True
        try:
            await self._renew()
        except Exception as exc:  # the run goes on with the old certificate; say why
            self.log(f"tls: renewal failed: {type(exc).__name__}: {exc}")
        finally:
            self.busy = False

    async def _renew(self) -> None:
        material = await asyncio.to_thread(self.keeper.renew)
        reload(self.tls)
        self.renewals += 1
        self.log(
            f"tls: certificate renewed (valid until {material.not_after:%Y-%m-%d %H:%M:%S} UTC); holding new "
            "requests while every process restarts to load it"
        )
        proxy = self.proxy
        proxy.open.clear()
        try:
            try:
                await asyncio.wait_for(proxy.idle.wait(), self.stop_seconds)
            except TimeoutError:
                self.log(f"tls: requests still in flight after {self.stop_seconds:g} s; restarting anyway")
            old = {p.name: p.pid for p in self.view().processes if p.pid is not None}
            for name in old:
                self.post(Restart(name, "tls-renewal"))
            deadline = time.monotonic() + self.ready_seconds
            while time.monotonic() < deadline:
                snap = self.view()
                if snap.stopping:
                    return
                fresh = all(
                    (now := snap.process(name)) is not None and now.pid not in (None, pid) and now.up
                    for name, pid in old.items()
                )
                if fresh and snap.ready:
                    self.log("tls: every process runs with the renewed certificate")
                    return
                await asyncio.sleep(POLL)
            self.log(f"tls: the service was not ready again within {self.ready_seconds:g} s of the renewal")
        finally:
            proxy.open.set()
