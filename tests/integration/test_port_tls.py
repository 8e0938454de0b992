"""TLS on supervisor_pd's own port, served for real (the ApiServer on a free loopback port, no
children): probes without a client certificate, control by a certificate of the client CA, a
certificate of another CA refused at the handshake, plain HTTP not answered."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import certs
from tests.integration.test_security import serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("port-pki")
    ca = certs.make_ca(name="site CA")
    server = certs.make_leaf(ca, ips=["127.0.0.1"])
    client = certs.make_leaf(ca, name="operator")
    stranger = certs.make_leaf(certs.make_ca(name="elsewhere"), name="stranger")
    return {
        "ca": certs.write_pem(folder / "ca.pem", ca.cert_pem, 0o400),
        "cert": certs.write_pem(folder / "server.pem", server.cert_pem, 0o400),
        "key": certs.write_pem(folder / "server.key.pem", server.key_pem(), 0o400),
        "client": certs.write_pem(folder / "client.pem", client.cert_pem, 0o400),
        "client_key": certs.write_pem(folder / "client.key.pem", client.key_pem(), 0o400),
        "stranger": certs.write_pem(folder / "stranger.pem", stranger.cert_pem, 0o400),
        "stranger_key": certs.write_pem(folder / "stranger.key.pem", stranger.key_pem(), 0o400),
    }


def context(pki: dict[str, Path], who: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki["ca"]))
    if who is not None:
        ctx.load_cert_chain(str(pki[who]), str(pki[f"{who}_key"]))
    return ctx


async def call(url: str, method: str, path: str, ctx: ssl.SSLContext | None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.request(method, url + path, ssl=ctx if ctx is not None else False) as reply,
    ):
        return reply.status, await reply.read()


def port_settings(pki: dict[str, Path]) -> dict[str, Any]:
    return {"api_tls_cert": pki["cert"], "api_tls_key": pki["key"], "api_tls_client_ca": pki["ca"]}


async def test_probes_need_no_certificate_and_plain_http_is_not_answered(tmp_path: Path, pki: dict[str, Path]) -> None:
    async with serve(tmp_path, token="a-token-nobody-sends", **port_settings(pki)) as served:
        https = served.url.replace("http://", "https://")
        assert (await call(https, "GET", "/livez", context(pki)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await call(served.url, "GET", "/livez", None)
        assert any(line.startswith("HTTPS port") for line in served.log())


async def test_a_client_certificate_of_the_client_ca_authorizes_control(tmp_path: Path, pki: dict[str, Path]) -> None:
    async with serve(tmp_path, token="a-token-nobody-sends", **port_settings(pki)) as served:
        https = served.url.replace("http://", "https://")
        assert (await call(https, "POST", "/v1/processes/nobody/restart", context(pki)))[0] == 401
        assert (await call(https, "POST", "/v1/processes/nobody/restart", context(pki, "client")))[0] == 404
        with pytest.raises(aiohttp.ClientError):  # another CA's certificate: refused at the handshake
            await call(https, "POST", "/v1/processes/nobody/restart", context(pki, "stranger"))
