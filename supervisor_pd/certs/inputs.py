"""What planning needs to know about certificates, read before anything is planned or written.

- the Server's home: MindIE's Server reads its certificate fields as paths relative to it and
  refuses files outside it (MindIE-LLM src/utils/common_util.cpp GetMindieLlmHomePath/GetHomePath:
  MINDIE_LLM_HOME_PATH when that folder holds __init__.py, else MIES_INSTALL_PATH, else the folder
  above the binary's; made canonical);
- which MindIE generation the image is: old images decrypt key passwords with Huawei's KMC
  (their configs carry kmcKsfMaster / kmc_ksf_master, or they ship lib/libhse_cryption.so);
- the mounted certificates, checked as MindIE would check them, or the site's CA to sign with.

A problem with mounted material is kept, not raised: whether it matters depends on the plan (an
`auto` plan with every switch off never reads it).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import socket
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor_pd.certs.pki import Authority, Kmc, Material, load_authority
from supervisor_pd.confdir import ConfInputs, show_path
from supervisor_pd.errors import InputError
from supervisor_pd.platform.facts import Level, Notice
from supervisor_pd.platform.tools import which
from supervisor_pd.settings import Settings, env_name

MAX_PEM_BYTES = 1 << 20
# The mounted layout, after the MindIE PD guide's security/{ca,certs,keys} folders.
MOUNT_CA = "ca/ca.pem"
MOUNT_CERT = "certs/server.pem"
MOUNT_KEY = "keys/server.key.pem"
MOUNT_CRL = "ca/crl.pem"
MOUNT_CA_KEY = "ca/ca.key.pem"
MOUNT_CA_KEY_PASSWORD = "ca/ca_key_pwd.txt"  # noqa: S105 (a file name)
KMC_LIBRARY = "lib/libhse_cryption.so"
LAUNCHER = "mindie_llm_server"
# Old (KMC) images: what MindIE's config_mindie_server_tls_cert.py made, and supervisor_pd's own client.
MOUNT_KMC_PASSWORD = "pass/key_pwd.txt"  # noqa: S105 (a file name)
MOUNT_KSF_MASTER = "ksf/ksfa"
MOUNT_KSF_STANDBY = "ksf/ksfb"
MOUNT_CLIENT_CERT = "client/cert.pem"
MOUNT_CLIENT_KEY = "client/cert.key.pem"


@dataclass(frozen=True)
class TlsInputs:
    server_home: Path | None
    home_source: str
    generation: str  # "current" or "kmc"
    generation_source: str
    mount: Path
    mounted: Material | InputError | None  # None: nothing mounted
    authority: Authority | InputError | None  # a site CA to sign with
    hostname: str
    notices: tuple[Notice, ...] = ()

    def material(self) -> Material:
        """The mounted material; raises the problem found with it."""
        if isinstance(self.mounted, InputError):
            raise self.mounted
        if self.mounted is None:
            raise InputError(
                env_name("tls_mount"),
                f"{show_path(self.mount)} holds no {MOUNT_CERT}: with {env_name('tls')}=mounted it must hold "
                f"{MOUNT_CA}, {MOUNT_CERT} and {MOUNT_KEY} (see docs/tls.md)",
            )
        return self.mounted


def server_home(settings: Settings, environ: Mapping[str, str]) -> tuple[Path | None, str]:
    command = shlex.split(settings.server_command)[0]
    found = which(command, environ)
    if Path(command).name == LAUNCHER and found is not None:
        # MindIE-LLM mindie_llm/server/main.py: the launcher sets MINDIE_LLM_HOME_PATH to the root of
        # its mindie_llm package (where bin/mindieservice_daemon is), whatever it was, then execs the
        # daemon; the daemon's install folder (its binary's folder's parent) is the same root.
        root = _package_root(Path(found), environ, settings.tool_timeout)
        if root is not None:
            return root, f"the mindie_llm package {LAUNCHER} runs (it sets MINDIE_LLM_HOME_PATH to it)"
        return Path(found).resolve().parent.parent, f"the folder above {LAUNCHER}'s"
    llm_home = environ.get("MINDIE_LLM_HOME_PATH", "")
    if llm_home and Path(llm_home, "__init__.py").exists():
        return Path(llm_home).resolve(), "MINDIE_LLM_HOME_PATH"
    install = environ.get("MIES_INSTALL_PATH", "")
    if install:
        return Path(install).resolve(), "MIES_INSTALL_PATH"
    if found is None:
        return None, f"{env_name('server_command')} not found"
    return Path(found).resolve().parent.parent, f"the folder above {command}'s"


def _package_root(launcher: Path, environ: Mapping[str, str], timeout: float) -> Path | None:
    """Where the launcher's Python finds mindie_llm; None when it is not a Python script."""
    try:
        with launcher.open("rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!") or b"python" not in first:
        return None
    interpreter = shlex.split(first[2:].decode(errors="replace"))
    if not interpreter:
        return None
    probe = "import importlib.util as u; s = u.find_spec('mindie_llm'); print(s.origin if s and s.origin else '')"
    try:
        done = subprocess.run(
            [*interpreter, "-c", probe], env=dict(environ), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    origin = done.stdout.strip()
    return Path(origin).resolve().parent if done.returncode == 0 and origin else None


def generation(inputs: ConfInputs, home: Path | None, environ: Mapping[str, str]) -> tuple[str, str]:
    docs: list[tuple[str, Any]] = [(inputs.controller.name, inputs.controller.raw)]
    docs.append((inputs.coordinator.name, inputs.coordinator.raw))
    docs += [(doc.name, doc.raw) for doc in ([inputs.template] if inputs.template else inputs.servers.values())]
    for name, raw in docs:
        field = _find_key(raw, ("kmcKsfMaster", "kmc_ksf_master"))
        if field:
            return "kmc", f"{name}: {field}"
    for folder in {environ.get("MIES_INSTALL_PATH", ""), str(home or "")} - {""}:
        if Path(folder, KMC_LIBRARY).exists():
            return "kmc", show_path(Path(folder, KMC_LIBRARY))
    return "current", "no kmcKsfMaster/kmc_ksf_master in the configs and no " + KMC_LIBRARY


def _find_key(node: Any, keys: tuple[str, ...], path: str = "") -> str:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if key in keys:
                return here
            found = _find_key(value, keys, here)
            if found:
                return found
    return ""


def load_tls_inputs(settings: Settings, inputs: ConfInputs, environ: Mapping[str, str]) -> TlsInputs:
    home, home_source = server_home(settings, environ)
    gen, gen_source = generation(inputs, home, environ)
    mount = settings.tls_mount
    notices: list[Notice] = []
    mounted: Material | InputError | None = None
    authority: Authority | InputError | None = None
    if settings.tls != "off" and _exists(mount / MOUNT_CERT):
        try:
            mounted = _load_mounted(mount, notices, kmc=gen == "kmc")
        except InputError as exc:
            mounted = exc
    if settings.tls in ("generate", "auto") and _exists(mount / MOUNT_CA_KEY):
        try:
            authority = _load_authority(mount)
        except InputError as exc:
            authority = exc
    return TlsInputs(
        server_home=home,
        home_source=home_source,
        generation=gen,
        generation_source=gen_source,
        mount=mount,
        mounted=mounted,
        authority=authority,
        hostname=socket.gethostname(),
        notices=tuple(notices),
    )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def read_pem(mount: Path, name: str, notices: list[Notice] | None = None) -> bytes:
    """One file of the mount; links are followed (a Secret volume is made of them) but must stay inside."""
    path = mount / name
    where = show_path(path)
    try:
        real = path.resolve(strict=True)
        inside = real.is_relative_to(mount.resolve())
    except FileNotFoundError:
        raise InputError(where, f"is missing: the {env_name('tls_mount')} folder needs it (see docs/tls.md)") from None
    except (OSError, RuntimeError) as exc:
        raise InputError(where, f"cannot be resolved: {exc}") from None
    if not inside:
        raise InputError(where, f"links to {show_path(real)}, outside {show_path(mount)}")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(where, f"cannot be opened: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InputError(where, "is not a regular file")
        data = handle.read(MAX_PEM_BYTES + 1)
    if len(data) > MAX_PEM_BYTES:
        raise InputError(where, f"is larger than {MAX_PEM_BYTES >> 20} MiB; a PEM file is a few KiB")
    if notices is not None and "key" in name and info.st_mode & 0o077:
        notices.append(
            Notice(
                Level.WARNING,
                "tls",
                f"{where} is mode {stat.S_IMODE(info.st_mode):04o}: readable by others in the pod's mount (copied "
                "with mode 0400 for MindIE; give the Secret volume defaultMode: 0400)",
            )
        )
    return data


def _load_mounted(mount: Path, notices: list[Notice], kmc: bool = False) -> Material:
    from supervisor_pd.certs import check  # with cryptography: only when certificates are mounted

    now = dt.datetime.now(dt.UTC)
    ca_data = read_pem(mount, MOUNT_CA)
    cert_data = read_pem(mount, MOUNT_CERT)
    key_data = read_pem(mount, MOUNT_KEY, notices)
    crl_data = read_pem(mount, MOUNT_CRL) if _exists(mount / MOUNT_CRL) else None

    def checked(name: str, step: Any) -> Any:
        try:
            return step()
        except check.CertProblem as exc:
            raise InputError(show_path(mount / name), str(exc)) from None

    ca = checked(MOUNT_CA, lambda: check.load_cert(ca_data))
    checked(MOUNT_CA, lambda: check.check_ca(ca, now))
    # An old image's key is encrypted with a password only KMC can read: its pairing with the
    # certificate is MindIE's to check at start.
    key = None if kmc else checked(MOUNT_KEY, lambda: check.load_key(key_data))
    cert = checked(MOUNT_CERT, lambda: check.load_cert(cert_data))
    checked(MOUNT_CERT, lambda: check.check_leaf(cert, key, ca, now))
    extra = _load_kmc(mount, ca, now, checked) if kmc else None
    if crl_data is not None:
        crl = checked(MOUNT_CRL, lambda: check.check_crl(crl_data, ca, now))
        checked(MOUNT_CERT, lambda: check.check_not_revoked(cert, crl))
    return Material(
        ca_pem=ca_data,
        cert_pem=cert_data,
        key_pem=key_data,
        crl_pem=crl_data,
        not_after=cert.not_valid_after_utc,
        not_before=cert.not_valid_before_utc,
        kmc=extra,
    )


def _load_kmc(mount: Path, ca: Any, now: dt.datetime, checked: Any) -> Kmc:
    from supervisor_pd.certs import check

    password = read_pem(mount, MOUNT_KMC_PASSWORD)
    if not password.strip():
        raise InputError(show_path(mount / MOUNT_KMC_PASSWORD), "is empty: it holds the key's KMC-encrypted password")
    client_cert_data = read_pem(mount, MOUNT_CLIENT_CERT)
    client_key_data = read_pem(mount, MOUNT_CLIENT_KEY)
    client_key = checked(MOUNT_CLIENT_KEY, lambda: check.load_key(client_key_data))
    client_cert = checked(MOUNT_CLIENT_CERT, lambda: check.load_cert(client_cert_data))
    checked(MOUNT_CLIENT_CERT, lambda: check.check_validity(client_cert, now))
    checked(MOUNT_CLIENT_CERT, lambda: check.check_issued_by(client_cert, ca))
    if client_key.public_key().public_numbers() != client_cert.public_key().public_numbers():
        raise InputError(show_path(mount / MOUNT_CLIENT_CERT), "does not belong to " + MOUNT_CLIENT_KEY)
    return Kmc(
        password=password,
        ksf_master=read_pem(mount, MOUNT_KSF_MASTER),
        ksf_standby=read_pem(mount, MOUNT_KSF_STANDBY),
        client_cert_pem=client_cert_data,
        client_key_pem=client_key_data,
    )


def _load_authority(mount: Path) -> Authority:
    from supervisor_pd.certs import check

    cert_data = read_pem(mount, MOUNT_CA)
    key_data = read_pem(mount, MOUNT_CA_KEY)
    password = None
    if _exists(mount / MOUNT_CA_KEY_PASSWORD):
        password = read_pem(mount, MOUNT_CA_KEY_PASSWORD).rstrip(b"\r\n")
    try:
        authority = load_authority(cert_data, key_data, password)
        check.check_ca(authority.cert, dt.datetime.now(dt.UTC))
    except (ValueError, TypeError) as exc:
        raise InputError(show_path(mount / MOUNT_CA_KEY), f"cannot sign the pod's certificate: {exc}") from None
    return authority
