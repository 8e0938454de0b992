"""The checks MindIE's binaries make of a certificate set, made before anything starts.

Each refusal here is one a real binary would make minutes later, at its start, with a log line
in a pod that then restarts forever. Sources (MindIE-LLM unless noted):
- certificate key of at least 3072 bits, RSA (an EC key has no such size and fails):
  src/server/endpoint/http_wrapper/http_ssl.cpp (the key-length check after loading the chain);
- certificate within notBefore/notAfter: http_ssl.cpp, and for gRPC
  src/server/endpoint/utils/grpc_tls_function_expansion.cpp;
- X.509 v3 and a CRL not past its nextUpdate (fatal on the gRPC link): grpc_tls_function_expansion.cpp;
- key matching the certificate: SSL_CTX_check_private_key in http_ssl.cpp;
- peers verify the chain against the configured CA: every listener and client (MindIE-Motor
  http_client_ctl/params/ConfigParams.cpp; http_ssl.cpp SSL_VERIFY_PEER).
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from supervisor_pd.certs.pki import KEY_BITS


class CertProblem(ValueError):
    """What is wrong with one file; the caller names the file."""


def load_cert(data: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertProblem("is not a PEM certificate") from None


def load_key(data: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertProblem(
            "is encrypted: current MindIE Servers load keys with no password (MindIE-LLM http_ssl.cpp), so the key "
            "must be unencrypted PEM (MindIE images with KMC need MindIE's own tool; see docs/tls.md)"
        ) from None
    except ValueError:
        raise CertProblem("is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertProblem(f"is a {type(key).__name__}; MindIE takes RSA keys")
    return key


def check_validity(cert: x509.Certificate, now: dt.datetime, what: str = "certificate") -> None:
    if now < cert.not_valid_before_utc:
        raise CertProblem(
            f"{what} is not valid yet (notBefore {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC): MindIE refuses "
            'it at start ("Certificate has expired! current time before cert time.")'
        )
    if now > cert.not_valid_after_utc:
        raise CertProblem(
            f"{what} expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC: MindIE refuses it at start "
            '("Certificate has expired! current time after cert time.")'
        )


def check_leaf(
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None,
    ca: x509.Certificate,
    now: dt.datetime,
) -> None:
    """The leaf every MindIE process of the pod presents; `key` None: it cannot be read here (KMC)."""
    if cert.version is not x509.Version.v3:
        raise CertProblem("is not an X.509 v3 certificate: MindIE's gRPC link (P<->D) refuses it")
    check_validity(cert, now)
    public = cert.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        raise CertProblem(
            f"has an EC key ({public.curve.name}): MindIE's Server requires an RSA certificate key of at least "
            f"{KEY_BITS} bits"
        )
    if not isinstance(public, rsa.RSAPublicKey):
        raise CertProblem(f"has a {type(public).__name__}; MindIE's Server requires RSA of at least {KEY_BITS} bits")
    if public.key_size < KEY_BITS:
        raise CertProblem(
            f"has a {public.key_size}-bit RSA key: MindIE's Server requires at least {KEY_BITS} bits (http_ssl.cpp)"
        )
    if key is not None and key.public_key().public_numbers() != public.public_numbers():  # type: ignore[union-attr]
        raise CertProblem("does not belong to the private key given with it (the key is another certificate's)")
    check_issued_by(cert, ca)


def check_issued_by(cert: x509.Certificate, ca: x509.Certificate) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertProblem(
            f"is not signed by the CA given with it ({ca.subject.rfc4514_string()}): every MindIE peer verifies the "
            "chain and would refuse it"
        ) from None


def check_ca(ca: x509.Certificate, now: dt.datetime) -> None:
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertProblem("is not a CA certificate (basicConstraints CA:TRUE missing)")
    check_validity(ca, now, "the CA certificate")


def check_crl(data: bytes, ca: x509.Certificate, now: dt.datetime) -> x509.CertificateRevocationList:
    try:
        crl = x509.load_pem_x509_crl(data)
    except ValueError:
        raise CertProblem("is not a PEM CRL") from None
    if not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
        raise CertProblem("is not signed by the CA")
    next_update = crl.next_update_utc
    if next_update is not None and now > next_update:
        raise CertProblem(
            f"is past its nextUpdate ({next_update:%Y-%m-%d %H:%M:%S} UTC): MindIE's gRPC link (P<->D) refuses to "
            "start with it (grpc_tls_function_expansion.cpp)"
        )
    return crl


def check_not_revoked(cert: x509.Certificate, crl: x509.CertificateRevocationList) -> None:
    if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
        raise CertProblem("is revoked by the CRL given with it")


def san_ips(cert: x509.Certificate) -> set[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
