"""Renewing a generated pod certificate before it expires, and bringing it to every process.

MindIE reads its certificates once, at start: neither the Server (MindIE-LLM http_ssl.cpp,
grpc_communication_mng.cpp) nor the Controller and Coordinator (MindIE-Motor HttpServer.cpp,
HttpClient.cpp) reload them, and a peer refuses an expired certificate at the next handshake. So
a renewal is: a new leaf from the same CA (every process already trusts it), the files swapped
in one step (certfiles.py), supervisor_pd's own client context reloaded, then each process that
still holds the old leaf restarted, one at a time: Servers, then the Coordinator, then the
Controller. For each restart the HTTP port holds new requests (bounded) and waits for those in
flight to finish before the process is stopped, and opens again only once the service is ready:
requests wait, none is lost. A process started after the renewal (a Coordinator restarted by its
own rules, say) already holds the new leaf and is skipped.
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
from supervisor_pd.runtime.spec import Kind
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
            f"tls: certificate renewed (valid until {material.not_after:%Y-%m-%d %H:%M:%S} UTC); restarting each "
            "process in turn to load it"
        )
        before = {p.name: p.pid for p in self.view().processes}
        order = [Kind.SERVER, Kind.COORDINATOR, Kind.CONTROLLER]
        for kind in order:
            for process in self.view().of_kind(kind):
                current = self.view().process(process.name)
                if current is None or current.pid != before.get(process.name) or current.pid is None:
                    continue  # started since the renewal, or not running: it reads the new files when it starts
                await self._restart(process.name)
        self.log("tls: every process runs with the renewed certificate")

    async def _restart(self, name: str) -> None:
        proxy = self.proxy
        proxy.open.clear()
        try:
            try:
                await asyncio.wait_for(proxy.idle.wait(), self.stop_seconds)
            except TimeoutError:
                self.log(f"tls: requests still in flight after {self.stop_seconds:g} s; restarting {name} anyway")
            old = self.view().process(name)
            old_pid = old.pid if old is not None else None
            self.post(Restart(name))
            deadline = time.monotonic() + self.ready_seconds
            while time.monotonic() < deadline:
                snap = self.view()
                now = snap.process(name)
                if snap.stopping:
                    return
                if now is not None and now.pid not in (None, old_pid) and now.up and snap.ready:
                    return
                await asyncio.sleep(POLL)
            self.log(f"tls: {name} did not come back ready within {self.ready_seconds:g} s; moving on")
        finally:
            proxy.open.set()
