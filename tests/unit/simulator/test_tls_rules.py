"""The simulator's TLS rules one by one, without starting a binary: the Server home, MindIE-LLM's
CheckPath, the interComm provider's root, MindIE-Motor's item and file rules, the certificate
facts, and the test PKI's own promises (tests/certs.py)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from supervisor_pd.simulator import motortls, tls
from supervisor_pd.simulator.host import build_sim_host, wrapper_script
from supervisor_pd.simulator.profiles import PROFILES
from supervisor_pd.simulator.server import tlsconf, tlsstart
from tests.certs import days, make_ca, make_crl, make_leaf, write_pem


@pytest.fixture
def binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A simulated install: <tmp>/install/bin/mindieservice_daemon, run by that path."""
    exe = tmp_path / "install" / "bin" / "mindieservice_daemon"
    exe.parent.mkdir(parents=True)
    exe.write_text("")
    for name in ("MINDIE_LLM_HOME_PATH", "MIES_INSTALL_PATH"):
        monkeypatch.setenv(name, "")  # recorded, so that teardown undoes what the code under test sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("SUPERVISOR_PD_SIM_ARGV0", str(exe))
    return exe


def test_the_home_is_llm_home_with_init_py_else_the_install_path_else_the_bins_parent(
    binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tlsconf.home_path() == str(tmp_path / "install")
    motor = tmp_path / "motor"
    motor.mkdir()
    monkeypatch.setenv("MIES_INSTALL_PATH", str(motor))
    llm = tmp_path / "llm"
    llm.mkdir()
    monkeypatch.setenv("MINDIE_LLM_HOME_PATH", str(llm))
    assert tlsconf.home_path() == str(motor)  # no __init__.py: not a package root
    (llm / "__init__.py").write_text("")
    assert tlsconf.home_path() == str(llm)
    monkeypatch.setenv("MINDIE_LLM_HOME_PATH", str(tmp_path / "gone"))
    monkeypatch.setenv("MIES_INSTALL_PATH", str(tmp_path / "gone"))
    assert tlsconf.home_path() is None  # CanonicalPath fails: "Failed to get home path."
    assert tlsconf.install_dir() == str(tmp_path / "install") + "/"


def test_only_the_launcher_sets_the_llm_home(binary: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tlsconf.imitate_launcher()
    assert "MINDIE_LLM_HOME_PATH" not in os.environ
    launcher = binary.with_name("mindie_llm_server")
    launcher.write_text("")
    monkeypatch.setenv("SUPERVISOR_PD_SIM_ARGV0", str(launcher))
    tlsconf.imitate_launcher()
    assert os.environ["MINDIE_LLM_HOME_PATH"] == str(binary.parent.parent)


def test_the_host_is_a_package_root_and_its_wrappers_pass_their_path(tmp_path: Path) -> None:
    root = build_sim_host(PROFILES["800i-a2"], tmp_path / "host").root
    assert (root / "__init__.py").is_file()
    assert 'SUPERVISOR_PD_SIM_ARGV0="$0"' in wrapper_script("supervisor_pd.simulator.server", [], root)


def test_check_path_says_what_mindie_says(tmp_path: Path) -> None:
    home = str(tmp_path) + "/"
    cert = write_pem(tmp_path / "c.pem", b"x", 0o640)
    assert tlsconf.check_path(str(cert), home, "N") is None
    assert "is not a regular file or not exists" in (tlsconf.check_path(home + "none.pem", home, "N") or "")
    write_pem(tmp_path / "e.pem", b"", 0o400)
    assert "failed, file is too large" in (tlsconf.check_path(home + "e.pem", home, "N") or "")
    cert.chmod(0o641)
    assert "Check Other group permission failed" in (tlsconf.check_path(str(cert), home, "N") or "")
    cert.chmod(0o740)
    assert "Check Owner group permission failed" not in (tlsconf.check_path(str(cert), home, "N") or "")
    assert "Check Owner permission failed" in (tlsconf.check_path(str(cert), home, "N") or "")
    assert tlsconf.check_path(home, home, "D", is_file=False) is not None  # home/ itself is not inside home/
    (tmp_path / "d").mkdir()
    assert tlsconf.check_path(home + "d/", home, "D", is_file=False) is None
    assert tlsconf.check_path(str(cert), home, "D", is_file=False) == "The D path is not a dir by: "
    assert tlsconf.check_path("", home, "N") == "The N path is too long."


def test_the_link_trusts_the_last_ca_file_only(binary: Path) -> None:
    # GetCertificateProvider reads each CA file into the same string: the last one wins.
    install = binary.parent.parent
    first, last = make_ca(name="first"), make_ca(name="last")
    leaf = make_leaf(first)
    write_pem(install / "g" / "first.pem", first.cert_pem, 0o400)
    write_pem(install / "g" / "last.pem", last.cert_pem, 0o600)
    write_pem(install / "g" / "cert.pem", leaf.cert_pem, 0o400)
    write_pem(install / "g" / "key.pem", leaf.key_pem(), 0o400)
    settings = tlsconf.InterComm("g/", ("first.pem", "last.pem"), "g/cert.pem", "g/key.pem", "", ())
    assert tlsstart.intercomm_start_problem(settings) is None
    assert tlsstart.intercomm_identity(settings).ca_pem == last.cert_pem
    (install / "g" / "last.pem").chmod(0o640)
    with pytest.raises(tls.TlsError, match="Failed to get ca file content"):
        tlsstart.intercomm_identity(settings)


def test_a_link_key_under_384_bytes_is_refused(binary: Path) -> None:
    install = binary.parent.parent
    ca = make_ca()
    leaf = make_leaf(ca, key="ec256")  # an EC P-256 key in PEM is about 240 bytes
    write_pem(install / "g" / "ca.pem", ca.cert_pem, 0o400)
    write_pem(install / "g" / "cert.pem", leaf.cert_pem, 0o400)
    write_pem(install / "g" / "key.pem", leaf.key_pem(), 0o400)
    settings = tlsconf.InterComm("g/", ("ca.pem",), "g/cert.pem", "g/key.pem", "", ())
    with pytest.raises(tls.TlsError, match=r"Len is not in \[384, 4096\]"):
        tlsstart.intercomm_identity(settings)


def test_motor_switches_and_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MINDIE_CHECK_INPUTFILES_PERMISSION", raising=False)
    items = {"ca_cert": "a", "tls_cert": "b", "tls_key": "c", "tls_passwd": "d", "tls_crl": ""}
    found, problems = motortls.read_pairs(
        {"status_tls_enable": True, "status_tls_items": items, "external_tls_enable": False}, ("status", "external")
    )
    assert problems == []
    assert found["status"].enabled and found["status"].check_files
    assert not found["external"].enabled
    _, problems = motortls.read_pairs({"status_tls_enable": "true"}, ("status",))
    assert problems and "a boolean" in problems[0]
    _, problems = motortls.read_pairs(
        {"status_tls_enable": True, "status_tls_items": items | {"tls_crl": 1}}, ("status",)
    )
    assert "Expected a string" in problems[0]
    monkeypatch.setenv("MINDIE_CHECK_INPUTFILES_PERMISSION", "0")
    found, _ = motortls.read_pairs({"status_tls_enable": True, "status_tls_items": items}, ("status",))
    assert not found["status"].check_files


def test_motor_files_with_checks_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ca = make_ca()
    leaf = make_leaf(ca)
    write_pem(tmp_path / "ca.pem", ca.cert_pem, 0o666)
    write_pem(tmp_path / "cert.pem", leaf.cert_pem, 0o644)
    write_pem(tmp_path / "key.pem", leaf.key_pem(), 0o640)
    write_pem(tmp_path / "pwd.txt", b"unused\n", 0o640)
    items = motortls.TlsItems("x", True, "./ca.pem", "./cert.pem", "./key.pem", "./pwd.txt", "", check_files=False)
    assert motortls.client_context(items)[0].verify_mode.name == "CERT_REQUIRED"
    (tmp_path / "key.pem").chmod(0o644)
    with pytest.raises(tls.TlsError, match="required no greater than 640"):
        motortls.client_context(items)
    checked = motortls.TlsItems("x", True, "./ca.pem", "./cert.pem", "./key.pem", "./pwd.txt", "")
    with pytest.raises(tls.TlsError, match="is 666, but required no greater than 400"):
        motortls.client_context(checked)


def test_an_unreadable_or_expired_crl_still_makes_a_context_that_refuses_peers(tmp_path: Path) -> None:
    ca = make_ca()
    leaf = make_leaf(ca)
    for name, data in (("ca.pem", ca.cert_pem), ("c.pem", leaf.cert_pem), ("k.pem", leaf.key_pem()), ("p", b"x")):
        write_pem(tmp_path / name, data, 0o400)
    write_pem(tmp_path / "bad.crl", b"garbage", 0o400)
    write_pem(tmp_path / "old.crl", make_crl(ca, next_update=days(-1)), 0o400)
    for crl, warning in (("bad.crl", "Failed to load Certificate Revocation List"), ("old.crl", "has expired")):
        items = motortls.TlsItems(
            "x",
            True,
            f"{tmp_path}/ca.pem",
            f"{tmp_path}/c.pem",
            f"{tmp_path}/k.pem",
            f"{tmp_path}/p",
            f"{tmp_path}/{crl}",
        )
        made = motortls.identity(items)
        assert warning in made.warnings[0]
        assert made.identity.crl_unusable or made.identity.crls


def test_the_test_pki_keeps_its_promises() -> None:
    ca = make_ca()
    facts = tls.first_certificate
    assert tls.is_v3(facts(make_leaf(ca).cert_pem))
    assert not tls.is_v3(facts(make_leaf(ca, version=1).cert_pem))
    assert tls.validity_problem(facts(make_leaf(ca, not_after=days(-1)).cert_pem)) == "after"
    assert tls.validity_problem(facts(make_leaf(ca, not_before=days(1)).cert_pem)) == "before"
    assert tls.validity_problem(facts(make_leaf(ca).cert_pem)) is None
    for kind, expected in (("ec224", ("EC", 224)), ("ec256", ("EC", 256)), ("ec384", ("EC", 384))):
        assert tls.key_facts(facts(make_leaf(ca, key=kind).cert_pem)) == expected
    for bits in (1024, 2048, 3072, 4096):
        assert tls.key_facts(facts(make_leaf(ca, key=f"rsa{bits}").cert_pem)) == ("RSA", bits)
    assert tls.crl_expired(tls.read_crl(make_crl(ca, next_update=days(-1))))
    assert not tls.crl_expired(tls.read_crl(make_crl(ca)))
    assert make_ca().cert.not_valid_before_utc < datetime.datetime.now(datetime.UTC)


def test_der_reads_what_cryptography_reads() -> None:
    ca = make_ca()
    leaf = make_leaf(ca, not_before=days(-3), not_after=days(9000))  # beyond 2049: GeneralizedTime
    facts = tls.first_certificate(b"junk before\n" + leaf.cert_pem + ca.cert_pem)
    assert facts.not_after == leaf.cert.not_valid_after_utc
    assert facts.not_before == leaf.cert.not_valid_before_utc
    crl = tls.read_crl(make_crl(ca, next_update=days(2)))
    assert crl.next_update is not None
    assert crl.next_update > datetime.datetime.now(datetime.UTC)
    for bad in (b"", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ca.cert_pem[:200]):
        with pytest.raises(tls.TlsError):
            tls.first_certificate(bad)
    with pytest.raises(tls.TlsError):
        tls.read_crl(ca.cert_pem)


def test_certificates_in_the_hosts_security_folder_do_not_make_it_look_changed(tmp_path: Path) -> None:
    root = build_sim_host(PROFILES["800i-a2"], tmp_path / "host").root
    write_pem(root / "security" / "certs" / "server.pem", b"certificate", 0o400)
    inode = root.stat().st_ino
    build_sim_host(PROFILES["800i-a2"], root)
    assert root.stat().st_ino == inode  # reused, not rebuilt
    assert (root / "security" / "certs" / "server.pem").read_bytes() == b"certificate"
