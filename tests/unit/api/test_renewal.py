"""Certificate renewal (api/renewal.py) against fakes of the supervisor and the proxy: the hold, the
wait for requests in flight, one restart of every process, the release once the service is ready."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from supervisor_pd.api.renewal import Renewal
from supervisor_pd.certfiles import CertKeeper
from supervisor_pd.certs.inputs import TlsInputs
from supervisor_pd.plan.model import TlsLink, TlsPlan
from supervisor_pd.runtime.events import Restart

pytestmark = pytest.mark.anyio


@dataclass
class Proc:
    name: str
    pid: int | None
    up: bool = True


@dataclass
class Snap:
    processes: list[Proc]
    ready: bool = True
    stopping: bool = False

    def process(self, name: str) -> Proc | None:
        return next((p for p in self.processes if p.name == name), None)


@dataclass
class FakeSupervisor:
    """Restarts take effect when `settle()` is called: new pids, up, ready."""

    procs: dict[str, Proc] = field(
        default_factory=lambda: {n: Proc(n, i + 100) for i, n in enumerate(["server-1", "coordinator", "controller"])}
    )
    ready: bool = True
    posted: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def snapshot(self) -> Snap:
        return Snap([replace(p) for p in self.procs.values()], ready=self.ready)

    def post(self, event: Restart) -> None:
        self.posted.append(event.name)
        self.procs[event.name] = Proc(event.name, None, up=False)
        self.ready = False

    def settle(self) -> None:
        for number, name in enumerate(self.procs, start=500):
            if self.procs[name].pid is None:
                self.procs[name] = Proc(name, number)
        self.ready = True

    def log(self, line: str) -> None:
        self.lines.append(line)


class FakeKeeper:
    def __init__(self, due: dt.datetime | None = None) -> None:
        self.due = due
        self.renewed = 0

    def renew(self) -> Any:
        self.renewed += 1
        self.due = None  # one renewal per test
        return SimpleNamespace(not_after=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))

    def renew_at(self) -> dt.datetime | None:
        return self.due


PLAN = TlsPlan(mode="generate", mode_source="test", links=(TlsLink(key="x", link="", encrypted=True, switches=()),))


def renewal(supervisor: FakeSupervisor, keeper: FakeKeeper, proxy: Any) -> Renewal:
    return Renewal(keeper, PLAN, supervisor, proxy, stop_seconds=5, ready_seconds=5)  # type: ignore[arg-type]


def proxy() -> SimpleNamespace:
    found = SimpleNamespace(open=asyncio.Event(), idle=asyncio.Event())
    found.open.set()
    found.idle.set()
    return found


async def wait_for(check: Any, limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_renewal_holds_new_requests_restarts_every_process_once_and_opens_when_ready() -> None:
    supervisor, keeper, port = FakeSupervisor(), FakeKeeper(), proxy()
    task = asyncio.ensure_future(renewal(supervisor, keeper, port).renew())
    await wait_for(lambda: len(supervisor.posted) == 3)
    assert sorted(supervisor.posted) == ["controller", "coordinator", "server-1"]
    assert not port.open.is_set()  # held while the processes restart
    await asyncio.sleep(0.3)
    assert not port.open.is_set() and not task.done()
    supervisor.settle()
    await asyncio.wait_for(task, 5)
    assert port.open.is_set()
    assert keeper.renewed == 1
    assert supervisor.posted.count("server-1") == 1
    assert any("every process runs with the renewed certificate" in line for line in supervisor.lines)


async def test_nothing_restarts_while_requests_are_in_flight() -> None:
    supervisor, keeper, port = FakeSupervisor(), FakeKeeper(), proxy()
    port.idle.clear()
    task = asyncio.ensure_future(renewal(supervisor, keeper, port).renew())
    await wait_for(lambda: not port.open.is_set())
    await asyncio.sleep(0.3)
    assert supervisor.posted == []
    port.idle.set()
    await wait_for(lambda: len(supervisor.posted) == 3)
    supervisor.settle()
    await asyncio.wait_for(task, 5)


async def test_the_port_opens_again_even_when_the_service_does_not_come_back() -> None:
    supervisor, keeper, port = FakeSupervisor(), FakeKeeper(), proxy()
    job = Renewal(keeper, PLAN, supervisor, port, stop_seconds=1, ready_seconds=0.3)  # type: ignore[arg-type]
    await asyncio.wait_for(job.renew(), 5)
    assert port.open.is_set()
    assert any("not ready again" in line for line in supervisor.lines)


async def test_the_schedule_renews_when_due_and_does_nothing_without_a_generated_certificate() -> None:
    supervisor, port = FakeSupervisor(), proxy()
    idle = FakeKeeper(due=None)
    await asyncio.wait_for(renewal(supervisor, idle, port).run(), 1)  # returns at once
    assert idle.renewed == 0
    due = FakeKeeper(due=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    task = asyncio.ensure_future(renewal(supervisor, due, port).run())
    await wait_for(lambda: len(supervisor.posted) == 3)
    supervisor.settle()
    await asyncio.wait_for(task, 5)
    assert due.renewed == 1


def test_a_generated_certificate_is_due_after_two_thirds_of_its_life(tmp_path: Path) -> None:
    tls = TlsPlan(
        mode="generate",
        mode_source="test",
        links=(),
        server_home=str(tmp_path),
        folder=str(tmp_path / "security" / "supervisor-pd"),
        san_ips=("127.0.0.1",),
        san_names=("localhost",),
        lifetime_hours=3.0,
    )
    inputs = TlsInputs(tmp_path, "test", "current", "", tmp_path / "mnt", None, None, "pod")
    keeper = CertKeeper(tls, inputs)
    assert keeper.renew_at() is None  # nothing made yet
    first = keeper.first()
    assert first is not None
    due = keeper.renew_at()
    assert due == first.not_before + (first.not_after - first.not_before) * 2 / 3
    ca_before = (tmp_path / "security" / "supervisor-pd" / "ca.pem").read_bytes()
    second = keeper.renew()
    assert second.cert_pem != first.cert_pem and second.key_pem != first.key_pem
    assert (tmp_path / "security" / "supervisor-pd" / "ca.pem").read_bytes() == ca_before  # same CA
    assert (tmp_path / "security" / "supervisor-pd" / "cert.pem").read_bytes() == second.cert_pem
