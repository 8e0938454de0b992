"""Older (KMC) MindIE images, imitated: the simulated config_mindie_server_tls_cert.py makes a
keystore and password files holding simulated KMC ciphertext (supervisor_pd/simulator/kmc.py,
certtool.py), and configs naming a keystore make each binary require it and that ciphertext.

The tool runs twice for the whole module (`made`); the binaries start where they must show that
they open their keys with what it made. What each binary refuses (plaintext, a missing or too
open keystore, the other binary's spelling) is in tests/unit/simulator/test_tls_refusals.py,
in-process; what such a refusal does to each process is shown in test_tls_server.py,
test_tls_motor.py and test_tls_stack.py."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from supervisor_pd.simulator import kmc
from supervisor_pd.simulator.host import build_sim_host
from supervisor_pd.simulator.profiles import PROFILES
from tests.certs import Issued, make_ca, make_leaf, write_pem
from tests.integration.simulator.tlsstack import (
    TlsStack,
    client_context,
    handshake,
    load,
    save,
    server_tls_fields,
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


@dataclass(frozen=True)
class Made:
    """What the tool made, once for the module: the guide's flow with a certificate for
    127.0.0.1 and 10.0.0.7."""

    folder: Path
    host: Path
    files: dict[str, Path]
    ca: Issued


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    host = build_sim_host(PROFILES["800i-a2"], tmp_path_factory.mktemp("kmc-host") / "host").root
    folder = tmp_path_factory.mktemp("kmc-set")
    files, ca = make_kmc_set(host, folder, ips="127.0.0.1,10.0.0.7")
    return Made(folder, host, files, ca)


def a_client(ca: Issued, folder: Path) -> ssl.SSLContext:
    return client_context(ca, make_leaf(ca, name="client"), folder)


def test_the_tool_makes_a_keystore_ciphertext_and_a_certificate_that_opens_with_it(made: Made, tmp_path: Path) -> None:
    files = made.files
    assert kmc.is_ciphertext((made.folder / "security" / "ca" / "ca_passwd.txt").read_bytes())
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
    write_pem(tmp_path / "security" / "ca" / "ca.pem", made.ca.cert_pem, 0o400)
    write_pem(tmp_path / "security" / "ca" / "ca.key.pem", made.ca.key_pem(CA_PASSWORD.encode()), 0o400)
    wrong = run_tool(made.host, tmp_path, "./security/ca", "import_cert", "./security/ca/ca.pem",
                     "./security/ca/ca.key.pem", stdin="bad-password\nbad-password\n")  # fmt: skip
    assert wrong.returncode == 1
    assert not (tmp_path / "security" / "ca" / "ca_passwd.txt").exists()


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


def test_an_older_controller_opens_its_key_with_kmc(make_tls_stack, made: Made, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    kmc_controller(stack, made.files, ("kmc_ksf_master", "kmc_ksf_standby"))
    stack.start_controller()
    client = a_client(made.ca, tmp_path)
    wait_until(lambda: handshake(stack.ports.controller, client) == "ok", timeout=30, what="the probe over TLS")


def kmc_server(stack: TlsStack, files: dict[str, Path]) -> None:
    home = stack.host
    secure = home / "security"
    write_pem(secure / "ca" / "ca.pem", files["ca"].read_bytes(), 0o400)
    for plane in ("business", "management", "metrics"):
        write_pem(secure / "certs" / f"{plane}.pem", files["cert"].read_bytes(), 0o400)
        write_pem(secure / "keys" / f"{plane}.key.pem", files["key"].read_bytes(), 0o400)
    write_pem(secure / "pass" / "key_pwd.txt", files["passwd"].read_bytes(), 0o400)
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


def test_an_older_server_opens_its_keys_with_kmc(make_tls_stack, made: Made, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack: TlsStack = make_tls_stack()
    kmc_server(stack, made.files)
    stack.start_server(1)
    client = a_client(made.ca, tmp_path)
    port = stack.server_ports(1)["management"]
    wait_until(lambda: handshake(port, client) == "ok", what="the management listener over TLS")


def test_an_older_servers_link_opens_its_key_with_kmc(make_tls_stack, made: Made) -> None:  # type: ignore[no-untyped-def]
    # Always with KMC: plaintext in interCommPkPwd fails the hand-off (in-process in
    # tests/unit/simulator/test_tls_refusals.py).
    files = made.files
    stack: TlsStack = make_tls_stack()
    grpc = stack.host / "security" / "grpc"
    write_pem(grpc / "ca.pem", files["ca"].read_bytes(), 0o400)
    write_pem(grpc / "cert.pem", files["cert"].read_bytes(), 0o400)
    write_pem(grpc / "key.pem", files["key"].read_bytes(), 0o400)
    write_pem(grpc / "pwd.txt", files["passwd"].read_bytes(), 0o400)
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
    assert code == 200, body
