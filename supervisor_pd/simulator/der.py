"""The few certificate and CRL facts MindIE checks, read straight from the DER encoding.

`cryptography` would cost a simulated Server about 11 MB of its 40 MB budget; these checks need
only a certificate's version, validity window and public key type and size, and a CRL's
nextUpdate. The encodings (RFC 5280) are walked element by element; anything that does not
decode is refused (`DerError`), as OpenSSL's PEM readers refuse it. Whether a certificate or key
really works is OpenSSL's to decide when `ssl` loads it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from dataclasses import dataclass

SEQUENCE, INTEGER, BIT_STRING, OID, UTC_TIME, GENERALIZED_TIME, VERSION_TAG = 0x30, 0x02, 0x03, 0x06, 0x17, 0x18, 0xA0
RSA_ENCRYPTION = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1
EC_PUBLIC_KEY = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1
CURVE_BITS = {
    bytes.fromhex("2a8648ce3d030107"): 256,  # prime256v1
    bytes.fromhex("2b81040021"): 224,  # secp224r1
    bytes.fromhex("2b81040022"): 384,  # secp384r1
    bytes.fromhex("2b81040023"): 521,  # secp521r1
    bytes.fromhex("2b8104000a"): 256,  # secp256k1
    bytes.fromhex("2a8648ce3d030101"): 192,  # prime192v1
}


class DerError(ValueError):
    pass


@dataclass(frozen=True)
class CertFacts:
    version: int  # 1, 2 or 3
    not_before: datetime.datetime
    not_after: datetime.datetime
    key_kind: str  # "RSA", "EC" or the algorithm OID in dotted hex
    key_bits: int


@dataclass(frozen=True)
class CrlFacts:
    next_update: datetime.datetime | None


def pem_blocks(data: bytes, label: str) -> list[bytes]:
    """The DER contents of every `-----BEGIN {label}-----` block, in order."""
    pattern = re.compile(rb"-----BEGIN " + label.encode() + rb"-----(.+?)-----END " + label.encode() + rb"-----", re.S)
    blocks = []
    for match in pattern.finditer(data):
        try:
            blocks.append(base64.b64decode(b"".join(match.group(1).split()), validate=True))
        except (binascii.Error, ValueError):
            raise DerError(f"bad base64 in a {label} block") from None
    return blocks


def _element(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at `offset`."""
    if offset + 2 > end:
        raise DerError("truncated")
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > end:
            raise DerError("bad length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    else:
        length = first
    if offset + length > end:
        raise DerError("truncated")
    return tag, offset, offset + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _element(data, start, end)
        items.append(item)
        start = item[2]
    return items


def _expect(item: tuple[int, int, int], tag: int) -> tuple[int, int, int]:
    if item[0] != tag:
        raise DerError(f"expected tag {tag:#x}, found {item[0]:#x}")
    return item


def _time(data: bytes, item: tuple[int, int, int]) -> datetime.datetime:
    tag, start, end = item
    text = data[start:end].decode("ascii", errors="replace")
    try:
        if tag == UTC_TIME:
            moment = datetime.datetime.strptime(text, "%y%m%d%H%M%SZ")
            if moment.year >= 2050:  # RFC 5280: UTCTime years 50-99 are 19xx
                moment = moment.replace(year=moment.year - 100)
        elif tag == GENERALIZED_TIME:
            moment = datetime.datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise DerError("not a time")
    except ValueError:
        raise DerError(f"bad time {text!r}") from None
    return moment.replace(tzinfo=datetime.UTC)


def certificate(der: bytes) -> CertFacts:
    outer = _expect(_element(der, 0, len(der)), SEQUENCE)
    parts = _children(der, outer[1], outer[2])
    if len(parts) != 3:
        raise DerError("a certificate has three parts")
    tbs = _children(der, *_expect(parts[0], SEQUENCE)[1:])
    version = 1
    if tbs and tbs[0][0] == VERSION_TAG:
        inner = _expect(_element(der, tbs[0][1], tbs[0][2]), INTEGER)
        version = int.from_bytes(der[inner[1] : inner[2]], "big") + 1
        tbs = tbs[1:]
    if len(tbs) < 6:
        raise DerError("short TBSCertificate")
    validity = _children(der, *_expect(tbs[3], SEQUENCE)[1:])
    if len(validity) != 2:
        raise DerError("bad validity")
    kind, bits = _public_key(der, _expect(tbs[5], SEQUENCE))
    return CertFacts(version, _time(der, validity[0]), _time(der, validity[1]), kind, bits)


def _public_key(der: bytes, spki: tuple[int, int, int]) -> tuple[str, int]:
    algorithm, key = _children(der, spki[1], spki[2])[:2]
    fields = _children(der, *_expect(algorithm, SEQUENCE)[1:])
    oid = der[_expect(fields[0], OID)[1] : fields[0][2]]
    if oid == RSA_ENCRYPTION:
        _, start, end = _expect(key, BIT_STRING)
        numbers = _children(der, *_expect(_element(der, start + 1, end), SEQUENCE)[1:])
        modulus = der[_expect(numbers[0], INTEGER)[1] : numbers[0][2]]
        return "RSA", int.from_bytes(modulus, "big").bit_length()
    if oid == EC_PUBLIC_KEY:
        if len(fields) < 2 or fields[1][0] != OID:
            raise DerError("EC key without a named curve")
        return "EC", CURVE_BITS.get(der[fields[1][1] : fields[1][2]], 0)
    return oid.hex(), 0


def crl(der: bytes) -> CrlFacts:
    outer = _expect(_element(der, 0, len(der)), SEQUENCE)
    parts = _children(der, outer[1], outer[2])
    if len(parts) != 3:
        raise DerError("a CRL has three parts")
    tbs = _children(der, *_expect(parts[0], SEQUENCE)[1:])
    if tbs and tbs[0][0] == INTEGER:
        tbs = tbs[1:]  # version
    if len(tbs) < 3:
        raise DerError("short TBSCertList")
    _time(der, tbs[2])  # thisUpdate
    next_update = _time(der, tbs[3]) if len(tbs) > 3 and tbs[3][0] in (UTC_TIME, GENERALIZED_TIME) else None
    return CrlFacts(next_update)
