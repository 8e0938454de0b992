"""TLS for the simulated binaries: SSL contexts made the way MindIE's own OpenSSL set-ups make them,
and the certificate facts MindIE checks before it uses them.

Only imported when a TLS switch is on. Certificates are read with `der.py`, not `cryptography`,
which would cost a simulated Server a quarter of its memory budget. Which binary checks what, and
where MindIE does it, is in `server/tlsconf.py` (the Server) and `motortls.py` (Controller and
Coordinator); this module holds what they share.

What the contexts do, whoever builds them:
- TLS 1.3 only for every HTTPS listener and client (MindIE-LLM http_ssl.cpp `HttpSsl::InitSSL`
  SSL_CTRL_SET_MIN_PROTO_VERSION TLS1_3_VERSION; MindIE-Motor `Ssl::context::tlsv13_server` /
  `tlsv13_client`); the gRPC stand-in keeps gRPC's own range, TLS 1.2 to 1.3.
- A listener requires a client certificate that chains to its CA (`SSL_VERIFY_PEER |
  SSL_VERIFY_FAIL_IF_NO_PEER_CERT` everywhere in MindIE); a client verifies the server's chain.
- CRLs, when configured, are checked as OpenSSL checks them with `X509_V_FLAG_CRL_CHECK` (leaf) or
  `| X509_V_FLAG_CRL_CHECK_ALL` (chain): a certificate whose issuer has no CRL fails, and so does
  any certificate once the CRL is past its nextUpdate (OpenSSL's `check_crl_time`), whatever
  warning MindIE printed before.
- Python's default security level (2) refuses RSA keys under 2048 bits anywhere in a peer's chain
  (MindIE's own OpenSSL keeps level 1; a CA key that small is refused here only), and TLS 1.3
  signs with EC curves of 256 bits or more only: MindIE-Motor's peer key rule (RSA >= 2048, EC >=
  256) holds for every handshake that succeeds.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from supervisor_pd.simulator import der

HANDSHAKE_SECONDS = 10.0
PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)


class TlsError(Exception):
    """A file or a certificate MindIE would refuse; the message is MindIE-like."""


class EncryptedKey(Exception):  # raised by the password callback, caught below
    pass


@dataclass(frozen=True)
class Identity:
    """What one end presents and trusts: file paths as the binary resolved them."""

    cert: str
    key: str
    ca_pem: bytes  # the trusted CA certificates, concatenated
    crls: tuple[bytes, ...] = ()  # PEM CRLs
    crl_chain: bool = False  # CRL_CHECK_ALL (every certificate of the chain) rather than the leaf
    crl_unusable: bool = False  # a CRL is configured but cannot be read: every peer fails
    password: bytes | None = None  # None: the key must not be encrypted (no password source)
    leaf_only: bool = False  # load only the first certificate of `cert` (SSL_CTX_use_certificate_file)


# --- contexts ------------------------------------------------------------------------------


def server_context(identity: Identity, tls13_only: bool = True) -> ssl.SSLContext:
    """A listener's context: the identity's certificate, a client certificate required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(context, identity, tls13_only)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(identity: Identity, check_hostname: bool, tls13_only: bool = True) -> ssl.SSLContext:
    """A client's context: the identity's certificate offered, the server's chain verified; the
    server's name (its IP, in SAN) checked only when `check_hostname`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    _configure(context, identity, tls13_only)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _configure(context: ssl.SSLContext, identity: Identity, tls13_only: bool) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_3 if tls13_only else ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    try:
        context.load_verify_locations(cadata=identity.ca_pem.decode("ascii", errors="replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise TlsError(f"TLS load verify file failed: {_reason(exc)}") from None
    if identity.crls or identity.crl_unusable:
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN if identity.crl_chain else ssl.VERIFY_CRL_CHECK_LEAF
        if identity.crls and not identity.crl_unusable:
            with _temporary(b"".join(identity.crls)) as path:
                try:
                    context.load_verify_locations(cafile=path)
                except ssl.SSLError as exc:
                    raise TlsError(f"Failed to load cert revocation list: {_reason(exc)}") from None
    _load_identity(context, identity)


def _load_identity(context: ssl.SSLContext, identity: Identity) -> None:
    def no_password() -> bytes:
        raise EncryptedKey

    password: Any = identity.password if identity.password is not None else no_password
    try:
        if identity.leaf_only:
            with open(identity.cert, "rb") as handle:  # noqa: PTH123
                first = PEM_CERT.search(handle.read())
            with _temporary(first.group(0) if first else b"") as path:
                context.load_cert_chain(path, identity.key, password)
        else:
            context.load_cert_chain(identity.cert, identity.key, password)
    except EncryptedKey:
        raise TlsError("the private key is encrypted and no password is given for it") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(_reason(exc)) from None


@contextlib.contextmanager
def _temporary(data: bytes) -> Iterator[str]:
    """`data` in a file only this process can read, removed afterwards (public material only:
    certificates and CRLs; keys are always read from where they are)."""
    descriptor, path = tempfile.mkstemp(prefix="simtls-", suffix=".pem")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # noqa: PTH108


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc)


# --- certificate facts (read from the DER: no cryptography in a simulated Server) ------------


def first_certificate(data: bytes) -> der.CertFacts:
    """The first PEM certificate in `data`, as PEM_read_X509 reads it, or TlsError."""
    try:
        blocks = der.pem_blocks(data, "CERTIFICATE")
        if not blocks:
            raise der.DerError("no certificate")
        return der.certificate(blocks[0])
    except der.DerError:
        raise TlsError("Certificate file is empty or invalid") from None


def is_v3(cert: der.CertFacts) -> bool:
    return cert.version == 3


def validity_problem(cert: der.CertFacts) -> str | None:
    """'after' (notAfter has passed) or 'before' (notBefore is still ahead), or None."""
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_after < now:
        return "after"
    if cert.not_before > now:
        return "before"
    return None


def key_facts(cert: der.CertFacts) -> tuple[str, int]:
    """('RSA'|'EC'|other, bits) as EVP_PKEY_id / EVP_PKEY_get_bits report them."""
    return cert.key_kind, cert.key_bits


def read_crl(data: bytes) -> der.CrlFacts:
    """The first PEM CRL in `data` (PEM_read_X509_CRL), or TlsError."""
    try:
        blocks = der.pem_blocks(data, "X509 CRL")
        if not blocks:
            raise der.DerError("no CRL")
        return der.crl(blocks[0])
    except der.DerError:
        raise TlsError("Failed to parse X509 CRL") from None


def crl_expired(crl: der.CrlFacts) -> bool:
    """X509_cmp_current_time(nextUpdate) < 0; a CRL without nextUpdate never expires."""
    return crl.next_update is not None and crl.next_update < datetime.datetime.now(datetime.UTC)
