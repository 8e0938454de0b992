"""TLS of the simulated Controller and Coordinator, as MindIE-Motor sets it up (mindie_motor/src).

Each link has a `<pair>_tls_enable` switch and `<pair>_tls_items` in `tls_config`:

- Config time (`read_pairs`; controller/constant/ControllerConfig.cpp `IsConfigJsonValid`,
  `IsTlsConfigJsonStringValid`, `GetInitTlsItems`; coordinator/configure/Configure.cpp
  `IsTlsValid`, `ReadTlsConfig`): the switch must be a boolean; when it is on, `ca_cert`,
  `tls_cert`, `tls_key` and `tls_passwd` are strings of 1 to 4096 characters and `tls_crl` one of
  0 to 4096.
- When a listener or client is made (`identity`; common/http_server/HttpServer.cpp
  `UseCertificate`, `ServerDecrypt`, `UsePrivateKey`; http_client_ctl/http_client/HttpClient.cpp
  and coordinator/common/http_client/HttpClientAsync.cpp `UseCert`, `ClientDecrypt`, `UseKey`;
  http_client_ctl/common/Util.cpp `PathCheck`, `FileToBuffer`; ConfigParams.cpp
  `DecryptPassword`): paths as given, relative ones from the working folder, at most 256
  characters of `[A-Za-z0-9_./~-]`, no `..`, no symbolic link; with the default checking every
  file's mode within 0400 and its owner the running user; with MINDIE_CHECK_INPUTFILES_PERMISSION=0
  the key and password files within 0640, the others any mode, and no owner check.
  `tls_passwd` is a plaintext file; its content without one trailing newline is the key's
  password, used only if the key is encrypted.
- On every handshake (`VerifyCallback`, `CertVerify` in ConfigParams.cpp): the peer chain
  verified against `ca_cert`, the CRL (`tls_crl`, checked then like the other files) for the
  peer's own certificate, and the peer's key RSA >= 2048 or EC >= 256 bits. No host name check.
  The key rule needs no code here: OpenSSL's security level 2 (Python's default) refuses RSA keys
  under 2048 bits in the peer's chain, and TLS 1.3 has no signature scheme for EC curves under
  256 bits, so no peer whose handshake succeeds could fail MindIE's check.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field, replace
from typing import Any

from supervisor_pd.simulator import tls
from supervisor_pd.simulator.files import motor_read_error

CONTROLLER_PAIRS = ("request_coordinator", "request_server", "http_server", "external_coordinator")
COORDINATOR_PAIRS = (
    "controller_server",
    "request_server",
    "mindie_client",
    "mindie_mangment",
    "etcd_server",
    "alarm_client",
    "external",
    "status",
)
ITEM_KEYS = ("ca_cert", "tls_cert", "tls_key", "tls_passwd")
MAX_STRING = 4096
# Older (KMC) images: every enabled pair also names the keystore, snake_case in the Controller's
# items, camelCase in the Coordinator's (MindIE-Motor 8fe0937 ControllerConfig.cpp:144-145,
# Configure.cpp:488-489). Either spelling anywhere marks a config as the older generation.
CONTROLLER_KMC = ("kmc_ksf_master", "kmc_ksf_standby")
COORDINATOR_KMC = ("kmcKsfMaster", "kmcKsfStandby")


@dataclass(frozen=True)
class TlsItems:
    pair: str
    enabled: bool
    ca_cert: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_passwd: str = ""
    tls_crl: str = ""
    check_files: bool = True
    kmc_master: str = ""  # older images only: tls_passwd is then KMC ciphertext (kmc.py)
    kmc_standby: str = ""

    @property
    def kmc(self) -> bool:
        return bool(self.kmc_master)


def check_files() -> bool:
    """GetCheckFiles (ControllerConfig.cpp; Configure.cpp): off only for the exact value "0"."""
    return os.environ.get("MINDIE_CHECK_INPUTFILES_PERMISSION") != "0"


def _string_problem(items: dict[str, Any], key: str, low: int) -> str | None:
    """IsJsonStringValid (http_client_ctl/params/ConfigParams.cpp)."""
    if key not in items:
        return f"JSON object is missing the expected key '{key}'."
    if not isinstance(items[key], str):
        return f"Invalid JSON value for key '{key}'. Expected a string."
    if not low <= len(items[key]) <= MAX_STRING:
        return (
            f"Invalid length for string value of key '{key}'. Length must be between [{low}, {MAX_STRING}], "
            f"but found: {len(items[key])}."
        )
    return None


def older_generation(tls_config: Any) -> bool:
    """Whether any items name a KMC keystore, in either spelling."""
    if not isinstance(tls_config, dict):
        return False
    keys = {*CONTROLLER_KMC, *COORDINATOR_KMC}
    return any(isinstance(items, dict) and keys & set(items) for items in tls_config.values())


def read_pairs(
    tls_config: Any, pairs: tuple[str, ...], kmc_keys: tuple[str, str] | None = None
) -> tuple[dict[str, TlsItems], list[str]]:
    """The switches and items of `pairs` from `tls_config`: (items by pair, problems). With
    `kmc_keys` (this binary's spelling) and a config of the older generation, every enabled pair
    must also name its keystore files."""
    if not isinstance(tls_config, dict):
        return {}, ["JSON object is missing the expected key 'tls_config'."]
    found: dict[str, TlsItems] = {}
    problems: list[str] = []
    checking = check_files()
    kmc = kmc_keys if kmc_keys is not None and older_generation(tls_config) else None
    for pair in pairs:
        switch = f"{pair}_tls_enable"
        if not isinstance(tls_config.get(switch), bool):
            problems.append(f"JSON object is missing the expected key '{switch}' (a boolean).")
            continue
        if not tls_config[switch]:
            found[pair] = TlsItems(pair, False)
            continue
        items = tls_config.get(f"{pair}_tls_items")
        if not isinstance(items, dict):
            problems.append(f"JSON object is missing the expected key '{pair}_tls_items'.")
            continue
        keys = ITEM_KEYS + (kmc or ())
        wrong = [_string_problem(items, key, 1) for key in keys] + [_string_problem(items, "tls_crl", 0)]
        wrong = [f"{pair}_tls_items: {problem}" for problem in wrong if problem]
        if wrong:
            problems += wrong
            continue
        found[pair] = TlsItems(
            pair,
            True,
            *(items[key] for key in (*ITEM_KEYS, "tls_crl")),
            check_files=checking,
            kmc_master=items[kmc[0]] if kmc else "",
            kmc_standby=items[kmc[1]] if kmc else "",
        )
    return found, problems


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:  # noqa: PTH123
        return handle.read()


@dataclass
class Made:
    identity: tls.Identity
    warnings: list[str] = field(default_factory=list)


def identity(items: TlsItems) -> Made:
    """Load one pair's files as UseCertificate/UseCert, ServerDecrypt/ClientDecrypt and
    UsePrivateKey/UseKey do, in that order. TlsError at the first refusal."""
    any_mode = 0o400 if items.check_files else 0o777
    secret = 0o400 if items.check_files else 0o640

    def check(path: str, what: str, limit: int) -> str:
        refused = motor_read_error(path, limit, items.check_files)
        if refused is not None:
            raise tls.TlsError(f"{refused}\n{what}")
        return path

    ca_path = check(items.ca_cert, f"Failed to convert CA file {items.ca_cert} to buffer.", any_mode)
    ca_pem = _read(ca_path)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=ca_pem.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError):
        raise tls.TlsError(f"Failed to add certificate authority from file {items.ca_cert}.") from None
    cert_path = check(items.tls_cert, "Certificate path check failed.", any_mode)
    passwd_path = check(items.tls_passwd, "Password file path check failed.", secret)
    password = _read(passwd_path)
    if items.kmc:
        password = _kmc_password(items, password)
    elif not password:
        # DecryptPassword reads buffer[strlen(buffer) - 1]: an empty file is undefined behaviour.
        raise tls.TlsError(f"Password file {items.tls_passwd} is empty.\nDecrypt password failed.")
    elif password.endswith(b"\n"):
        password = password[:-1]
    key_path = check(items.tls_key, "Key file path check failed.", secret)
    made = Made(tls.Identity(cert=cert_path, key=key_path, ca_pem=ca_pem, password=password))
    if items.tls_crl:
        crl_limit = 0o400 if items.check_files else 0o777
        refused = motor_read_error(items.tls_crl, crl_limit, items.check_files)
        data = b""
        if refused is None:
            try:
                data = _read(items.tls_crl)
                crl = tls.read_crl(data)
            except (OSError, tls.TlsError):
                refused = "Failed to load Certificate Revocation List (CRL)."
        if refused is not None:
            made.warnings.append(f"{refused} Every handshake of {items.pair} will fail.")
            made.identity = _with(made.identity, crl_unusable=True)
        else:
            if tls.crl_expired(crl):
                made.warnings.append(
                    f"Certificate Revocation List (CRL) file '{items.tls_crl}' has expired. "
                    "Current time is after the next update time."
                )
            made.identity = _with(made.identity, crls=(data,))
    return made


def _kmc_password(items: TlsItems, ciphertext: bytes) -> bytes:
    """Older images: DecryptPassword -> InitKMC -> CheckKMCFiles (both keystore files exist, mode
    within 0600 and owned by the running user, or any mode unchecked), then HseCryptor::Decrypt,
    which plaintext fails (MindIE-Motor 8fe0937 http_client_ctl/params/ConfigParams.cpp
    `CheckKMCFiles`, `InitKMC`, `DecryptPassword`)."""
    from supervisor_pd.simulator import kmc

    limit = 0o600 if items.check_files else 0o777
    for path, what in ((items.kmc_master, "master"), (items.kmc_standby, "standby")):
        refused = motor_read_error(path, limit, items.check_files)
        if refused is not None:
            raise tls.TlsError(f"{refused}\nFailed to check the path of KMC {what} file '{path}'.")
    try:
        return kmc.decrypt(ciphertext, items.kmc_master, items.kmc_standby)
    except kmc.KmcError as exc:
        raise tls.TlsError(
            f"Decrypt TLS  key password failed ({exc}) for file {items.tls_passwd}.\nDecrypt password failed."
        ) from None


def _with(identity_: tls.Identity, **changes: Any) -> tls.Identity:
    return replace(identity_, **changes)


def listener_context(items: TlsItems) -> tuple[ssl.SSLContext, list[str]]:
    made = identity(items)
    try:
        return tls.server_context(made.identity), made.warnings
    except tls.TlsError as exc:
        raise tls.TlsError(f"HTTP server failed on use private key file, reason is {exc}.") from None


def client_context(items: TlsItems) -> tuple[ssl.SSLContext, list[str]]:
    made = identity(items)
    try:
        return tls.client_context(made.identity, check_hostname=False), made.warnings
    except tls.TlsError as exc:
        raise tls.TlsError(f"Failed to use the private key file for the HTTP client, reason: {exc}.") from None


@dataclass(frozen=True)
class Link:
    """How a client reaches one kind of port: plain, or TLS with this context."""

    context: ssl.SSLContext | None = None

    def url(self, host: str, port: int | str, path: str) -> str:
        return f"{'https' if self.context is not None else 'http'}://{host}:{port}{path}"

    @property
    def options(self) -> dict[str, Any]:
        return {"ssl": self.context} if self.context is not None else {}
