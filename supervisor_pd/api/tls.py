"""TLS on supervisor_pd's own port (optional): SUPERVISOR_PD_API_TLS_CERT and _KEY.

Probes, status, metrics and inference need no client certificate, so the kubelet (`scheme:
HTTPS`, which does not verify) and ordinary clients keep working. With
SUPERVISOR_PD_API_TLS_CLIENT_CA, a client certificate that CA signed authorizes control
requests as the bearer token does. TLS 1.2 is the floor: the kubelet and common clients speak it.
"""

from __future__ import annotations

import ssl

from supervisor_pd.errors import InputError
from supervisor_pd.settings import Settings, env_name


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The port's context, or None for plain HTTP; InputError naming the setting at fault."""
    cert, key, client_ca = settings.api_tls_cert, settings.api_tls_key, settings.api_tls_client_ca
    if cert is None and key is None:
        if client_ca is not None:
            raise InputError(env_name("api_tls_client_ca"), f"needs {env_name('api_tls_cert')} and _KEY as well")
        return None
    if cert is None or key is None:
        missing = env_name("api_tls_cert") if cert is None else env_name("api_tls_key")
        raise InputError(missing, "must be set too: TLS on the HTTP port needs a certificate and its key")
    for field, path in (("api_tls_cert", cert), ("api_tls_key", key), ("api_tls_client_ca", client_ca)):
        if path is not None and not path.is_file():
            raise InputError(env_name(field), f"{path} is not a file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise InputError(
            env_name("api_tls_cert"), f"{cert} with {key} cannot be used (PEM certificate, unencrypted key): {exc}"
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(client_ca))
        except (ssl.SSLError, OSError) as exc:
            raise InputError(env_name("api_tls_client_ca"), f"{client_ca} cannot be used as a CA file: {exc}") from None
        # Optional: a client without a certificate still reaches probes, status and inference.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def has_client_certificate(transport: object) -> bool:
    """The peer presented a certificate the client CA verified (CERT_OPTIONAL refuses a bad one)."""
    get = getattr(transport, "get_extra_info", None)
    return bool(get("peercert")) if get is not None else False
