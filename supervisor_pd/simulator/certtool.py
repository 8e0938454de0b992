"""The simulated `config_mindie_server_tls_cert.py`, MindIE's certificate tool of the KMC
generation: its name, arguments and outputs, with kmc.py's opaque token for KMC ciphertext.

    config_mindie_server_tls_cert.py <project_path> import_cert <ca.pem> <ca.key.pem>
    config_mindie_server_tls_cert.py <project_path> gen_cert <gen_cert.json> [--ip=a,b]

As the MindIE PD deployment guide uses them (MindIE-Motor 8fe0937 docs/zh/User_Guide/
PD分离环境配置.md :205-300, service_oriented_optimization_tool.md :272-420, :552-610):

- `import_cert` asks for the private key's password twice ("Password for private key file: ",
  "Retype password for private key file: "; read from standard input when it is not a
  terminal), checks that it opens the key and that the certificate is X.509 v3, valid, RSA of at
  least 3072 bits and matches the key, then writes `<project_path>/ca_passwd.txt` (the password as
  simulated KMC ciphertext) and, unless it is there already, the keystore
  `./tools/pmt/master/ksfa` and `./tools/pmt/standby/ksfb` in the current folder.
- `gen_cert` reads gen_cert.json (`ca_cert`, `ca_key`, `ca_key_pwd`, `cert_config`,
  `output_path`, `kmc_ksf_master`, `kmc_ksf_standby`; paths from the current folder) and the
  certificate description it names (`subject`, `expired_time` in days, `serial_number`,
  `req_distinguished_name`, `alt_names.IP` / `.DNS`), opens the CA key with the password in
  `ca_key_pwd`, and writes `cert.pem` (RSA-3072, v3, SAN with the `--ip` addresses and the
  description's, serverAuth + clientAuth), `cert.key.pem` (encrypted with a new random password)
  and `cert_passwd.txt` (that password as simulated KMC ciphertext) into `output_path`.

The other sub-commands of the real tool (import_ca, delete_ca, delete_cert, import_crl, query,
restore_ca, restore_cert) are not simulated and fail. Nothing here is real KMC cryptography.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from supervisor_pd.simulator import kmc

USAGE = (
    "usage: config_mindie_server_tls_cert.py <project_path> "
    "{gen_cert,import_ca,delete_ca,import_cert,delete_cert,import_crl,query,restore_ca,restore_cert} ... "
    "[--business {management,grpc}] [--ip IP]\n"
)
MASTER = Path("tools/pmt/master/ksfa")
STANDBY = Path("tools/pmt/standby/ksfb")


class ToolError(Exception):
    pass


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.chmod(0o600)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    path.chmod(mode)


def _password(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    sys.stdout.write(prompt)
    sys.stdout.flush()
    return sys.stdin.readline().rstrip("\n")


def _check_certificate(cert: Any, key: Any) -> None:
    """The tool's certificate rules (service_oriented_optimization_tool.md: 证书规范)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    now = datetime.datetime.now(datetime.UTC)
    if cert.version != x509.Version.v3:
        raise ToolError("The certificate must be X.509 v3.")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ToolError("The certificate has expired or is not yet valid.")
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < 3072:
        raise ToolError("The RSA key length of the certificate must be at least 3072 bits.")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != public.public_bytes(
        serialization.Encoding.DER, spki
    ):
        raise ToolError("The certificate and the private key do not match.")


def import_cert(project: Path, cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    password = _password("Password for private key file: ")
    if _password("Retype password for private key file: ") != password:
        raise ToolError("The two passwords do not match.")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password.encode() or None)
    except (OSError, ValueError, TypeError) as exc:
        raise ToolError(f"Failed to load the certificate or the private key: {exc}") from None
    _check_certificate(cert, key)
    if kmc.keystore_id(MASTER) is None:
        keystore = kmc.new_keystore()
        _write(MASTER, keystore, 0o600)
        _write(STANDBY, keystore, 0o600)
    _write(project / "ca_passwd.txt", kmc.encrypt(password.encode(), MASTER), 0o400)
    print(f"Import cert {cert_path.name} success. KMC password file: {project / 'ca_passwd.txt'}")


def gen_cert(config_path: Path, ips: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    try:
        config = json.loads(config_path.read_text())
        master, standby = Path(config["kmc_ksf_master"]), Path(config["kmc_ksf_standby"])
        ca_password = kmc.decrypt(Path(config["ca_key_pwd"]).read_bytes(), master, standby)
        ca_cert = x509.load_pem_x509_certificate(Path(config["ca_cert"]).read_bytes())
        ca_key = serialization.load_pem_private_key(Path(config["ca_key"]).read_bytes(), ca_password or None)
        info = json.loads(Path(config["cert_config"]).read_text())
        output = Path(config["output_path"])
    except (OSError, ValueError, KeyError, TypeError, kmc.KmcError) as exc:
        raise ToolError(f"Failed to read the gen_cert configuration: {exc}") from None
    fields = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME}
    fields |= {"O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME}
    names = info.get("req_distinguished_name", {})
    subject = x509.Name([x509.NameAttribute(oid, str(names[k])) for k, oid in fields.items() if names.get(k)])
    alt = info.get("alt_names", {})
    addresses = [*ips, *alt.get("IP", [])]
    san = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in addresses]
    san += [x509.DNSName(name) for name in alt.get("DNS", [])]
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(int(info.get("serial_number", x509.random_serial_number())))
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=int(info.get("expired_time", 365))))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    password = secrets.token_urlsafe(24).encode()
    encryption = serialization.BestAvailableEncryption(password)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    _write(output / "cert.pem", cert.public_bytes(serialization.Encoding.PEM), 0o600)
    _write(output / "cert.key.pem", key_pem, 0o600)
    _write(output / "cert_passwd.txt", kmc.encrypt(password, master), 0o600)
    print(f"Generate cert success. Output: {output}")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ips: list[str] = []
    for arg in list(args):
        if arg.startswith("--ip="):
            ips = [ip for ip in arg[5:].split(",") if ip and ip != "None"]
            args.remove(arg)
        elif arg.startswith("--business="):
            args.remove(arg)
    if len(args) < 2:
        sys.stderr.write(USAGE)
        return 2
    project, command, rest = Path(args[0]), args[1], args[2:]
    try:
        if command == "import_cert" and len(rest) == 2:
            import_cert(project, Path(rest[0]), Path(rest[1]))
        elif command == "gen_cert" and len(rest) == 1:
            gen_cert(Path(rest[0]), ips)
        elif command in ("import_ca", "delete_ca", "delete_cert", "import_crl", "query", "restore_ca", "restore_cert"):
            sys.stderr.write(
                f"{command} is not simulated (supervisor_pd's simulator imitates import_cert and gen_cert)\n"
            )
            return 1
        else:
            sys.stderr.write(USAGE)
            return 2
    except ToolError as exc:
        sys.stderr.write(f"[ERROR] {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
