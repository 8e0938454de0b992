"""The whole stack with MindIE's TLS defaults, run as a user runs it: `supervisor-pd run` on the
simulated 800I A2 with every TLS switch on (SUPERVISOR_PD_TLS=auto follows them and generates the
pod's certificates). Inference through supervisor_pd's port and, with a client certificate, on the
Coordinator's own port; every MindIE listener refuses a client without a certificate, one with a
certificate of another CA, and TLS 1.2."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import certs
from tests.superstack import SupervisorRun, running


def mindie_defaults(files: dict[str, dict[str, Any]]) -> None:
    """What MindIE ships: every switch on, interCommTLSEnabled absent (read as true)."""
    server = files["config.json"]["ServerConfig"]
    server["httpsEnabled"] = True
    server.pop("interCommTLSEnabled", None)
    for name in ("ms_controller.json", "ms_coordinator.json"):
        tls = files[name]["tls_config"]
        for key in list(tls):
            if key.endswith("_tls_enable"):
                tls[key] = True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisorRun]:
    with running(tmp_path_factory.mktemp("tls"), change=mindie_defaults) as run:
        yield run


def folder(run: SupervisorRun) -> Path:
    plan = json.loads((run.out / "ms_coordinator.json").read_text())
    return Path(plan["tls_config"]["status_tls_items"]["ca_cert"]).parent


def context(
    run: SupervisorRun, cert: tuple[Path, Path] | str | None = "pod", version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    """A client context trusting the pod CA; `cert`: the pod's certificate, another, or None."""
    files = folder(run)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(files / "ca.pem"))
    if cert == "pod":
        ctx.load_cert_chain(str(files / "cert.pem"), str(files / "cert.key.pem"))
    elif isinstance(cert, tuple):
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def get(port: int, path: str, ctx: ssl.SSLContext, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def listeners(run: SupervisorRun) -> dict[str, int]:
    found = {
        "coordinator predict": run.ports.predict,
        "coordinator manage": run.ports.manage,
        "coordinator status": run.ports.status,
        "coordinator metrics": run.ports.external,
        "controller": run.ports.controller,
    }
    for index in range(1, 5):
        server = run.server_config(index)
        for field in ("port", "managementPort", "metricsPort"):
            found[f"server {index} {field}"] = server[field]
    return found


CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": True}).encode()


def test_the_stack_is_ready_with_every_link_encrypted(stack: SupervisorRun) -> None:
    status = stack.status()
    assert status["phase"] == "ready"
    assert all(p["state"] == "running" and p["restarts"] == 0 for p in status["processes"]), status["processes"]
    for index in range(1, 5):
        server = stack.server_config(index)
        assert server["httpsEnabled"] is True and server["interCommTLSEnabled"] is True
    # The pod's gauges read every Server's /v1/status over mutual TLS: a KV-cache use below 1
    # (1 when no decode Server answered) says the decode Servers did.
    code, body = stack.api("GET", "/metrics")
    assert code == 200
    assert b"\nsupervisor_pd_pod_kv_cache_usage_ratio 0.0\n" in body


def test_a_streamed_chat_through_supervisor_pds_port(stack: SupervisorRun) -> None:
    code, body = stack.api(
        "POST", "/v1/chat/completions", json.loads(CHAT), headers={"Content-Type": "application/json"}
    )
    assert code == 200, body
    assert body.rstrip().endswith(b"data: [DONE]")


def test_a_streamed_chat_on_the_coordinators_port_with_the_pod_certificate(stack: SupervisorRun) -> None:
    code, body = get(stack.ports.predict, "/v1/chat/completions", context(stack), "POST", CHAT)
    assert code == 200, body
    assert body.rstrip().endswith(b"data: [DONE]")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_cert_key_and_cacert(stack: SupervisorRun) -> None:
    files = folder(stack)
    argv = ["curl", "-sS", "-N", "--max-time", "20", "--cacert", str(files / "ca.pem")]
    url = f"https://127.0.0.1:{stack.ports.predict}/v1/chat/completions"
    data = ["-H", "Content-Type: application/json", "-d", CHAT.decode(), url]
    done = subprocess.run(
        [*argv, "--cert", str(files / "cert.pem"), "--key", str(files / "cert.key.pem"), *data],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "data: [DONE]" in done.stdout
    refused = subprocess.run([*argv, *data], capture_output=True, text=True, timeout=30, check=False)
    assert refused.returncode != 0
    assert "data:" not in refused.stdout


def refused(port: int, ctx: ssl.SSLContext) -> bool:
    """The handshake or the first exchange fails (in TLS 1.3 the server's verdict on the client's
    certificate arrives after the client's side of the handshake is done)."""
    try:
        get(port, "/", ctx)
    except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError):
        return True
    return False


def test_every_listener_refuses_a_client_without_a_certificate(stack: SupervisorRun) -> None:
    ctx = context(stack, cert=None)
    accepted = [name for name, port in listeners(stack).items() if not refused(port, ctx)]
    assert accepted == []


def test_every_listener_refuses_a_certificate_of_another_ca(stack: SupervisorRun, tmp_path: Path) -> None:
    other = certs.make_leaf(certs.make_ca(name="not the pod's CA"))
    cert = certs.write_pem(tmp_path / "other.pem", other.cert_pem, 0o400)
    key = certs.write_pem(tmp_path / "other.key.pem", other.key_pem(), 0o400)
    ctx = context(stack, cert=(cert, key))
    accepted = [name for name, port in listeners(stack).items() if not refused(port, ctx)]
    assert accepted == []


def test_every_listener_refuses_tls_1_2(stack: SupervisorRun) -> None:
    ctx = context(stack, version=ssl.TLSVersion.TLSv1_2)
    accepted = [name for name, port in listeners(stack).items() if not refused(port, ctx)]
    assert accepted == []


def test_a_good_client_is_answered_by_every_listener(stack: SupervisorRun) -> None:
    ctx = context(stack)
    for name, port in listeners(stack).items():
        code, _ = get(port, "/v1/health" if "controller" in name or "status" in name else "/metrics", ctx)
        assert code < 500 or name == "coordinator predict", (name, code)


def test_plain_http_to_a_tls_listener_gets_no_answer(stack: SupervisorRun) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stack.ports.predict, timeout=5)
    try:
        conn.request("POST", "/v1/chat/completions", body=CHAT)
        status = conn.getresponse().status
    except (ConnectionError, http.client.HTTPException, OSError):
        status = None
    finally:
        conn.close()
    assert status in (None, 400)


# --- TLS on supervisor_pd's own port ----------------------------------------------------------------


def test_a_bad_port_certificate_stops_run_before_anything_starts(tmp_path: Path) -> None:
    ca = certs.make_ca()
    cert = certs.write_pem(tmp_path / "pki" / "server.pem", certs.make_leaf(ca).cert_pem, 0o400)
    not_its_key = certs.write_pem(tmp_path / "pki" / "other.key.pem", certs.make_leaf(ca).key_pem(), 0o400)
    env = {"SUPERVISOR_PD_API_TLS_CERT": str(cert), "SUPERVISOR_PD_API_TLS_KEY": str(not_its_key)}
    stack = SupervisorRun(tmp_path, env=env)
    process = stack.start()
    try:
        assert process.wait(30) == 2
        assert "SUPERVISOR_PD_API_TLS_CERT" in stack.log()
        assert not stack.out.exists()
    finally:
        stack.cleanup()


def test_mounted_certificates_with_a_crl_serve(tmp_path: Path) -> None:
    """SUPERVISOR_PD_TLS=mounted: a site's CA, pod certificate and CRL from a read-only mount (a
    Secret's default mode 0644 included) serve every link as generated ones do."""
    ca = certs.make_ca(name="site CA")
    leaf = certs.make_leaf(ca, ips=["127.0.0.1"])
    mount = tmp_path / "mnt"
    certs.write_pem(mount / "ca" / "ca.pem", ca.cert_pem, 0o644)
    certs.write_pem(mount / "certs" / "server.pem", leaf.cert_pem, 0o644)
    certs.write_pem(mount / "keys" / "server.key.pem", leaf.key_pem(), 0o644)
    certs.write_pem(mount / "ca" / "crl.pem", certs.make_crl(ca, revoked=[certs.make_leaf(ca)]), 0o644)
    mount.chmod(0o555)
    env = {"SUPERVISOR_PD_TLS": "mounted", "SUPERVISOR_PD_TLS_MOUNT": str(mount)}
    try:
        serve_mounted(tmp_path, env, leaf)
    finally:
        mount.chmod(0o755)


def serve_mounted(tmp_path: Path, env: dict[str, str], leaf: certs.Issued) -> None:
    with running(tmp_path / "run", env=env) as run:
        items = json.loads((run.out / "ms_coordinator.json").read_text())["tls_config"]["request_server_tls_items"]
        assert Path(items["tls_cert"]).read_bytes() == leaf.cert_pem
        assert items["tls_crl"].endswith("crl.pem")
        code, body = get(run.ports.predict, "/v1/chat/completions", context(run), "POST", CHAT)
        assert code == 200, body
        code, body = run.api(
            "POST", "/v1/chat/completions", json.loads(CHAT), headers={"Content-Type": "application/json"}
        )
        assert code == 200, body


def test_an_old_kmc_image_serves_on_material_from_mindies_tool(tmp_path: Path) -> None:
    """An old (KMC) MindIE image: the simulated config_mindie_server_tls_cert.py makes the pod
    certificate as the MindIE PD guide does (import_cert, gen_cert); mounted with a plaintext client
    certificate for supervisor_pd, the stack comes up on the old generation's fields and serves."""
    from tests.helpers import sim_host
    from tests.integration.simulator.test_tls_kmc import make_kmc_set

    host = sim_host(tmp_path, "800i-a2")
    work = tmp_path / "tool"
    work.mkdir()
    files, ca = make_kmc_set(host.root, work)
    mine = certs.make_leaf(ca, name="supervisor-pd")
    mount = tmp_path / "mnt"
    layout = {
        "ca/ca.pem": files["ca"].read_bytes(),
        "certs/server.pem": files["cert"].read_bytes(),
        "keys/server.key.pem": files["key"].read_bytes(),
        "pass/key_pwd.txt": files["passwd"].read_bytes(),
        "ksf/ksfa": files["ksfa"].read_bytes(),
        "ksf/ksfb": files["ksfb"].read_bytes(),
        "client/cert.pem": mine.cert_pem,
        "client/cert.key.pem": mine.key_pem(),
    }
    for name, data in layout.items():
        certs.write_pem(mount / name, data, 0o400)

    def old_image(files_: dict[str, dict[str, Any]]) -> None:
        """As an old image ships its configs: keystore fields in the Server's and every Motor item."""
        mindie_defaults(files_)
        files_["config.json"]["ServerConfig"]["kmcKsfMaster"] = "tools/pmt/master/ksfa"
        files_["config.json"]["ServerConfig"]["kmcKsfStandby"] = "tools/pmt/standby/ksfb"
        for name, keys in (("ms_controller.json", "kmc_ksf_"), ("ms_coordinator.json", "kmcKsf")):
            for key, items in files_[name]["tls_config"].items():
                if key.endswith("_tls_items"):
                    master, standby = ("master", "standby") if keys == "kmc_ksf_" else ("Master", "Standby")
                    items[keys + master] = "./tools/pmt/master/ksfa"
                    items[keys + standby] = "./tools/pmt/standby/ksfb"

    env = {"SUPERVISOR_PD_TLS": "mounted", "SUPERVISOR_PD_TLS_MOUNT": str(mount)}
    with running(tmp_path / "run", env=env, change=old_image) as run:
        assert run.server_config(1)["kmcKsfMaster"] == "security/supervisor-pd/ksfa"
        code, body = run.api(
            "POST", "/v1/chat/completions", json.loads(CHAT), headers={"Content-Type": "application/json"}
        )
        assert code == 200, body
        assert body.rstrip().endswith(b"data: [DONE]")
