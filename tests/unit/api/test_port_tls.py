"""TLS settings of supervisor_pd's own port (api/tls.py): each bad combination names its setting."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from supervisor_pd.api.tls import server_context
from supervisor_pd.errors import InputError
from supervisor_pd.settings import Settings
from tests import certs


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = certs.make_ca()
    leaf = certs.make_leaf(ca)
    return {
        "ca": certs.write_pem(folder / "ca.pem", ca.cert_pem, 0o400),
        "cert": certs.write_pem(folder / "cert.pem", leaf.cert_pem, 0o400),
        "key": certs.write_pem(folder / "key.pem", leaf.key_pem(), 0o400),
        "other_key": certs.write_pem(folder / "other.pem", certs.make_leaf(ca).key_pem(), 0o400),
    }


def test_no_certificate_is_plain_http() -> None:
    assert server_context(Settings()) is None


def test_a_certificate_and_key_give_tls_without_client_certificates(pki: dict[str, Path]) -> None:
    context = server_context(Settings(api_tls_cert=pki["cert"], api_tls_key=pki["key"]))
    assert context is not None
    assert context.verify_mode is ssl.CERT_NONE
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_a_client_ca_makes_client_certificates_optional(pki: dict[str, Path]) -> None:
    context = server_context(Settings(api_tls_cert=pki["cert"], api_tls_key=pki["key"], api_tls_client_ca=pki["ca"]))
    assert context is not None and context.verify_mode is ssl.CERT_OPTIONAL


@pytest.mark.parametrize(
    ("given", "where"),
    [
        ({"api_tls_cert": "cert"}, "SUPERVISOR_PD_API_TLS_KEY"),
        ({"api_tls_key": "key"}, "SUPERVISOR_PD_API_TLS_CERT"),
        ({"api_tls_client_ca": "ca"}, "SUPERVISOR_PD_API_TLS_CLIENT_CA"),
        ({"api_tls_cert": "cert", "api_tls_key": "other_key"}, "SUPERVISOR_PD_API_TLS_CERT"),
        ({"api_tls_cert": "cert", "api_tls_key": "key", "api_tls_client_ca": "key"}, "SUPERVISOR_PD_API_TLS_CLIENT_CA"),
    ],
)
def test_bad_combinations_name_the_setting(pki: dict[str, Path], given: dict[str, str], where: str) -> None:
    with pytest.raises(InputError) as caught:
        server_context(Settings(**{name: pki[key] for name, key in given.items()}))
    assert caught.value.where == where


def test_a_missing_file_is_named(pki: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        server_context(Settings(api_tls_cert=tmp_path / "none.pem", api_tls_key=pki["key"]))
    assert "none.pem" in caught.value.problem
