"""The simulated Server's TLS at start and in use (see tlsconf.py for the config-time checks and
the three moments): the HTTPS contexts of its listeners and the mutual TLS of the P->D link.

Only imported when a TLS switch is on.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from supervisor_pd.simulator import tls
from supervisor_pd.simulator.server.tlsconf import (
    FILE_MODE_600,
    KEY_BYTES,
    MIN_KEY_BITS,
    CertSet,
    InterComm,
    Kmc,
    _file_valid,
    _regular_file_path,
    install_dir,
)

TOKEN_LENGTH = (8, 128)  # MIN_TOKEN_LEN, MAX_TOKEN_LEN (18f6576 hse_cryptor_helper.h:28-29)

TITLES = {"business": "Business", "management": "Management", "metrics": "Metrics"}
ENDPOINT_FAILED = "Failed to init endpoint! Please check the service log or console output."


def _canonical(path: str) -> str | None:
    """CanonicalPath (common_util.cpp): realpath, or None if it does not resolve."""
    if not path or len(path) > 4096 or not Path(path).exists():
        return None
    return os.path.realpath(path)


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:  # noqa: PTH123
        return handle.read()


def _loads_as_ca(data: bytes) -> bool:
    """SSL_CTX_load_verify_locations succeeds: at least one certificate OpenSSL can read."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=data.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError):
        return False
    return True


def kmc_password(work: str, kmc: Kmc, password_file: str, paths: tuple[str, str, str] | None = None) -> bytes:
    """Older images: the key password, KMC-decrypted (MindIE-LLM 18f6576 http_ssl.cpp
    `HttpSsl::PasswordCallback`, `ValidKmcPath`; grpc_communication_mng.cpp
    `GetKeyPassWordContent`): the keystore files and the password file under the install folder,
    each no link, inside it, owned by the running user with no mode bits outside 0600 (whatever
    the permission switch says); the ciphertext opened with that keystore (kmc.py, an imitation);
    the password 8 to 128 characters. TlsError otherwise."""
    from supervisor_pd.simulator import kmc as imitation

    master, standby, secret = paths or (work + kmc.master, work + kmc.standby, work + password_file)
    for path, field in ((master, "kmcKsfMaster"), (standby, "kmcKsfStandby"), (secret, "tlsPKPwd")):
        problem = _regular_file_path(path, work) or _file_valid(path, FILE_MODE_600)
        if problem:
            raise tls.TlsError(f"Get server.key.pem secret failed by {field} path: {problem}")
    try:
        password = imitation.decrypt(_read(secret), master, standby)
    except imitation.KmcError as exc:
        raise tls.TlsError(f"Get server.key.pem secret failed by Hse cryptor helper decrypt failed ({exc})") from None
    low, high = TOKEN_LENGTH
    if not low <= len(password) <= high:
        raise tls.TlsError(
            f"Get server.key.pem secret failed. The length of server.key.pem secret must in [{low} , {high}]"
        )
    return password


@dataclass(frozen=True)
class HttpsContext:
    context: ssl.SSLContext
    warnings: tuple[str, ...]


def https_context(cert_set: CertSet) -> HttpsContext:
    """HttpSsl::Start for one plane (MindIE-LLM http_ssl.cpp `InitTlsPath`, `InitSSL`,
    `LoadCaCert`, `LoadServerCert`, `CertVerify`, `LoadPrivateKey`): files under the install
    folder; CA files of the plane from tlsCaPath; only the first certificate of the cert file
    (SSL_CTX_use_certificate_file); the certificate valid now with a key of at least 3072 bits
    (EVP_PKEY_get_bits: an EC key never is); an unencrypted key (no password callback) that
    matches it; CRLs checked for the whole chain (CRL_CHECK | CRL_CHECK_ALL). A CRL past its
    nextUpdate is only a warning here, and OpenSSL then refuses every client; a CRL that cannot
    be read refuses every client too. TlsError carries MindIE's lines."""
    work = install_dir()
    title = TITLES[cert_set.plane]

    def fail(message: str) -> tls.TlsError:
        return tls.TlsError(f"{message}\n{title} Http ssl Initialize failed")

    crls: list[bytes] = []
    warnings: list[str] = []
    unusable = False
    if cert_set.crl_path and cert_set.crl_files:
        for name in cert_set.crl_files:  # HttpSsl::CaVerifyCallback, LoadCertRevokeListFile
            path = _canonical(work + cert_set.crl_path + name)
            try:
                data = _read(path) if path else b""
                crl = tls.read_crl(data)
            except (OSError, tls.TlsError):
                warnings.append(f"Failed to load cert revocation list {name}: every client will be refused")
                unusable = True
                continue
            if tls.crl_expired(crl):
                warnings.append("The crl [cert revocation list] has expired! current time after next update time.")
            crls.append(data)
    ca_pem = b""
    for name in cert_set.ca_files:
        path = _canonical(work + cert_set.ca_path + name)
        if path is None:
            raise fail(f"Failed to check ca path with ca file {name}\nFailed to load ca file list")
        data = _read(path)
        if not _loads_as_ca(data):
            raise fail("TLS load verify file failed\nFailed to load ca cert")
        ca_pem += data if data.endswith(b"\n") else data + b"\n"
    cert_path = _canonical(work + cert_set.cert)
    if cert_path is None:
        raise fail("Get invalid cert path\nFailed to load server cert")
    try:
        cert = tls.first_certificate(_read(cert_path))
    except (OSError, tls.TlsError):
        raise fail("TLS use certification file failed\nFailed to load server cert") from None
    when = tls.validity_problem(cert)
    if when is not None:
        raise fail(f"Certificate has expired! current time {when} cert time.\nFailed to load server cert")
    _, bits = tls.key_facts(cert)
    if bits < MIN_KEY_BITS:
        raise fail(f"Certificate key length is too short, key length < {MIN_KEY_BITS}\nFailed to load server cert")
    key_path = _canonical(work + cert_set.key)
    if key_path is None:
        raise fail("Failed to get private key path\nFailed to load private key")
    password = None
    if cert_set.kmc is not None and cert_set.key_password:  # older images, a password named
        try:
            password = kmc_password(work, cert_set.kmc, cert_set.key_password)
        except tls.TlsError as exc:
            raise fail(f"{exc}\nFailed to set use private key file\nFailed to load private key") from None
    identity = tls.Identity(
        cert=cert_path,
        key=key_path,
        ca_pem=ca_pem,
        crls=tuple(crls),
        crl_chain=True,
        crl_unusable=unusable,
        password=password,
        leaf_only=True,
    )
    try:
        context = tls.server_context(identity)
    except tls.TlsError as exc:
        raise fail(f"Failed to set use private key file ({exc})\nFailed to load private key") from None
    return HttpsContext(context, tuple(warnings))


# --- the P->D link (gRPC in MindIE) ---------------------------------------------------------


def _real_file_path(value: str, work: str) -> tuple[str, str | None]:
    """FileUtils::GetRealFilePath: the install folder + the value unless it starts with it; then
    RegularFilePath against "/" (a symbolic link is refused; the file need not exist yet)."""
    path = value if value.startswith(work) else work + value
    return path, _regular_file_path(path, "/")


@dataclass(frozen=True)
class InterCommPaths:
    cas: tuple[str, ...]
    cert: str
    key: str
    crls: tuple[str, ...]
    kmc: tuple[str, str, str] | None = None  # older images: master, standby, password file


def intercomm_paths(settings: InterComm) -> InterCommPaths:
    """GrpcCommunicationMng::GetSecFilePath; TlsError at the first refusal."""
    work = install_dir()
    if not settings.ca_files:
        raise tls.TlsError("Tls ca file is empty")
    cas = []
    for name in settings.ca_files:
        path, problem = _real_file_path(settings.ca_path + name, work)
        if problem:
            raise tls.TlsError(f"Failed to get ca path because {problem}")
        cas.append(path)
    cert, problem = _real_file_path(settings.cert, work)
    if problem:
        raise tls.TlsError(f"Failed to get token path because {problem}")
    key, problem = _real_file_path(settings.key, work)
    if problem:
        raise tls.TlsError(f"Failed to get cert key path because {problem}")
    secret = None
    if settings.kmc is not None:  # older images (18f6576 grpc_communication_mng.cpp:1050-1081)
        secret, problem = _real_file_path(settings.key_password, work)
        if problem:
            raise tls.TlsError(f"Failed to get private key path because {problem}")
    crls = []
    if settings.crl_path:
        for name in settings.crl_files:
            path, problem = _real_file_path(settings.crl_path + name, work)
            if problem:
                raise tls.TlsError(f"Failed to get ca path because {problem}")
            crls.append(path)
    kmc = None
    if settings.kmc is not None and secret is not None:
        master, problem = _real_file_path(settings.kmc.master, work)
        if problem:
            raise tls.TlsError(f"Failed to get kmc master path because {problem}")
        standby, problem = _real_file_path(settings.kmc.standby, work)
        if problem:
            raise tls.TlsError(f"Failed to get kmc slave path because {problem}")
        kmc = (master, standby, secret)
    return InterCommPaths(tuple(cas), cert, key, tuple(crls), kmc)


def _check_cert(path: str) -> None:
    """GrpcTlsFunctionExpansion::CheckCert: readable, a PEM certificate, X.509 v3, valid now."""
    try:
        data = _read(path)
    except OSError:
        raise tls.TlsError(f"Failed to open cert file, path: {path}") from None
    try:
        cert = tls.first_certificate(data)
    except tls.TlsError:
        raise tls.TlsError(f"Certificate file is empty or invalid, path: {path}") from None
    if not tls.is_v3(cert):
        raise tls.TlsError(f"Failed to parse X509 certificate, path: {path}, format may be invalid")
    when = tls.validity_problem(cert)
    if when == "after":
        raise tls.TlsError(f"Cert has expired! current time after cert time, path: {path}")
    if when == "before":
        raise tls.TlsError("Cert has expired! current time before cert time.")


def _check_crl(path: str) -> None:
    """GrpcTlsFunctionExpansion::CheckCrl: readable, a PEM CRL, not past its nextUpdate."""
    try:
        data = _read(path)
    except OSError:
        raise tls.TlsError(f"CRL file is empty or invalid, path: {path}") from None
    try:
        crl = tls.read_crl(data)
    except tls.TlsError:
        raise tls.TlsError(f"Failed to parse X509 CRL, path: {path}") from None
    if tls.crl_expired(crl):
        raise tls.TlsError(f"Crl has expired! current time after next update time, path: {path}")


def intercomm_start_problem(settings: InterComm) -> str | None:
    """GrpcCommunicationMng::Init with TLS (GetSecFilePath, then CheckTlsOption on every CA file,
    the certificate and every CRL): the first refusal with MindIE's following lines, or None."""
    try:
        paths = intercomm_paths(settings)
        for path in paths.cas:
            _check_cert(path)
        _check_cert(paths.cert)
        for path in paths.crls:
            _check_crl(path)
    except tls.TlsError as exc:
        return (
            f"{exc}\nFailed to check sec file\nFailed to init grpc communication manager\n"
            "Failed to register init grpc service\nFailed to start grpc wrapper in DMI scene."
        )
    return None


def _file_content(path: str, what: str) -> bytes:
    """GrpcCommunicationMng::GetFileContent: the file exists, is not empty, belongs to the running
    user and has no mode bits outside 0600 (refused in both branches of the permission switch)."""
    problem = _file_valid(path, FILE_MODE_600)
    if problem:
        raise tls.TlsError(f"The file is invalid because {problem}\n{what}")
    return _read(path)


def intercomm_identity(settings: InterComm) -> tls.Identity:
    """GrpcCommunicationMng::GetCertificateProvider and SetTlsOps, run when the gRPC listener
    starts and for every new client: TlsError (MindIE's lines) if they fail. The provider's root
    certificates are the *last* CA file's (each file read overwrites the one before)."""
    paths = intercomm_paths(settings)
    _file_content(paths.cert, "Failed to get cert file content")
    key = _file_content(paths.key, "Failed to get private key content\nFailed to get key file content")
    low, high = KEY_BYTES
    if not low <= len(key) <= high:
        raise tls.TlsError(f"Len is not in [{low}, {high}]\nFailed to get key file content")
    root = b""
    for path in paths.cas:
        root = _file_content(path, "Failed to get ca file content")
    crls = []
    for path in paths.crls:
        data = _file_content(path, "Failed to get crl content")
        try:
            tls.read_crl(data)
        except tls.TlsError:
            raise tls.TlsError("Failed to get crl provider") from None
        crls.append(data)
    password = None
    if settings.kmc is not None and paths.kmc is not None:  # older images: always KMC
        password = kmc_password(install_dir(), settings.kmc, settings.key_password, paths.kmc)
    return tls.Identity(
        cert=paths.cert, key=paths.key, ca_pem=root, crls=tuple(crls), crl_chain=False, password=password
    )


class InterCommTls:
    """The link's contexts, made when first needed and kept once made (MindIE keeps a sender per
    decode address once it is created; a failed creation is tried again next time)."""

    def __init__(self, settings: InterComm) -> None:
        self.settings = settings
        self._server: ssl.SSLContext | None = None
        self._client: ssl.SSLContext | None = None

    def server(self) -> ssl.SSLContext:
        """The listener's context: a client certificate required, gRPC's TLS 1.2-1.3."""
        if self._server is None:
            self._server = tls.server_context(intercomm_identity(self.settings), tls13_only=False)
        return self._server

    def client(self) -> ssl.SSLContext:
        """P's context toward D: the same identity; D's certificate must name D's IP in its SAN
        (gRPC's default TLS channel options verify the target name)."""
        if self._client is None:
            self._client = tls.client_context(intercomm_identity(self.settings), check_hostname=True, tls13_only=False)
        return self._client
