"""Older (KMC) MindIE images, imitated: the simulated config_mindie_server_tls_cert.py makes a
keystore and password files holding simulated KMC ciphertext (supervisor_pd/simulator/kmc.py,
certtool.py), and configs naming a keystore make each binary require it and that ciphertext."""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from supervisor_pd.simulator import kmc
from tests.certs import Issued, make_ca, make_leaf, write_pem
from tests.integration.simulator.tlsstack import (
    TlsStack,
    client_context,
    handshake,
    load,
    save,
    server_tls_fields,
    set_motor_pairs,
)
from tests.simstack import wait_until

CA_PASSWORD = "ca-secret-1"


def run_tool(host: Path, folder: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    tool = host / "bin" / "config_mindie_server_tls_cert.py"
    return subprocess.run(
        [sys.executable, str(tool), *args], cwd=folder, input=stdin, capture_output=True, text=True, timeout=60
    )


def make_kmc_set(host: Path, folder: Path, ips: str = "127.0.0.1") -> tuple[dict[str, Path], Issued]:
    """The guide's flow: a CA with an encrypted key, import_cert, then gen_cert. Returns the files
    and the CA (for test clients)."""
    ca = make_ca()
    write_pem(folder / "security" / "ca" / "ca.pem", ca.cert_pem, 0o400)
    write_pem(folder / "security" / "ca" / "ca.key.pem", ca.key_pem(CA_PASSWORD.encode()), 0o400)
    done = run_tool(
        host, folder, "./security/ca", "import_cert", "./security/ca/ca.pem", "./security/ca/ca.key.pem",
        stdin=f"{CA_PASSWORD}\n{CA_PASSWORD}\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (folder / "cert_info.json").write_text(
        json.dumps(
            {
                "subject": "subject_name",
                "expired_time": 365,
                "serial_number": 123,
                "req_distinguished_name": {"C": "CN", "O": "tests", "CN": "MindIE"},
                "alt_names": {"IP": [], "DNS": ["localhost"]},
            }
        )
    )
    (folder / "gen_cert.json").write_text(
        json.dumps(
            {
                "ca_cert": "./security/ca/ca.pem",
                "ca_key": "./security/ca/ca.key.pem",
                "ca_key_pwd": "./security/ca/ca_passwd.txt",
                "cert_config": "./cert_info.json",
                "output_path": "./gen_cert_output",
                "kmc_ksf_master": "./tools/pmt/master/ksfa",
                "kmc_ksf_standby": "./tools/pmt/standby/ksfb",
            }
        )
    )
    done = run_tool(host, folder, "./", "gen_cert", "./gen_cert.json", f"--ip={ips}")
    assert done.returncode == 0, done.stderr
    output = folder / "gen_cert_output"
    files = {
        "ca": folder / "security" / "ca" / "ca.pem",
        "cert": output / "cert.pem",
        "key": output / "cert.key.pem",
        "passwd": output / "cert_passwd.txt",
        "ksfa": folder / "tools" / "pmt" / "master" / "ksfa",
        "ksfb": folder / "tools" / "pmt" / "standby" / "ksfb",
    }
    return files, ca


def a_client(ca: Issued, folder: Path) -> ssl.SSLContext:
    return client_context(ca, make_leaf(ca, name="client"), folder)


def test_the_tool_makes_a_keystore_ciphertext_and_a_certificate_that_opens_with_it(
    make_tls_stack, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    files, _ca = make_kmc_set(stack.host, tmp_path, ips="127.0.0.1,10.0.0.7")
    assert kmc.is_ciphertext((tmp_path / "security" / "ca" / "ca_passwd.txt").read_bytes())
    password = kmc.decrypt(files["passwd"].read_bytes(), files["ksfa"], files["ksfb"])
    serialization.load_pem_private_key(files["key"].read_bytes(), password)  # opens with it
    cert = x509.load_pem_x509_certificate(files["cert"].read_bytes())
    addresses = {
        str(ip)
        for ip in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.IPAddress
        )
    }
    assert addresses == {"127.0.0.1", "10.0.0.7"}
    other = tmp_path / "other"
    other.mkdir()
    write_pem(other / "ksfa", kmc.new_keystore(), 0o600)
    with pytest.raises(kmc.KmcError):  # another keystore does not open it
        kmc.decrypt(files["passwd"].read_bytes(), other / "ksfa", other / "ksfa")
    wrong = run_tool(stack.host, tmp_path, "./security/ca", "import_cert", "./security/ca/ca.pem",
                     "./security/ca/ca.key.pem", stdin="bad-password\nbad-password\n")  # fmt: skip
    assert wrong.returncode == 1


def kmc_controller(stack: TlsStack, files: dict[str, Path], spelling: tuple[str, str]) -> None:
    folder = stack.tmp / "controller"
    folder.mkdir(exist_ok=True)
    base = folder / "security" / "http_server"
    for name, mode in (
        ("ca", 0o400),
        ("cert", 0o400),
        ("key", 0o400),
        ("passwd", 0o400),
        ("ksfa", 0o600),
        ("ksfb", 0o600),
    ):
        write_pem(base / name, files[name].read_bytes(), mode)
    data = load(stack.out / "ms_controller.json")
    data["tls_config"]["http_server_tls_enable"] = True
    data["tls_config"]["http_server_tls_items"] = {
        "ca_cert": "./security/http_server/ca",
        "tls_cert": "./security/http_server/cert",
        "tls_key": "./security/http_server/key",
        "tls_passwd": "./security/http_server/passwd",
        "tls_crl": "",
        spelling[0]: "./security/http_server/ksfa",
        spelling[1]: "./security/http_server/ksfb",
    }
    save(stack.out / "ms_controller.json", data)


def test_an_older_controller_opens_its_key_with_kmc(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    files, ca = make_kmc_set(stack.host, tmp_path)
    kmc_controller(stack, files, ("kmc_ksf_master", "kmc_ksf_standby"))
    stack.start_controller()
    client = a_client(ca, tmp_path)
    wait_until(lambda: handshake(stack.ports.controller, client) == "ok", timeout=30, what="the probe over TLS")


@pytest.mark.parametrize(
    "case",
    ["plaintext password file", "keystore file missing", "the Coordinator's spelling", "keystore mode 0640"],
)
def test_an_older_controller_refuses_what_kmc_would(make_tls_stack, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    files, _ca = make_kmc_set(stack.host, tmp_path)
    spelling = (
        ("kmcKsfMaster", "kmcKsfStandby")
        if case == "the Coordinator's spelling"
        else ("kmc_ksf_master", "kmc_ksf_standby")
    )
    kmc_controller(stack, files, spelling)
    base = stack.tmp / "controller" / "security" / "http_server"
    if case == "plaintext password file":
        write_pem(base / "passwd", b"the-password\n", 0o400)
    elif case == "keystore file missing":
        (base / "ksfb").unlink()
    elif case == "keystore mode 0640":
        (base / "ksfa").chmod(0o640)
    process = stack.start_controller()
    assert process.wait(30) == 1
    expected = {
        "plaintext password file": "Decrypt TLS  key password failed",
        "keystore file missing": "Failed to check the path of KMC standby file",
        "the Coordinator's spelling": "missing the expected key 'kmc_ksf_master'",
        "keystore mode 0640": "is 640, but required no greater than 600",
    }[case]
    assert expected in stack.log("controller")


def kmc_server(stack: TlsStack, files: dict[str, Path], password_file: bytes | None = None) -> None:
    home = stack.host
    secure = home / "security"
    write_pem(secure / "ca" / "ca.pem", files["ca"].read_bytes(), 0o400)
    for plane in ("business", "management", "metrics"):
        write_pem(secure / "certs" / f"{plane}.pem", files["cert"].read_bytes(), 0o400)
        write_pem(secure / "keys" / f"{plane}.key.pem", files["key"].read_bytes(), 0o400)
    write_pem(secure / "pass" / "key_pwd.txt", password_file or files["passwd"].read_bytes(), 0o400)
    write_pem(secure / "kmc" / "ksfa", files["ksfa"].read_bytes(), 0o600)
    write_pem(secure / "kmc" / "ksfb", files["ksfb"].read_bytes(), 0o600)
    fields = server_tls_fields(https=True, intercomm=False) | {
        "kmcKsfMaster": "security/kmc/ksfa",
        "kmcKsfStandby": "security/kmc/ksfb",
        "tlsPkPwd": "security/pass/key_pwd.txt",
        "managementTlsPkPwd": "security/pass/key_pwd.txt",
        "metricsTlsPkPwd": "security/pass/key_pwd.txt",
    }
    stack.edit_servers(lambda server: server.update(fields))


def test_an_older_server_opens_its_keys_with_kmc(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    files, ca = make_kmc_set(stack.host, tmp_path)
    kmc_server(stack, files)
    stack.start_server(1)
    client = a_client(ca, tmp_path)
    port = stack.server_ports(1)["management"]
    wait_until(lambda: handshake(port, client) == "ok", what="the management listener over TLS")


def test_an_older_server_refuses_a_plaintext_key_password(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    files, _ca = make_kmc_set(stack.host, tmp_path)
    password = kmc.decrypt(files["passwd"].read_bytes(), files["ksfa"], files["ksfb"])
    kmc_server(stack, files, password_file=password)
    process = stack.start_server(1)
    assert process.wait(30) == -signal.SIGKILL
    assert "Hse cryptor helper decrypt failed" in stack.log("server-1")


def test_an_older_server_checks_the_keystore_at_config_time(make_tls_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    files, _ca = make_kmc_set(stack.host, tmp_path)
    kmc_server(stack, files)
    shutil.rmtree(stack.host / "security" / "kmc")
    process = stack.start_server(1)
    assert process.wait(30) == 1
    assert "The serverConfig.kmcKsfMaster path is invalid" in stack.log("server-1")


def test_an_older_coordinator_requires_its_own_spelling(make_tls_stack) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    set_motor_pairs(stack.out / "ms_coordinator.json", stack.tmp, stack.pki, {"status": True})
    data = load(stack.out / "ms_coordinator.json")
    data["tls_config"]["status_tls_items"] |= {"kmc_ksf_master": "./a", "kmc_ksf_standby": "./b"}
    save(stack.out / "ms_coordinator.json", data)
    process = stack.start_coordinator()
    assert process.wait(30) == 1
    assert "missing the expected key 'kmcKsfMaster'" in stack.log("coordinator")


@pytest.mark.parametrize("plaintext", [False, True], ids=["ciphertext", "plaintext"])
def test_an_older_servers_link_always_opens_its_key_with_kmc(make_tls_stack, tmp_path: Path, plaintext: bool) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    files, _ca = make_kmc_set(stack.host, tmp_path)
    grpc = stack.host / "security" / "grpc"
    write_pem(grpc / "ca.pem", files["ca"].read_bytes(), 0o400)
    write_pem(grpc / "cert.pem", files["cert"].read_bytes(), 0o400)
    write_pem(grpc / "key.pem", files["key"].read_bytes(), 0o400)
    secret = kmc.decrypt(files["passwd"].read_bytes(), files["ksfa"], files["ksfb"])
    write_pem(grpc / "pwd.txt", secret if plaintext else files["passwd"].read_bytes(), 0o400)
    write_pem(grpc / "ksfa", files["ksfa"].read_bytes(), 0o600)
    write_pem(grpc / "ksfb", files["ksfb"].read_bytes(), 0o600)
    fields = server_tls_fields(https=False, intercomm=True) | {
        "interCommTlsCaPath": "security/grpc/",
        "interCommTlsCaFiles": ["ca.pem"],
        "interCommTlsCert": "security/grpc/cert.pem",
        "interCommPk": "security/grpc/key.pem",
        "interCommPkPwd": "security/grpc/pwd.txt",
        "kmcKsfMaster": "security/grpc/ksfa",
        "kmcKsfStandby": "security/grpc/ksfb",
    }
    stack.edit_servers(lambda server: server.update(fields))
    stack.start_all()
    stack.wait_ready(60)
    code, body = stack.predict("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    if plaintext:
        assert code == 500
        assert "Hse cryptor helper decrypt failed" in body.decode()
    else:
        assert code == 200, body
