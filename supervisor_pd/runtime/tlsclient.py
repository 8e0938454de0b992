"""supervisor_pd as a client of its children's TLS listeners: one context for the whole process.

It speaks as MindIE's own clients do (MindIE-Motor http_client_ctl/http_client/HttpClient.cpp):
TLS 1.3 only, the pod's certificate as its client certificate (every MindIE listener requires
one), the peer's chain verified against the pod's CA, and no host-name check, since every child
listens on an address of this pod and the CA signs only the pod's own certificate.

The context loads the files the children load. After a renewal `reload()` loads the new set into
the same context: connections made from then on present the new certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from supervisor_pd.plan import tls as tls_plan
from supervisor_pd.plan.model import TlsPlan

_contexts: dict[str, ssl.SSLContext] = {}


def client_context(tls: TlsPlan) -> ssl.SSLContext | None:
    """The shared client context for `tls`'s certificate set; None when TLS is off."""
    if tls.folder is None:
        return None
    context = _contexts.get(tls.folder)
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        _load(context, Path(tls.folder), tls.generation == "kmc")
        _contexts[tls.folder] = context
    return context


def reload(tls: TlsPlan) -> None:
    if tls.folder is not None and tls.folder in _contexts:
        _load(_contexts[tls.folder], Path(tls.folder), tls.generation == "kmc")


def _load(context: ssl.SSLContext, folder: Path, kmc: bool) -> None:
    context.load_verify_locations(cafile=str(folder / tls_plan.CA))
    # An old (KMC) image's pod key is encrypted for MindIE only: supervisor_pd presents the
    # plaintext client certificate mounted with it, from the same CA.
    cert, key = (tls_plan.CLIENT_CERT, tls_plan.CLIENT_KEY) if kmc else (tls_plan.CERT, tls_plan.KEY)
    context.load_cert_chain(str(folder / cert), str(folder / key))
