"""Rows of the reliability matrix with every MindIE link on mutual TLS (tests/e2e/test_fault_matrix.py
has the pieces): SIGKILL of a Server and of the Coordinator, and a certificate renewal under load.

A module of its own, so its stack runs only while these rows do (a module's stack lives until the
module ends, and two at once on one test worker starve the load tests of CPU)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_fault_matrix import (
    RECOVERABLE,
    STACK_ENV,
    Row,
    all_ready,
    processes,
    recoverable_fault,
    under_load,
)
from tests.simstack import wait_until
from tests.superstack import SupervisorRun, running


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorRun]:
    """The stack with every MindIE link on mutual TLS (certificates generated at start); 4 Servers."""
    with running(tmp_path_factory.mktemp("matrix-tls"), env={**STACK_ENV, "SUPERVISOR_PD_TLS": "generate"}) as run:
        yield run


TLS_ROWS = [(key, fault) for key, fault in RECOVERABLE if key in ("sigkill-prefill", "sigkill-coordinator")]


@pytest.mark.parametrize(("key", "fault"), TLS_ROWS, ids=[key for key, _ in TLS_ROWS])
def test_recoverable_fault_under_load_with_tls(tls_stack: SupervisorRun, key: str, fault: str) -> None:
    assert tls_stack.server_config(1)["httpsEnabled"] is True
    recoverable_fault(tls_stack, key, fault + ", every link on mutual TLS")


def test_certificate_renewal_under_load_loses_no_request(tls_stack: SupervisorRun) -> None:
    """`supervisor-pd renew-tls` under a steady load: every process restarts with the new
    certificate while the port holds new requests; no request fails, none is lost."""
    run = tls_stack
    wait_until(lambda: all_ready(run), 60, what="every process ready before the renewal")
    before = processes(run)
    cert = Path(json.loads((run.out / "ms_coordinator.json").read_text())["tls_config"]["status_tls_items"]["tls_cert"])
    old = cert.read_bytes()

    def renew() -> None:
        done = run.cli("renew-tls")
        assert done.returncode == 0, done.stderr

    def everyone_restarted() -> bool:
        now = processes(run)
        return all_ready(run) and all(now[n]["pid"] != before[n]["pid"] for n in before)

    load, took = under_load(run, renew, everyone_restarted, recover_timeout=120)
    assert cert.read_bytes() != old
    assert load["error"] == 0 and load["refused"] == 0, [(p["began"], p["detail"]) for p in load["problems"]]
    Row(
        "certificate renewal (supervisor-pd renew-tls), every link on mutual TLS",
        f"all {len(before)} processes restarted with the new certificate (in dependency order) while the port held new "
        "requests; no request failed",
        load,
        took,
    ).check_and_record()
