"""The TLS refusal matrices of the simulated binaries, in-process: each case goes through the
functions the binary itself calls, in the order it calls them, with files in tmp_path, and the
test asserts MindIE's message. What a refusal then does to the process (exit 1, SIGKILL of the
group, SIGABRT, status 0, a bound but silent port, a failed hand-off) is proven once per binary
and kind of outcome by starting it, in tests/integration/simulator/test_tls_*.py.

- The Server: `server_config.load` (config time: ConfigError, the daemon exits 1), then as
  `server/main.py` goes on, `tlsstart.intercomm_start_problem` and `tlsstart.https_context` per
  plane (start: the endpoint fails, the group is killed), and `tlsstart.InterCommTls` with
  `pd.serve_intercomm` / `pd.hand_off` (the P->D link when it is used).
- The Controller: `controller.main.load_config` (config time: exit 1), then as `_run` makes them,
  `motortls.listener_context` (http_server) and `motortls.client_context` (request_server,
  request_coordinator): TlsError, "Init controller failed.", exit 1.
- The Coordinator: `coordinator.main.load_settings` (config time: exit 1).

The files are laid out as tests/integration/simulator/tlsstack.py lays them out for the binaries.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from supervisor_pd.simulator import kmc, motortls, tls
from supervisor_pd.simulator.controller import main as controller_main
from supervisor_pd.simulator.coordinator import main as coordinator_main
from supervisor_pd.simulator.server import config as server_config
from supervisor_pd.simulator.server import pd, tlsconf, tlsstart
from tests.certs import days, make_ca, make_crl, make_leaf, write_pem
from tests.helpers import SAMPLE_CONF
from tests.integration.simulator.tlsstack import (
    Pki,
    load,
    save,
    server_tls_fields,
    set_motor_pairs,
    write_intercomm_files,
    write_server_files,
)


def _copy_config(name: str, target: Path) -> Path:
    shutil.copyfile(SAMPLE_CONF / name, target)
    target.chmod(0o640)  # within what ReadJsonFile / FileToBuffer accept
    return target


# --- the Server ----------------------------------------------------------------------------------


@dataclass
class ServerFiles:
    """A Server home (<home>/bin/mindie_llm_server, as the simulated host has it) with the test
    PKI's files in it, and a config1.json whose ServerConfig `edit` changes."""

    home: Path
    pki: Pki
    config: Path

    def edit(self, change: Callable[[dict[str, Any]], Any]) -> None:
        data = load(self.config)
        change(data["ServerConfig"])
        save(self.config, data)

    def grpc(self, name: str) -> Path:
        return self.home / "security" / "grpc" / name


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerFiles]:
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "__init__.py").write_text("")  # the host is a package root, as the launcher expects
    for name in ("MINDIE_LLM_HOME_PATH", "MIES_INSTALL_PATH", "MIES_CONTAINER_IP", "MIES_CONTAINER_MANAGEMENT_IP"):
        monkeypatch.setenv(name, "")  # recorded, so that teardown undoes what the code under test sets
        monkeypatch.delenv(name)
    monkeypatch.delenv("MINDIE_CHECK_INPUTFILES_PERMISSION", raising=False)
    monkeypatch.setenv("SUPERVISOR_PD_SIM_ARGV0", str(home / "bin" / "mindie_llm_server"))
    tlsconf.imitate_launcher()  # what server/main.py does first: the home is the bin folder's parent
    assert os.environ["MINDIE_LLM_HOME_PATH"] == str(home)
    config = _copy_config("config.json", tmp_path / "config1.json")
    data = load(config)
    data["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]["modelWeightPath"] = str(weights(tmp_path))
    save(config, data)
    yield ServerFiles(home, Pki(), config)


def weights(tmp_path: Path) -> Path:
    """Weights the Server's start checks accept (a folder within 0750, config.json within 0640)."""
    folder = tmp_path / "weights"
    folder.mkdir(mode=0o750)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "torch_dtype": "float16"}))
    (folder / "config.json").chmod(0o640)
    return folder


class EndpointFailed(Exception):
    """What server/main.py `_endpoint_failed` logs before it kills the process group."""


def start_server(files: ServerFiles) -> server_config.ServerConfig:
    """The daemon's TLS steps up to listening (server/main.py `main`): the config (ConfigError:
    exit 1), the P->D link's start checks, then one HTTPS context per plane (EndpointFailed)."""
    config = server_config.load(files.config)
    if config.intercomm is not None:
        problem = tlsstart.intercomm_start_problem(config.intercomm)
        if problem is not None:
            raise EndpointFailed(problem)
    for cert_set in config.https:
        try:
            tlsstart.https_context(cert_set)
        except tls.TlsError as exc:
            raise EndpointFailed(f"{exc}\n{tlsstart.ENDPOINT_FAILED}") from None
    return config


def https_server(files: ServerFiles) -> ServerFiles:
    write_server_files(files.home, files.pki)
    files.edit(lambda server: server.update(server_tls_fields(https=True, intercomm=False)))
    return files


def intercomm_server(files: ServerFiles) -> ServerFiles:
    write_intercomm_files(files.home, files.pki)
    files.edit(lambda server: server.update(server_tls_fields(https=False, intercomm=True)))
    return files


def test_the_fixtures_server_starts(server: ServerFiles) -> None:
    # The matrices below fail only through their damage: undamaged, every set is accepted.
    config = start_server(https_server(server))
    assert [cert_set.plane for cert_set in config.https] == ["business", "management", "metrics"]
    write_intercomm_files(server.home, server.pki)
    server.edit(lambda fields: fields.update(server_tls_fields(https=True, intercomm=True)))
    assert start_server(server).intercomm is not None


# config time: ServerConfigManager::CheckHttpsConfig


def _symlink(home: Path) -> None:
    key = home / "security" / "keys" / "business.key.pem"
    real = home / "security" / "keys" / "real.key.pem"
    key.rename(real)
    key.symlink_to(real)


def _outside(home: Path) -> None:
    write_pem(home.parent / "outside.pem", (home / "security" / "certs" / "business.pem").read_bytes(), 0o400)


CONFIG_REFUSALS: dict[str, tuple[Callable[[Path], None], dict[str, Any], str]] = {
    "tlsCert missing": (lambda home: None, {"tlsCert": None}, "The serverConfig_.tlsCert path is invalid"),
    "no CA file": (lambda home: None, {"tlsCaFile": []}, "serverConfig_.tlsCaFile size must in [1, 3]"),
    "four CA files": (lambda home: None, {"tlsCaFile": ["a", "b", "c", "ca.pem"]}, "tlsCaFile size must in [1, 3]"),
    "CA path not a folder": (lambda home: None, {"tlsCaPath": "security/ca/ca.pem"}, "tlsCaPath path is not a dir"),
    "key is a symbolic link": (_symlink, {}, "business.key.pem is a link."),
    "cert outside the home": (_outside, {"tlsCert": "../outside.pem"}, "it's not in baseDir directory"),
    "cert mode 0644": (
        lambda home: (home / "security" / "certs" / "business.pem").chmod(0o644),
        {},
        "Check path: business.pem failed, by: Check Other group permission failed",
    ),
    "key owned by another user": (
        lambda home: os.chown(home / "security" / "keys" / "business.key.pem", 65534, 65534),
        {},
        "owner id diff: current process user id is 0, file owner id is 65534",
    ),
    "empty cert file": (
        lambda home: write_pem(home / "security" / "certs" / "business.pem", b"", 0o400),
        {},
        "Read input file: business.pem failed, file is too large",
    ),
    "CRL listed but missing": (
        lambda home: (home / "security" / "crl").mkdir(),
        {"tlsCrlPath": "security/crl/", "tlsCrlFiles": ["server_crl.pem"]},
        "serverConfig_.tlsCrlFiles file not exit",
    ),
    "management CA missing": (
        lambda home: None,
        {"managementTlsCaFile": ["management_ca.pem"]},
        "serverConfig_.managementTlsCaFile file not exit",
    ),
}


@pytest.mark.parametrize("case", CONFIG_REFUSALS, ids=list(CONFIG_REFUSALS))
def test_server_files_refused_at_config_time(server: ServerFiles, case: str) -> None:
    damage, fields, message = CONFIG_REFUSALS[case]
    if case == "key owned by another user" and os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    https_server(server)
    damage(server.home)

    def change(settings: dict[str, Any]) -> None:
        for key, value in fields.items():
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value

    server.edit(change)
    with pytest.raises(server_config.ConfigError) as refused:
        start_server(server)
    assert message in str(refused.value)


def test_server_mode_is_checked_even_with_the_permission_check_switched_off(
    server: ServerFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ParamChecker::CheckPath -> FileUtils::IsFileValid returns false in both branches.
    https_server(server)
    (server.home / "security" / "keys" / "metrics.key.pem").chmod(0o660)
    monkeypatch.setenv("MINDIE_CHECK_INPUTFILES_PERMISSION", "0")
    with pytest.raises(server_config.ConfigError) as refused:
        start_server(server)
    assert "The ServerConfig.metricsTlsPk path is invalid by: Check path: metrics.key.pem failed" in str(refused.value)


def test_one_listener_reads_only_the_business_set(server: ServerFiles) -> None:
    https_server(server)
    for plane in ("management", "metrics"):  # none of their files is read
        (server.home / "security" / "certs" / f"{plane}.pem").unlink()

    def one_port(settings: dict[str, Any]) -> None:
        settings.update(managementPort=settings["port"], metricsPort=settings["port"])
        for key in [k for k in settings if k.startswith(("managementTls", "metricsTls"))]:
            del settings[key]

    server.edit(one_port)
    assert [cert_set.plane for cert_set in start_server(server).https] == ["business"]


# start: HttpSsl::Start per plane, the endpoint fails


def _replace(plane: str, leaf_maker: Callable[[Any], Any], key_maker: Callable[[Any], bytes] | None = None):  # type: ignore[no-untyped-def]
    def damage(files: ServerFiles) -> None:
        leaf = leaf_maker(files.pki.ca)
        write_pem(files.home / "security" / "certs" / f"{plane}.pem", leaf.cert_pem, 0o400)
        key = key_maker(leaf) if key_maker else leaf.key_pem()
        write_pem(files.home / "security" / "keys" / f"{plane}.key.pem", key, 0o400)

    return damage


START_REFUSALS: dict[str, tuple[Callable[[ServerFiles], None], str]] = {
    "EC key": (
        _replace("business", lambda ca: make_leaf(ca, key="ec256")),
        "Certificate key length is too short, key length < 3072",
    ),
    "RSA-2048 key": (
        _replace("management", lambda ca: make_leaf(ca, key="rsa2048")),
        "Certificate key length is too short, key length < 3072",
    ),
    "expired certificate": (
        _replace("metrics", lambda ca: make_leaf(ca, not_before=days(-30), not_after=days(-1))),
        "Certificate has expired! current time after cert time.",
    ),
    "certificate not yet valid": (
        _replace("business", lambda ca: make_leaf(ca, not_before=days(1))),
        "Certificate has expired! current time before cert time.",
    ),
    "key of another certificate": (
        _replace("business", lambda ca: make_leaf(ca), lambda leaf: make_leaf(make_ca()).key_pem()),
        "Failed to set use private key file",
    ),
    "encrypted key": (
        _replace("business", lambda ca: make_leaf(ca), lambda leaf: leaf.key_pem(password=b"secret")),
        "Failed to set use private key file",
    ),
    "CA file holds no certificate": (
        lambda files: write_pem(files.home / "security" / "ca" / "ca.pem", b"not a certificate\n", 0o400),
        "TLS load verify file failed",
    ),
}


@pytest.mark.parametrize("case", START_REFUSALS, ids=list(START_REFUSALS))
def test_server_certificates_refused_at_start(server: ServerFiles, case: str) -> None:
    damage, message = START_REFUSALS[case]
    https_server(server)
    damage(server)
    with pytest.raises(EndpointFailed) as refused:
        start_server(server)
    assert message in str(refused.value)
    assert "Failed to init endpoint!" in str(refused.value)


# the P->D link at start: GrpcCommunicationMng::Init, the endpoint fails


INTERCOMM_REFUSALS: dict[str, tuple[Callable[[ServerFiles], Any], str]] = {
    "X.509 v1 certificate": (
        lambda files: write_pem(files.grpc("certs/server.pem"), make_leaf(files.pki.ca, version=1).cert_pem, 0o400),
        "Failed to parse X509 certificate, path:",
    ),
    "expired certificate": (
        lambda files: write_pem(
            files.grpc("certs/server.pem"), make_leaf(files.pki.ca, not_after=days(-1)).cert_pem, 0o400
        ),
        "Cert has expired! current time after cert time",
    ),
    "certificate not yet valid": (
        lambda files: write_pem(
            files.grpc("certs/server.pem"), make_leaf(files.pki.ca, not_before=days(2)).cert_pem, 0o400
        ),
        "Cert has expired! current time before cert time.",
    ),
    "CRL past its nextUpdate": (
        lambda files: (
            write_pem(files.grpc("crl/crl.pem"), make_crl(files.pki.ca, next_update=days(-1)), 0o400),
            files.edit(
                lambda server: server.update(interCommTlsCrlPath="security/grpc/crl/", interCommTlsCrlFiles=["crl.pem"])
            ),
        ),
        "Crl has expired! current time after next update time",
    ),
    "key is a symbolic link": (
        lambda files: (
            files.grpc("keys/server.key.pem").rename(files.grpc("keys/real.pem")),
            files.grpc("keys/server.key.pem").symlink_to(files.grpc("keys/real.pem")),
        ),
        "Failed to get cert key path because The file: server.key.pem is a link.",
    ),
    "interCommTLSEnabled absent means true": (
        lambda files: files.edit(
            lambda server: [
                server.pop(key) for key in list(server) if key.startswith("interComm") and "Port" not in key
            ]
        ),
        "Tls ca file is empty",
    ),
}


@pytest.mark.parametrize("case", INTERCOMM_REFUSALS, ids=list(INTERCOMM_REFUSALS))
def test_server_link_refused_at_start(server: ServerFiles, case: str) -> None:
    damage, message = INTERCOMM_REFUSALS[case]
    intercomm_server(server)
    damage(server)
    with pytest.raises(EndpointFailed) as refused:
        start_server(server)
    assert message in str(refused.value)
    assert "Failed to start grpc wrapper in DMI scene." in str(refused.value)


def test_the_link_is_not_set_up_when_switched_off_or_in_standard_mode(server: ServerFiles) -> None:
    # No interComm files at all.
    server.edit(lambda settings: settings.update(interCommTLSEnabled=False))
    assert start_server(server).intercomm is None

    def standard(settings: dict[str, Any]) -> None:
        settings.pop("interCommTLSEnabled")
        settings["inferMode"] = "standard"

    server.edit(standard)
    assert start_server(server).intercomm is None


# the P->D link in use: P's client checks D's IP in D's certificate


def _hand_off(link: tlsstart.InterCommTls) -> dict[str, Any]:
    """D's listener and P's hand-off to it, both with `link`'s contexts (on an ephemeral port)."""

    async def accept(message: dict[str, Any]) -> dict[str, Any]:
        return {"ok": message.get("op") == "decode"}

    async def run() -> dict[str, Any]:
        listener = await pd.serve_intercomm("127.0.0.1", 0, accept, ssl=link.server())
        port = listener.sockets[0].getsockname()[1]
        try:
            return await pd.hand_off(f"127.0.0.1;{port}", port, {"op": "decode"}, limit=5.0, ssl=link.client())
        finally:
            listener.close()
            await listener.wait_closed()

    return asyncio.run(run())


def test_a_link_certificate_without_the_decode_ip_fails_the_hand_off(server: ServerFiles) -> None:
    intercomm_server(server)
    config = start_server(server)
    assert config.intercomm is not None
    assert _hand_off(tlsstart.InterCommTls(config.intercomm)) == {"ok": True}  # with 127.0.0.1 in SAN
    leaf = make_leaf(server.pki.ca, name="grpc-no-ip", ips=(), dns=("localhost",))
    write_pem(server.grpc("certs/server.pem"), leaf.cert_pem, 0o400)
    write_pem(server.grpc("keys/server.key.pem"), leaf.key_pem(), 0o400)
    # An OSError: Inference._prefill answers 500 with it (test_tls_stack.py shows that for another).
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        _hand_off(tlsstart.InterCommTls(start_server(server).intercomm))  # type: ignore[arg-type]


def test_a_link_key_mode_over_0600_fails_when_the_link_is_used(server: ServerFiles) -> None:
    # Start accepts it (only GetCertificateProvider checks the mode); each use refuses it.
    intercomm_server(server)
    server.grpc("keys/server.key.pem").chmod(0o640)
    link = tlsstart.InterCommTls(start_server(server).intercomm)  # type: ignore[arg-type]
    for make in (link.server, link.client):
        with pytest.raises(tls.TlsError, match=r"Check path: server\.key\.pem failed"):
            make()


# --- the Controller and the Coordinator ------------------------------------------------------------


@dataclass
class MotorFiles:
    """A Controller's working folder and its config (or a Coordinator's)."""

    folder: Path
    config: Path

    def edit_tls(self, change: Callable[[dict[str, Any]], Any]) -> None:
        data = load(self.config)
        change(data["tls_config"])
        save(self.config, data)

    def item(self, pair: str, key: str) -> Path:
        return self.folder / load(self.config)["tls_config"][f"{pair}_tls_items"][key]

    def set_item(self, pair: str, key: str, value: str) -> None:
        self.edit_tls(lambda tls_config: tls_config[f"{pair}_tls_items"].update({key: value}))


@pytest.fixture
def motor_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("MINDIE_CHECK_INPUTFILES_PERMISSION", raising=False)
    monkeypatch.setenv("GLOBAL_RANK_TABLE_FILE_PATH", "./ranktable.json")  # only named at config time
    return monkeypatch


def controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: Pki, pairs: tuple[str, ...]) -> MotorFiles:
    folder = tmp_path / "controller"
    folder.mkdir(parents=True)
    config = _copy_config("ms_controller.json", tmp_path / "ms_controller.json")
    set_motor_pairs(config, folder, pki, dict.fromkeys(pairs, True))
    monkeypatch.setenv("MINDIE_MS_CONTROLLER_CONFIG_FILE_PATH", str(config))
    monkeypatch.chdir(folder)  # relative item paths are from the working folder
    return MotorFiles(folder, config)


def coordinator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: Pki, pairs: tuple[str, ...]) -> MotorFiles:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = _copy_config("ms_coordinator.json", tmp_path / "ms_coordinator.json")
    set_motor_pairs(config, tmp_path, pki, dict.fromkeys(pairs, True))
    monkeypatch.setenv("MINDIE_MS_COORDINATOR_CONFIG_FILE_PATH", str(config))
    monkeypatch.chdir(tmp_path)
    return MotorFiles(tmp_path, config)


def start_controller() -> None:
    """The Controller's TLS steps (controller/main.py `load_config`, then `_run`): ConfigError at
    config time, TlsError when the probe listener or a client is made (both: exit 1)."""
    _, _, pairs = controller_main.load_config()
    if pairs["http_server"].enabled:
        motortls.listener_context(pairs["http_server"])
    for pair in ("request_server", "request_coordinator"):
        if pairs[pair].enabled:
            motortls.client_context(pairs[pair])


def test_the_fixtures_controller_and_coordinator_start(tmp_path: Path, motor_env: pytest.MonkeyPatch) -> None:
    pki = Pki()
    controller(tmp_path / "a", motor_env, pki, ("http_server", "request_server", "request_coordinator"))
    start_controller()
    coordinator(tmp_path / "b", motor_env, pki, motortls.COORDINATOR_PAIRS)
    settings = coordinator_main.load_settings([])
    assert all(settings.tls[pair].enabled for pair in motortls.COORDINATOR_PAIRS)


# config time: IsTlsConfigJsonStringValid / IsTlsValid

ITEM_REFUSALS: dict[str, tuple[Callable[[dict[str, Any], str], Any], str]] = {
    "switch missing": (lambda tls_config, pair: tls_config.pop(f"{pair}_tls_enable"), "_tls_enable' (a boolean)"),
    "tls_passwd missing": (
        lambda tls_config, pair: tls_config[f"{pair}_tls_items"].pop("tls_passwd"),
        "missing the expected key 'tls_passwd'",
    ),
    "ca_cert empty": (
        lambda tls_config, pair: tls_config[f"{pair}_tls_items"].update(ca_cert=""),
        "Invalid length for string value of key 'ca_cert'. Length must be between [1, 4096], but found: 0.",
    ),
}


@pytest.mark.parametrize("binary", ["controller", "coordinator"])
@pytest.mark.parametrize("case", ITEM_REFUSALS, ids=list(ITEM_REFUSALS))
def test_motor_items_refused_at_config_time(
    tmp_path: Path, motor_env: pytest.MonkeyPatch, binary: str, case: str
) -> None:
    change, message = ITEM_REFUSALS[case]
    if binary == "controller":
        files = controller(tmp_path, motor_env, Pki(), ("request_server",))
        files.edit_tls(lambda tls_config: change(tls_config, "request_server"))
        with pytest.raises(controller_main.ConfigError) as refused:
            start_controller()
    else:
        files = coordinator(tmp_path, motor_env, Pki(), ("mindie_mangment",))
        files.edit_tls(lambda tls_config: change(tls_config, "mindie_mangment"))
        with pytest.raises(coordinator_main.ConfigError) as refused:
            coordinator_main.load_settings([])
    assert message in str(refused.value)


def test_an_unused_pair_is_checked_only_at_config_time(tmp_path: Path, motor_env: pytest.MonkeyPatch) -> None:
    # external_coordinator (CCAE only): no file is read.
    files = controller(tmp_path, motor_env, Pki(), ())
    items = dict.fromkeys(("ca_cert", "tls_cert", "tls_key"), "./none.pem") | {"tls_passwd": "./none.txt"}
    files.edit_tls(
        lambda tls_config: tls_config.update(
            external_coordinator_tls_enable=True, external_coordinator_tls_items=items | {"tls_crl": ""}
        )
    )
    start_controller()
    files.set_item("external_coordinator", "tls_passwd", "")
    with pytest.raises(controller_main.ConfigError, match="key 'tls_passwd'"):
        start_controller()


# the files, when the listener or client is made (UseCertificate, ServerDecrypt, UsePrivateKey)


def _move(files: MotorFiles, key: str, where: str) -> None:
    source = files.item("http_server", key)
    target = files.folder / where
    target.parent.mkdir(parents=True, exist_ok=True)
    source.rename(target)
    files.set_item("http_server", key, where)


def _motor_symlink(files: MotorFiles) -> None:
    cert = files.item("http_server", "tls_cert")
    real = cert.with_name("real.pem")
    cert.rename(real)
    cert.symlink_to(real)


def _encrypted(files: MotorFiles, pki: Pki, password: bytes, stored: bytes) -> None:
    leaf = pki.leaf("motor-http_server")
    write_pem(files.item("http_server", "tls_key"), leaf.key_pem(password=password), 0o400)
    write_pem(files.item("http_server", "tls_passwd"), stored, 0o400)


FILE_REFUSALS: dict[str, tuple[Callable[[MotorFiles, Pki], Any], str]] = {
    "a space in the path": (
        lambda files, pki: _move(files, "tls_cert", "./security/http server/cert.pem"),
        "has characters outside [a-zA-Z0-9_./~-] or '..'",
    ),
    "'..' in the path": (
        lambda files, pki: files.set_item("http_server", "tls_key", "./security/../security/http_server/cert.key.pem"),
        "has characters outside [a-zA-Z0-9_./~-] or '..'",
    ),
    "a path over 256 characters": (
        lambda files, pki: _move(files, "ca_cert", "./" + "d" * 200 + "/" + "e" * 60 + ".pem"),
        "maximum allowed length of 256",
    ),
    "a symbolic link": (lambda files, pki: _motor_symlink(files), "a symbolic link, which is not allowed."),
    "certificate mode 0440": (
        lambda files, pki: files.item("http_server", "tls_cert").chmod(0o440),
        "is 440, but required no greater than 400",
    ),
    "key owned by another user": (
        lambda files, pki: os.chown(files.item("http_server", "tls_key"), 65534, 65534),
        "not the running user",
    ),
    "password file missing": (
        lambda files, pki: files.item("http_server", "tls_passwd").unlink(),
        "key_pwd.txt' does not exist.",
    ),
    "password file empty": (
        lambda files, pki: write_pem(files.item("http_server", "tls_passwd"), b"", 0o400),
        "key_pwd.txt is empty",
    ),
    "wrong password for an encrypted key": (
        lambda files, pki: _encrypted(files, pki, b"right-password", b"wrong-password\n"),
        "failed on use private key file",
    ),
    "CA file holds no certificate": (
        lambda files, pki: write_pem(files.item("http_server", "ca_cert"), b"nothing here\n", 0o400),
        "Failed to add certificate authority",
    ),
}


@pytest.mark.parametrize("case", FILE_REFUSALS, ids=list(FILE_REFUSALS))
def test_controller_files_refused(tmp_path: Path, motor_env: pytest.MonkeyPatch, case: str) -> None:
    damage, message = FILE_REFUSALS[case]
    if "another user" in case and os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    pki = Pki()
    files = controller(tmp_path, motor_env, pki, ("http_server",))
    damage(files, pki)
    with pytest.raises(tls.TlsError) as refused:
        start_controller()
    assert message in str(refused.value)


def test_an_encrypted_key_opens_with_its_password_file(tmp_path: Path, motor_env: pytest.MonkeyPatch) -> None:
    pki = Pki()
    files = controller(tmp_path, motor_env, pki, ("http_server",))
    _encrypted(files, pki, b"right-password", b"right-password\n")  # one trailing newline is dropped
    start_controller()
    _encrypted(files, pki, b"right-password", b"right-password\n\n")  # and only one
    with pytest.raises(tls.TlsError, match="failed on use private key file"):
        start_controller()


def test_switched_off_checks_allow_0640_keys_and_any_mode_certificates(
    tmp_path: Path, motor_env: pytest.MonkeyPatch
) -> None:
    files = controller(tmp_path, motor_env, Pki(), ("http_server", "request_server"))
    for pair in ("http_server", "request_server"):
        files.item(pair, "tls_key").chmod(0o640)
        files.item(pair, "tls_passwd").chmod(0o640)
        files.item(pair, "tls_cert").chmod(0o666)
        files.item(pair, "ca_cert").chmod(0o644)
    if os.getuid() == 0:
        os.chown(files.item("http_server", "tls_cert"), 65534, 65534)  # no owner check either
    with pytest.raises(tls.TlsError, match="required no greater than 400"):  # checked by default
        start_controller()
    motor_env.setenv("MINDIE_CHECK_INPUTFILES_PERMISSION", "0")
    start_controller()
    files.item("request_server", "tls_key").chmod(0o644)  # still more than 0640
    with pytest.raises(tls.TlsError, match="is 644, but required no greater than 640"):
        start_controller()


# --- older (KMC) images ------------------------------------------------------------------------------

KMC_PASSWORD = b"a-kmc-protected-password"


@dataclass
class KmcSet:
    """What config_mindie_server_tls_cert.py gen_cert leaves (tests/integration/simulator/
    test_tls_kmc.py runs the tool): a certificate, its key encrypted with a password, that
    password as simulated KMC ciphertext, and the keystore it opens with."""

    ca: bytes
    cert: bytes
    key: bytes
    passwd: bytes
    ksf: bytes


@pytest.fixture
def kmc_set(tmp_path: Path) -> KmcSet:
    pki = Pki()
    keystore = kmc.new_keystore()
    leaf = pki.leaf("kmc")
    ksfa = write_pem(tmp_path / "keystore" / "ksfa", keystore, 0o600)
    return KmcSet(pki.ca.cert_pem, leaf.cert_pem, leaf.key_pem(KMC_PASSWORD), kmc.encrypt(KMC_PASSWORD, ksfa), keystore)


def kmc_controller(files: MotorFiles, made: KmcSet, spelling: tuple[str, str]) -> Path:
    base = files.folder / "security" / "http_server"
    for name, data, mode in (
        ("ca", made.ca, 0o400),
        ("cert", made.cert, 0o400),
        ("key", made.key, 0o400),
        ("passwd", made.passwd, 0o400),
        ("ksfa", made.ksf, 0o600),
        ("ksfb", made.ksf, 0o600),
    ):
        write_pem(base / name, data, mode)
    items = {
        "ca_cert": "./security/http_server/ca",
        "tls_cert": "./security/http_server/cert",
        "tls_key": "./security/http_server/key",
        "tls_passwd": "./security/http_server/passwd",
        "tls_crl": "",
        spelling[0]: "./security/http_server/ksfa",
        spelling[1]: "./security/http_server/ksfb",
    }
    files.edit_tls(lambda tls_config: tls_config.update(http_server_tls_enable=True, http_server_tls_items=items))
    return base


KMC_CONTROLLER_REFUSALS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "plaintext password file": (
        lambda base: write_pem(base / "passwd", KMC_PASSWORD + b"\n", 0o400),
        "Decrypt TLS  key password failed",
    ),
    "keystore file missing": (lambda base: (base / "ksfb").unlink(), "Failed to check the path of KMC standby file"),
    "the Coordinator's spelling": (lambda base: None, "missing the expected key 'kmc_ksf_master'"),
    "keystore mode 0640": (lambda base: (base / "ksfa").chmod(0o640), "is 640, but required no greater than 600"),
    "another keystore": (
        lambda base: [write_pem(base / name, kmc.new_keystore(), 0o600) for name in ("ksfa", "ksfb")],
        "Decrypt TLS  key password failed",
    ),
}


def test_an_older_controller_opens_its_key_with_kmc(
    tmp_path: Path, motor_env: pytest.MonkeyPatch, kmc_set: KmcSet
) -> None:
    files = controller(tmp_path, motor_env, Pki(), ())
    kmc_controller(files, kmc_set, motortls.CONTROLLER_KMC)
    start_controller()


@pytest.mark.parametrize("case", KMC_CONTROLLER_REFUSALS, ids=list(KMC_CONTROLLER_REFUSALS))
def test_an_older_controller_refuses_what_kmc_would(
    tmp_path: Path, motor_env: pytest.MonkeyPatch, kmc_set: KmcSet, case: str
) -> None:
    damage, message = KMC_CONTROLLER_REFUSALS[case]
    files = controller(tmp_path, motor_env, Pki(), ())
    spelling = motortls.COORDINATOR_KMC if case == "the Coordinator's spelling" else motortls.CONTROLLER_KMC
    damage(kmc_controller(files, kmc_set, spelling))
    with pytest.raises((controller_main.ConfigError, tls.TlsError)) as refused:
        start_controller()
    assert message in str(refused.value)


def test_an_older_coordinator_requires_its_own_spelling(tmp_path: Path, motor_env: pytest.MonkeyPatch) -> None:
    files = coordinator(tmp_path, motor_env, Pki(), ("status",))
    files.edit_tls(
        lambda tls_config: tls_config["status_tls_items"].update(kmc_ksf_master="./a", kmc_ksf_standby="./b")
    )
    with pytest.raises(coordinator_main.ConfigError, match="missing the expected key 'kmcKsfMaster'"):
        coordinator_main.load_settings([])
    files.edit_tls(lambda tls_config: tls_config["status_tls_items"].update(kmcKsfMaster="./a", kmcKsfStandby="./b"))
    assert coordinator_main.load_settings([]).tls["status"].kmc_master == "./a"


def kmc_server(files: ServerFiles, made: KmcSet, password_file: bytes | None = None) -> None:
    secure = files.home / "security"
    write_pem(secure / "ca" / "ca.pem", made.ca, 0o400)
    for plane in ("business", "management", "metrics"):
        write_pem(secure / "certs" / f"{plane}.pem", made.cert, 0o400)
        write_pem(secure / "keys" / f"{plane}.key.pem", made.key, 0o400)
    write_pem(secure / "pass" / "key_pwd.txt", password_file or made.passwd, 0o400)
    write_pem(secure / "kmc" / "ksfa", made.ksf, 0o600)
    write_pem(secure / "kmc" / "ksfb", made.ksf, 0o600)
    fields = server_tls_fields(https=True, intercomm=False) | {
        "kmcKsfMaster": "security/kmc/ksfa",
        "kmcKsfStandby": "security/kmc/ksfb",
        "tlsPkPwd": "security/pass/key_pwd.txt",
        "managementTlsPkPwd": "security/pass/key_pwd.txt",
        "metricsTlsPkPwd": "security/pass/key_pwd.txt",
    }
    files.edit(lambda server: server.update(fields))


def test_an_older_server_opens_its_keys_with_kmc(server: ServerFiles, kmc_set: KmcSet) -> None:
    kmc_server(server, kmc_set)
    assert len(start_server(server).https) == 3


def test_an_older_server_refuses_a_plaintext_key_password(server: ServerFiles, kmc_set: KmcSet) -> None:
    kmc_server(server, kmc_set, password_file=KMC_PASSWORD)
    with pytest.raises(EndpointFailed, match="Hse cryptor helper decrypt failed"):
        start_server(server)


def test_an_older_server_checks_the_keystore_at_config_time(server: ServerFiles, kmc_set: KmcSet) -> None:
    kmc_server(server, kmc_set)
    shutil.rmtree(server.home / "security" / "kmc")
    with pytest.raises(server_config.ConfigError, match=r"The serverConfig\.kmcKsfMaster path is invalid"):
        start_server(server)


@pytest.mark.parametrize("plaintext", [False, True], ids=["ciphertext", "plaintext"])
def test_an_older_servers_link_always_opens_its_key_with_kmc(
    server: ServerFiles, kmc_set: KmcSet, plaintext: bool
) -> None:
    grpc = server.home / "security" / "grpc"
    write_pem(grpc / "ca.pem", kmc_set.ca, 0o400)
    write_pem(grpc / "cert.pem", kmc_set.cert, 0o400)
    write_pem(grpc / "key.pem", kmc_set.key, 0o400)
    write_pem(grpc / "pwd.txt", KMC_PASSWORD if plaintext else kmc_set.passwd, 0o400)
    write_pem(grpc / "ksfa", kmc_set.ksf, 0o600)
    write_pem(grpc / "ksfb", kmc_set.ksf, 0o600)
    fields = server_tls_fields(https=False, intercomm=True) | {
        "interCommTlsCaPath": "security/grpc/",
        "interCommTlsCaFiles": ["ca.pem"],
        "interCommTlsCert": "security/grpc/cert.pem",
        "interCommPk": "security/grpc/key.pem",
        "interCommPkPwd": "security/grpc/pwd.txt",
        "kmcKsfMaster": "security/grpc/ksfa",
        "kmcKsfStandby": "security/grpc/ksfb",
    }
    server.edit(lambda settings: settings.update(fields))
    link = tlsstart.InterCommTls(start_server(server).intercomm)  # type: ignore[arg-type]
    if plaintext:
        with pytest.raises(tls.TlsError, match="Hse cryptor helper decrypt failed"):
            link.client()
    else:
        assert _hand_off(link) == {"ok": True}
