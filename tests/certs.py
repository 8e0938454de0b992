"""A small test PKI, built with `cryptography`: a CA, leaves it signs, CRLs, and files with modes.

    ca = make_ca()                                      # RSA-3072, v3, CA:true, keyCertSign+cRLSign
    leaf = make_leaf(ca, ips=["127.0.0.1"])             # RSA-3072, serverAuth+clientAuth, SAN IP+DNS
    ec = make_leaf(ca, key="ec256")                     # EC P-256 ("ec224", "rsa2048" as well)
    old = make_leaf(ca, not_after=days(-1))             # expired yesterday
    early = make_leaf(ca, not_before=days(1))           # valid from tomorrow
    v1 = make_leaf(ca, version=1)                       # an X.509 v1 certificate (no extensions)
    crl = make_crl(ca, revoked=[leaf], next_update=days(-1))  # a CRL already past its nextUpdate
    write_pem(folder / "ca.pem", ca.cert_pem, 0o400)    # the folder is made; the mode is exact
    write_pem(folder / "key.pem", leaf.key_pem(password=b"secret"), 0o400)  # an encrypted key

Times are relative to now (`days(n)`, a timedelta). Every certificate gets a random serial number; RSA keys come from a small per-process ring
(`new_key`), since one takes a few tenths of a second to make.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyKind = str  # "rsa1024" | "rsa2048" | "rsa3072" | "rsa4096" | "ec224" | "ec256" | "ec384"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_CURVES = {"ec224": ec.SECP224R1, "ec256": ec.SECP256R1, "ec384": ec.SECP384R1}


def days(count: float) -> datetime.timedelta:
    return datetime.timedelta(days=count)


YESTERDAY = days(-1)
IN_A_MONTH = days(30)
IN_A_YEAR = days(365)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# RSA keys take a few tenths of a second each, and nearly every test makes several: each test
# process keeps a small ring of them per size and hands them out in turn. Two keys handed out one
# after the other always differ (a "wrong key" case stays wrong), and no test needs more than
# POOL_SIZE distinct keys at once.
POOL_SIZE = 8
_pool: dict[str, list[PrivateKey]] = {}
_turn: dict[str, int] = {}


def new_key(kind: KeyKind = "rsa3072") -> PrivateKey:
    """A private key: "rsa<bits>" (1024 and up), "ec224", "ec256" or "ec384"; RSA keys come from a
    per-process ring of POOL_SIZE, each different from the one handed out before it."""
    if not kind.startswith("rsa"):
        return ec.generate_private_key(_CURVES[kind]())
    ring = _pool.setdefault(kind, [])
    turn = _turn.get(kind, 0)
    _turn[kind] = turn + 1
    if len(ring) < POOL_SIZE:
        ring.append(rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:])))
        return ring[-1]
    return ring[turn % POOL_SIZE]


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with `password` when one is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    @property
    def serial(self) -> int:
        return self.cert.serial_number


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "supervisor-pd tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _hash_for(key: PrivateKey) -> hashes.HashAlgorithm:
    return hashes.SHA256()


def make_ca(
    name: str = "supervisor-pd test CA",
    key: KeyKind = "rsa3072",
    not_before: datetime.timedelta = YESTERDAY,
    not_after: datetime.timedelta = IN_A_YEAR,
) -> Issued:
    """A self-signed v3 CA: basicConstraints CA:true, keyUsage keyCertSign+cRLSign."""
    private = new_key(key)
    now = _now()
    subject = _name(name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + not_before)
        .not_valid_after(now + not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
        .sign(private, _hash_for(private))
    )
    return Issued(cert, private)


def make_leaf(
    ca: Issued,
    name: str = "localhost",
    key: KeyKind = "rsa3072",
    ips: Sequence[str] = ("127.0.0.1",),
    dns: Sequence[str] = ("localhost",),
    not_before: datetime.timedelta = YESTERDAY,
    not_after: datetime.timedelta = IN_A_YEAR,
    version: int = 3,
    server: bool = True,
    client: bool = True,
) -> Issued:
    """A leaf signed by `ca`: SAN with `ips` and `dns`, EKU serverAuth/clientAuth as asked, the
    validity window relative to now. `version=1` makes an X.509 v1 certificate (no extensions at
    all, so no SAN and no EKU either). Each leaf has its own key."""
    private = new_key(key)
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca.cert.subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + not_before)
        .not_valid_after(now + not_after)
    )
    if version == 1:
        return Issued(_as_v1(builder.sign(ca.key, _hash_for(ca.key)), ca.key), private)
    if version != 3:
        raise ValueError("version must be 1 or 3")
    names: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    names += [x509.DNSName(host) for host in dns]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return Issued(builder.sign(ca.key, _hash_for(ca.key)), private)


def make_crl(
    ca: Issued,
    revoked: Iterable[Issued | int] = (),
    next_update: datetime.timedelta = IN_A_MONTH,
    last_update: datetime.timedelta = YESTERDAY,
) -> bytes:
    """A PEM CRL signed by `ca` listing `revoked` (certificates or serial numbers), with its
    nextUpdate relative to now (negative: already past)."""
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now + last_update)
        .next_update(now + next_update)
    )
    for item in revoked:
        serial = item.serial if isinstance(item, Issued) else item
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now + last_update).build()
        )
    return builder.sign(ca.key, _hash_for(ca.key)).public_bytes(serialization.Encoding.PEM)


def write_pem(path: Path, data: bytes, mode: int = 0o400) -> Path:
    """Write `data` to `path` (parents made, an existing file replaced) and set `mode` exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    path.chmod(mode)
    return path


def write_files(folder: Path, files: dict[str, tuple[bytes, int]]) -> dict[str, Path]:
    """Write several files under `folder`: relative name -> (content, mode). Returns name -> path."""
    return {name: write_pem(folder / name, data, mode) for name, (data, mode) in files.items()}


# --- X.509 v1 ------------------------------------------------------------------------------
# cryptography builds v3 certificates only. A v1 one is the same TBSCertificate without the
# explicit [0] version field (and with no extensions), signed again.


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_items(data: bytes) -> list[bytes]:
    """The encoded TLV elements inside one DER constructed value's content."""
    items = []
    offset = 0
    while offset < len(data):
        start = offset
        offset += 1
        first = data[offset]
        offset += 1
        if first & 0x80:
            count = first & 0x7F
            length = int.from_bytes(data[offset : offset + count], "big")
            offset += count
        else:
            length = first
        offset += length
        items.append(data[start:offset])
    return items


def _content(tlv: bytes) -> bytes:
    first = tlv[1]
    skip = 2 + (first & 0x7F if first & 0x80 else 0)
    return tlv[skip:]


def _as_v1(cert: x509.Certificate, signer: PrivateKey) -> x509.Certificate:
    tbs_items = _der_items(_content(cert.tbs_certificate_bytes))
    if tbs_items[0][0] == 0xA0:  # [0] EXPLICIT Version
        tbs_items = tbs_items[1:]
    tbs_items = [item for item in tbs_items if item[0] != 0xA3]  # [3] extensions
    tbs = _der(0x30, b"".join(tbs_items))
    algorithm = _der_items(_content(cert.public_bytes(serialization.Encoding.DER)))[1]
    if isinstance(signer, rsa.RSAPrivateKey):
        signature = signer.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = signer.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = _der(0x30, tbs + algorithm + _der(0x03, b"\x00" + signature))
    v1 = x509.load_der_x509_certificate(der)
    assert v1.version == x509.Version.v1
    return v1
