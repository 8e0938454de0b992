"""An imitation of KMC, the key management of older MindIE images: an opaque token, no cryptography.

Older images (MindIE-LLM before 2ad5b22, MindIE-Motor before 1743473) keep private-key passwords
as KMC ciphertext, decrypted with a keystore of two files (`ksfa`, the master, and `ksfb`, the
standby) through the closed-source libhse_cryptor. The simulator cannot run KMC. It imitates the
*shape*: which files must exist, that the password file must be ciphertext and not plaintext,
and that ciphertext opens only with the keystore it was made with.

- A simulated keystore file holds `SIMKMC1-KSF:<id>` (16 hex digits, the same in both files).
- Simulated ciphertext is `SIMKMC1:<id>:<the password in base64>`. It is not secret: base64 is an
  encoding, not encryption. Plaintext (anything without the marker) is refused.

`config_mindie_server_tls_cert.py` (certtool.py) makes both, as MindIE's tool makes the real ones.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from pathlib import Path

MARKER = b"SIMKMC1:"
KSF_MARKER = b"SIMKMC1-KSF:"
_TOKEN = re.compile(rb"SIMKMC1:([0-9a-f]{16}):([A-Za-z0-9+/=]+)\n?")
_KSF = re.compile(rb"SIMKMC1-KSF:([0-9a-f]{16})\n?")


class KmcError(Exception):
    pass


def new_keystore() -> bytes:
    """The content of a new keystore's master and standby files."""
    return KSF_MARKER + secrets.token_hex(8).encode() + b"\n"


def keystore_id(path: str | Path) -> bytes | None:
    try:
        match = _KSF.fullmatch(Path(path).read_bytes())
    except OSError:
        return None
    return match.group(1) if match else None


def encrypt(password: bytes, keystore: str | Path) -> bytes:
    ident = keystore_id(keystore)
    if ident is None:
        raise KmcError(f"{keystore} is not a keystore file")
    return MARKER + ident + b":" + base64.b64encode(password)


def is_ciphertext(data: bytes) -> bool:
    return data.startswith(MARKER)


def decrypt(ciphertext: bytes, master: str | Path, standby: str | Path) -> bytes:
    """The password in `ciphertext`, if the keystore (master, else standby) is the one it was
    made with; KmcError otherwise, plaintext included."""
    match = _TOKEN.fullmatch(ciphertext)
    if match is None:
        raise KmcError("the password file does not hold KMC ciphertext")
    if match.group(1) not in {keystore_id(master), keystore_id(standby)} - {None}:
        raise KmcError("the ciphertext was not made with this keystore")
    try:
        return base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise KmcError("the ciphertext is damaged") from None
