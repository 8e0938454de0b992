"""Mounted certificates checked as MindIE's binaries will check them (certs/inputs.py), in-process:
every refusal a Server, Controller or Coordinator would make at its start, named by file and rule.
tests/e2e/test_tls_plan_cli.py runs one of them through the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor_pd.certs.inputs import load_tls_inputs
from supervisor_pd.errors import InputError
from supervisor_pd.settings import Settings
from tests import certs, factories

MOUNT_FILES = {"ca": "ca/ca.pem", "cert": "certs/server.pem", "key": "keys/server.key.pem", "crl": "ca/crl.pem"}


def mount(tmp_path: Path, ca: certs.Issued, leaf: certs.Issued, **extra: bytes) -> Path:
    folder = tmp_path / "mnt"
    certs.write_pem(folder / MOUNT_FILES["ca"], ca.cert_pem, 0o444)
    certs.write_pem(folder / MOUNT_FILES["cert"], leaf.cert_pem, 0o444)
    certs.write_pem(folder / MOUNT_FILES["key"], leaf.key_pem(), 0o400)
    for name, data in extra.items():
        certs.write_pem(folder / MOUNT_FILES[name], data, 0o444)
    return folder


def problem(folder: Path) -> InputError:
    found = load_tls_inputs(Settings(tls="mounted", tls_mount=folder), factories.inputs(), {"PATH": "/nowhere"})
    assert isinstance(found.mounted, InputError), found.mounted
    return found.mounted


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("rsa2048", ("certs/server.pem", "2048-bit RSA key", "at least 3072")),
        ("ec256", ("certs/server.pem", "EC key")),
        ("expired", ("certs/server.pem", "expired")),
        ("not-yet-valid", ("certs/server.pem", "not valid yet")),
        ("v1", ("certs/server.pem", "X.509 v3")),
        ("other-ca", ("certs/server.pem", "not signed by the CA")),
        ("wrong-key", ("certs/server.pem", "does not belong to the private key")),
        ("encrypted-key", ("keys/server.key.pem", "is encrypted")),
        ("stale-crl", ("ca/crl.pem", "past its nextUpdate")),
        ("revoked", ("certs/server.pem", "revoked")),
        ("missing-ca", ("ca/ca.pem", "is missing")),
    ],
)
def test_mounted_material_mindie_would_refuse_is_refused(tmp_path: Path, case: str, needles: tuple[str, ...]) -> None:
    ca = certs.make_ca()
    leaf = certs.make_leaf(ca)
    extra: dict[str, bytes] = {}
    if case == "rsa2048":
        leaf = certs.make_leaf(ca, key="rsa2048")
    elif case == "ec256":
        leaf = certs.make_leaf(ca, key="ec256")
    elif case == "expired":
        leaf = certs.make_leaf(ca, not_before=certs.days(-10), not_after=certs.days(-1))
    elif case == "not-yet-valid":
        leaf = certs.make_leaf(ca, not_before=certs.days(1))
    elif case == "v1":
        leaf = certs.make_leaf(ca, version=1)
    elif case == "other-ca":
        leaf = certs.make_leaf(certs.make_ca(name="someone else"))
    elif case == "stale-crl":
        extra["crl"] = certs.make_crl(ca, next_update=certs.days(-1), last_update=certs.days(-2))
    elif case == "revoked":
        extra["crl"] = certs.make_crl(ca, revoked=[leaf])
    folder = mount(tmp_path, ca, leaf, **extra)
    if case == "wrong-key":
        certs.write_pem(folder / MOUNT_FILES["key"], certs.make_leaf(ca).key_pem(), 0o400)
    elif case == "encrypted-key":
        certs.write_pem(folder / MOUNT_FILES["key"], leaf.key_pem(password=b"secret-pass"), 0o400)
    elif case == "missing-ca":
        (folder / MOUNT_FILES["ca"]).unlink()
    error = problem(folder)
    text = f"{error.where}: {error.problem}"
    for needle in needles:
        assert needle in text, text


def test_good_material_loads(tmp_path: Path) -> None:
    ca = certs.make_ca()
    leaf = certs.make_leaf(ca)
    found = load_tls_inputs(
        Settings(tls="mounted", tls_mount=mount(tmp_path, ca, leaf)), factories.inputs(), {"PATH": "/nowhere"}
    )
    material = found.material()
    assert material.cert_pem == leaf.cert_pem and material.key_pem == leaf.key_pem()


def test_a_link_out_of_the_mount_is_refused(tmp_path: Path) -> None:
    ca = certs.make_ca()
    folder = mount(tmp_path, ca, certs.make_leaf(ca))
    outside = certs.write_pem(tmp_path / "elsewhere.pem", ca.cert_pem, 0o444)
    (folder / MOUNT_FILES["ca"]).unlink()
    (folder / MOUNT_FILES["ca"]).symlink_to(outside)
    error = problem(folder)
    assert error.where.endswith("ca/ca.pem") and "outside" in error.problem


def test_an_old_kmc_image_is_found_by_its_library(tmp_path: Path) -> None:
    install = tmp_path / "mindie"
    (install / "lib").mkdir(parents=True)
    found = load_tls_inputs(Settings(), factories.inputs(), {"PATH": "/nowhere", "MIES_INSTALL_PATH": str(install)})
    assert found.generation == "current"
    (install / "lib" / "libhse_cryption.so").write_bytes(b"")
    found = load_tls_inputs(Settings(), factories.inputs(), {"PATH": "/nowhere", "MIES_INSTALL_PATH": str(install)})
    assert found.generation == "kmc" and found.generation_source.endswith("libhse_cryption.so")


def test_an_old_kmc_image_is_found_by_its_config_fields() -> None:
    inputs = factories.inputs(coordinator=lambda d: d["tls_config"]["status_tls_items"].update(kmcKsfMaster="x"))
    found = load_tls_inputs(Settings(), inputs, {"PATH": "/nowhere"})
    assert (found.generation, found.generation_source) == (
        "kmc",
        "ms_coordinator.json: tls_config.status_tls_items.kmcKsfMaster",
    )


def test_an_old_kmc_mount_without_a_plaintext_client_certificate_is_refused(tmp_path: Path) -> None:
    ca = certs.make_ca()
    leaf = certs.make_leaf(ca)
    folder = mount(tmp_path, ca, leaf)
    certs.write_pem(folder / MOUNT_FILES["key"], leaf.key_pem(password=b"by-gen-cert"), 0o400)
    certs.write_pem(folder / "pass" / "key_pwd.txt", b"KMC-CIPHERTEXT\n", 0o400)
    certs.write_pem(folder / "ksf" / "ksfa", b"a", 0o400)
    certs.write_pem(folder / "ksf" / "ksfb", b"b", 0o400)
    inputs = factories.inputs(template=lambda d: d["ServerConfig"].update(kmcKsfMaster="tools/pmt/master/ksfa"))
    found = load_tls_inputs(Settings(tls="mounted", tls_mount=folder), inputs, {"PATH": "/nowhere"})
    assert isinstance(found.mounted, InputError)
    assert found.mounted.where.endswith("client/cert.pem") and "is missing" in found.mounted.problem


def test_a_site_ca_that_is_not_a_ca_cannot_sign(tmp_path: Path) -> None:
    leaf = certs.make_leaf(certs.make_ca())
    certs.write_pem(tmp_path / "mnt" / "ca" / "ca.pem", leaf.cert_pem, 0o444)
    certs.write_pem(tmp_path / "mnt" / "ca" / "ca.key.pem", leaf.key_pem(), 0o400)
    found = load_tls_inputs(Settings(tls="generate", tls_mount=tmp_path / "mnt"), factories.inputs(), {"PATH": "/x"})
    assert isinstance(found.authority, InputError)
    assert found.authority.where.endswith("ca/ca.key.pem") and "not a CA" in found.authority.problem
