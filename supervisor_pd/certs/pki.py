"""Making the pod's certificates: a private CA (or the site's) and one leaf for every process.

One leaf serves every MindIE listener and client in the pod and supervisor_pd's own client: all
of them sit behind the same IPs (127.0.0.1 and the pod IP), MindIE's clients check only the chain
(MindIE-Motor HttpClient.cpp), and one key means one thing to renew. The leaf is what MindIE's
Server accepts (MindIE-LLM http_ssl.cpp: RSA of at least 3072 bits, within its validity) and what
its gRPC link accepts (grpc_tls_function_expansion.cpp: X.509 v3). Keys are written unencrypted:
current MindIE loads them with no password callback (http_ssl.cpp, grpc_communication_mng.cpp).

Key generation is nearly all of the cost, and an RSA-3072 key takes from tens of milliseconds to
most of a second (a random search for primes; see BENCHMARKS.md, "certificates"). So the leaf's key
is started early (`KeyPrefetch`, while discovery runs its host tools) on a thread of its own
(OpenSSL releases the GIL), and the private CA's key is EC P-384, made in a millisecond: MindIE
checks the key size of the certificate a peer presents, not of its issuer (MindIE-LLM http_ssl.cpp
`CertVerify` on the server certificate; MindIE-Motor ConfigParams.cpp `CertVerify` on the peer
certificate), and OpenSSL verifies an RSA certificate signed by an EC CA like any other chain.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

# cryptography is imported where a certificate or key is made or read, not with this module: a
# start without TLS (most of them) does not pay for its import, a tenth of a plan's CPU.
if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

KEY_BITS = 3072  # MindIE-LLM http_server's minimum for a certificate key
# Clocks of the pod and of a peer may differ a little; a certificate that starts "now" would be
# refused as not yet valid by a peer a second behind.
BACKDATE = dt.timedelta(minutes=5)
CA_NAME = "supervisor-pd pod CA"


@dataclass(frozen=True)
class Authority:
    """A CA able to sign: its certificate and key (the key never leaves this process unless the site
    mounted it)."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Material:
    """The PEM files every process of the pod is given."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    crl_pem: bytes | None
    not_after: dt.datetime  # of the leaf, UTC
    not_before: dt.datetime
    kmc: Kmc | None = None  # old MindIE images: the key is KMC-encrypted (docs/tls.md)


@dataclass(frozen=True)
class Kmc:
    """What an old (KMC) MindIE image needs beside the certificate, made by MindIE's own tool, and the
    plaintext client certificate supervisor_pd presents (it cannot decrypt the pod key)."""

    password: bytes  # KMC ciphertext of the key's password (gen_cert's cert_passwd.txt)
    ksf_master: bytes  # the KMC keystore import_cert wrote (tools/pmt/master/ksfa)
    ksf_standby: bytes  # (tools/pmt/standby/ksfb)
    client_cert_pem: bytes
    client_key_pem: bytes


def new_key() -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


class KeyPrefetch:
    """Keys being made in the background; `take()` waits for one (or makes one when none is left)."""

    def __init__(self, count: int) -> None:
        self._pool = ThreadPoolExecutor(count, thread_name_prefix="keygen")
        self._futures = [self._pool.submit(new_key) for _ in range(count)]
        self._pool.shutdown(wait=False)

    def take(self) -> rsa.RSAPrivateKey:
        return self._futures.pop(0).result() if self._futures else new_key()


def new_ca_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP384R1())


def make_authority(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, now: dt.datetime, lifetime: dt.timedelta
) -> Authority:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, _digest(key))
    )
    return Authority(cert, key)


def _digest(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) else hashes.SHA256()


def issue_leaf(
    authority: Authority,
    key: rsa.RSAPrivateKey,
    ips: tuple[str, ...],
    names: tuple[str, ...],
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> x509.Certificate:
    """A v3 leaf for both ends of mutual TLS: serverAuth and clientAuth, SAN = the pod's IPs and names."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    alt: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    alt += [x509.DNSName(name) for name in names]
    not_after = min(now + lifetime, authority.cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else ips[0])]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - BACKDATE, authority.cert.not_valid_before_utc))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(authority.key, _digest(authority.key))
    )


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def generate(
    ips: tuple[str, ...],
    names: tuple[str, ...],
    lifetime: dt.timedelta,
    authority: Authority | None = None,
    now: dt.datetime | None = None,
    keys: KeyPrefetch | None = None,
) -> tuple[Authority, Material]:
    """A leaf for the pod, signed by `authority` (a new private CA valid 10x the leaf when None)."""
    now = now or dt.datetime.now(dt.UTC)
    keys = keys or KeyPrefetch(1)
    if authority is None:
        authority = make_authority(new_ca_key(), now, lifetime * 10)
    leaf_key = keys.take()
    leaf = issue_leaf(authority, leaf_key, ips, names, now, lifetime)
    return authority, Material(
        ca_pem=cert_pem(authority.cert),
        cert_pem=cert_pem(leaf),
        key_pem=key_pem(leaf_key),
        crl_pem=None,
        not_after=leaf.not_valid_after_utc,
        not_before=leaf.not_valid_before_utc,
    )


def load_authority(cert_data: bytes, key_data: bytes, password: bytes | None) -> Authority:
    """A site CA mounted to sign with; ValueError when its key cannot sign for its certificate (that
    it is a CA, and valid, is certs/check.py's check_ca, run by the caller)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    cert = x509.load_pem_x509_certificate(cert_data)
    key = serialization.load_pem_private_key(key_data, password=password)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is neither RSA nor EC")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise ValueError("the CA key does not belong to the CA certificate")
    return Authority(cert, key)
