"""`supervisor-pd plan` with TLS, as a user runs it: the certificates it makes or copies, and every
refusal a MindIE binary would make at its start, made at plan time instead (exit 2, nothing written)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests import certs
from tests.helpers import SAMPLE_CONF, base_env, run_cli

MOUNT_FILES = {"ca": "ca/ca.pem", "cert": "certs/server.pem", "key": "keys/server.key.pem", "crl": "ca/crl.pem"}


def plan(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = env if env is not None else base_env(tmp_path)
    return run_cli(["plan", "--simulate", "800i-a2", "--output", str(tmp_path / "out"), "--json", *extra], environ)


def home(tmp_path: Path) -> Path:
    """The simulated Server's home: the folder above its binary."""
    return tmp_path / "state" / "sim" / "800i-a2"


def mount(tmp_path: Path, ca: certs.Issued, leaf: certs.Issued, key_mode: int = 0o400, **extra: bytes) -> Path:
    folder = tmp_path / "mnt"
    certs.write_pem(folder / MOUNT_FILES["ca"], ca.cert_pem, 0o444)
    certs.write_pem(folder / MOUNT_FILES["cert"], leaf.cert_pem, 0o444)
    certs.write_pem(folder / MOUNT_FILES["key"], leaf.key_pem(), key_mode)
    for name, data in extra.items():
        certs.write_pem(folder / MOUNT_FILES[name], data, 0o444)
    return folder


def mounted_env(tmp_path: Path, folder: Path) -> dict[str, str]:
    env = base_env(tmp_path)
    env.update(SUPERVISOR_PD_TLS="mounted", SUPERVISOR_PD_TLS_MOUNT=str(folder))
    return env


def refused(result: subprocess.CompletedProcess[str], tmp_path: Path, *needles: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    line = result.stderr.strip()
    for needle in needles:
        assert needle in line, line
    assert not (tmp_path / "out").exists()
    assert not (home(tmp_path) / "security").exists()
    return line


def test_generate_makes_a_pod_certificate_mindie_accepts(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    env.update(SUPERVISOR_PD_TLS="generate", POD_IP="127.0.0.2")
    result = plan(tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    tls = json.loads(result.stdout)["tls"]
    folder = Path(tls["folder"])
    assert folder == home(tmp_path).resolve() / "security" / "supervisor-pd"
    for name in ("ca.pem", "cert.pem", "cert.key.pem", "key_pwd.txt"):
        info = (folder / name).lstat()
        assert stat.S_IMODE(info.st_mode) == 0o400, name
        assert info.st_uid == os.getuid()
    assert (folder / "key_pwd.txt").read_bytes().strip()  # empty crashes the Controller
    leaf = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    leaf.verify_directly_issued_by(ca)
    assert leaf.version is x509.Version.v3
    public = leaf.public_key()
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size >= 3072
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"127.0.0.1", "127.0.0.2"} <= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.total_seconds() <= 168 * 3600 + 600
    server = json.loads((tmp_path / "out" / "config1.json").read_text())["ServerConfig"]
    assert (home(tmp_path) / server["tlsCert"]).resolve() == folder / "cert.pem"
    assert all(link["encrypted"] for link in tls["links"])


def test_generate_signs_with_a_mounted_site_ca(tmp_path: Path) -> None:
    ca = certs.make_ca(name="site CA")
    certs.write_pem(tmp_path / "mnt" / "ca" / "ca.pem", ca.cert_pem, 0o444)
    certs.write_pem(tmp_path / "mnt" / "ca" / "ca.key.pem", ca.key_pem(), 0o400)
    env = base_env(tmp_path)
    env.update(SUPERVISOR_PD_TLS="generate", SUPERVISOR_PD_TLS_MOUNT=str(tmp_path / "mnt"))
    result = plan(tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    folder = Path(json.loads(result.stdout)["tls"]["folder"])
    leaf = x509.load_pem_x509_certificate((folder / "cert.pem").read_bytes())
    leaf.verify_directly_issued_by(ca.cert)
    assert (folder / "ca.pem").read_bytes() == ca.cert_pem


def test_mounted_certificates_and_crl_are_copied_with_mindies_modes(tmp_path: Path) -> None:
    ca = certs.make_ca()
    leaf = certs.make_leaf(ca)
    # A Secret volume's default mode: the key readable by all. Copied 0400; the plan warns.
    folder = mount(tmp_path, ca, leaf, key_mode=0o644, crl=certs.make_crl(ca))
    result = plan(tmp_path, env=mounted_env(tmp_path, folder))
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    copied = Path(data["tls"]["folder"])
    assert (copied / "cert.key.pem").read_bytes() == leaf.key_pem()
    assert stat.S_IMODE((copied / "cert.key.pem").stat().st_mode) == 0o400
    assert any("defaultMode: 0400" in notice["message"] for notice in data["notices"])
    # A mounted CRL is named by every CRL field of every file.
    server = json.loads((tmp_path / "out" / "config1.json").read_text())["ServerConfig"]
    assert server["tlsCrlFiles"] == server["interCommTlsCrlFiles"] == ["crl.pem"]
    items = json.loads((tmp_path / "out" / "ms_coordinator.json").read_text())["tls_config"]["status_tls_items"]
    assert items["tls_crl"] == str(copied / "crl.pem")


def test_mounted_material_mindie_would_refuse_stops_the_plan_with_nothing_written(tmp_path: Path) -> None:
    """One refusal through the command as a user meets it (exit 2, one line, nothing written); every
    kind of refusal is in tests/integration/test_tls_inputs.py."""
    ca = certs.make_ca()
    folder = mount(tmp_path, ca, certs.make_leaf(ca, key="rsa2048"))
    refused(plan(tmp_path, env=mounted_env(tmp_path, folder)), tmp_path, "certs/server.pem", "2048-bit RSA key")


def kmc_conf(tmp_path: Path) -> Path:
    """The sample configs as an old MindIE image ships them: KMC keystore fields present."""
    conf = tmp_path / "conf"
    shutil.copytree(SAMPLE_CONF, conf)
    data = json.loads((conf / "config.json").read_text())
    data["ServerConfig"]["kmcKsfMaster"] = "tools/pmt/master/ksfa"
    data["ServerConfig"]["kmcKsfStandby"] = "tools/pmt/standby/ksfb"
    (conf / "config.json").write_text(json.dumps(data))
    return conf


def kmc_mount(tmp_path: Path, client: bool = True) -> tuple[Path, certs.Issued]:
    """What MindIE's config_mindie_server_tls_cert.py leaves (the key encrypted, its password as KMC
    ciphertext, the keystore), plus supervisor_pd's plaintext client certificate."""
    ca = certs.make_ca()
    leaf = certs.make_leaf(ca)
    folder = tmp_path / "mnt"
    certs.write_pem(folder / MOUNT_FILES["ca"], ca.cert_pem, 0o444)
    certs.write_pem(folder / MOUNT_FILES["cert"], leaf.cert_pem, 0o444)
    certs.write_pem(folder / MOUNT_FILES["key"], leaf.key_pem(password=b"random-by-gen-cert"), 0o400)
    certs.write_pem(folder / "pass" / "key_pwd.txt", b"KMC-CIPHERTEXT-OPAQUE\n", 0o400)
    certs.write_pem(folder / "ksf" / "ksfa", b"keystore master", 0o400)
    certs.write_pem(folder / "ksf" / "ksfb", b"keystore standby", 0o400)
    if client:
        mine = certs.make_leaf(ca, name="supervisor-pd")
        certs.write_pem(folder / "client" / "cert.pem", mine.cert_pem, 0o444)
        certs.write_pem(folder / "client" / "cert.key.pem", mine.key_pem(), 0o400)
    return folder, leaf


def test_an_old_kmc_image_with_mounted_material_gets_its_keystore_fields(tmp_path: Path) -> None:
    folder, leaf = kmc_mount(tmp_path)
    result = plan(tmp_path, "--conf-dir", str(kmc_conf(tmp_path)), env=mounted_env(tmp_path, folder))
    assert result.returncode == 0, result.stderr
    tls = json.loads(result.stdout)["tls"]
    assert tls["generation"] == "kmc"
    copied = Path(tls["folder"])
    assert (copied / "key_pwd.txt").read_bytes() == b"KMC-CIPHERTEXT-OPAQUE\n"
    assert (copied / "ksfa").read_bytes() == b"keystore master"
    assert (copied / "cert.pem").read_bytes() == leaf.cert_pem
    assert stat.S_IMODE((copied / "client.key.pem").stat().st_mode) == 0o400
    server = json.loads((tmp_path / "out" / "config1.json").read_text())["ServerConfig"]
    assert server["tlsPkPwd"] == server["interCommPkPwd"] == "security/supervisor-pd/key_pwd.txt"
    assert server["kmcKsfMaster"] == "security/supervisor-pd/ksfa"
    controller = json.loads((tmp_path / "out" / "ms_controller.json").read_text())["tls_config"]
    assert controller["request_server_tls_items"]["kmc_ksf_master"] == str(copied / "ksfa")
    coordinator = json.loads((tmp_path / "out" / "ms_coordinator.json").read_text())["tls_config"]
    assert coordinator["status_tls_items"]["kmcKsfStandby"] == str(copied / "ksfb")
    assert tls["hseceasy_path"].endswith("/lib")
