"""The pod's certificate files: made or copied, then put in place in one step.

The set (CA, leaf, key, password file, CRL) is written into a staging folder beside its place in
the Server's home and swapped in as a whole (as materialize.py does for configs), so a process
starting during a renewal reads an old or a new set, never a certificate with another's key.
Every file is mode 0400 and owned by this uid: within what each MindIE binary allows (0400 for
the Controller and Coordinator, MindIE-Motor Util.cpp; 0600 for the Server's gRPC files and 0640
for its HTTPS files, MindIE-LLM grpc_communication_mng.cpp and param_checker.cpp).

`CertKeeper` holds the CA key in memory for the life of the run and nowhere on disk (unless the
site mounted its own): renewal signs with it.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from supervisor_pd.certs import pki
from supervisor_pd.certs.inputs import TlsInputs
from supervisor_pd.confdir import show_path
from supervisor_pd.errors import InputError
from supervisor_pd.materialize import fsync_dir, make_parents, swap, write_file
from supervisor_pd.plan import tls as tls_plan
from supervisor_pd.plan.model import TlsPlan

FILE_MODE = 0o400
DIR_MODE = 0o700
# Current MindIE reads the password file but ignores it for an unencrypted key; an empty one
# crashes it (MindIE-Motor ConfigParams.cpp), so it holds a note.
PASSWORD_TEXT = b"unused: the key is not encrypted\n"


def install(tls: TlsPlan, material: pki.Material) -> Path:
    assert tls.folder is not None
    folder = Path(tls.folder)
    staging: Path | None = None
    try:
        make_parents(folder.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
        staging.chmod(DIR_MODE)
        files = {
            tls_plan.CA: material.ca_pem,
            tls_plan.CERT: material.cert_pem,
            tls_plan.KEY: material.key_pem,
            tls_plan.PASSWORD: PASSWORD_TEXT,
        }
        if material.kmc is not None:
            files[tls_plan.PASSWORD] = material.kmc.password
            files[tls_plan.KSF_MASTER] = material.kmc.ksf_master
            files[tls_plan.KSF_STANDBY] = material.kmc.ksf_standby
            files[tls_plan.CLIENT_CERT] = material.kmc.client_cert_pem
            files[tls_plan.CLIENT_KEY] = material.kmc.client_key_pem
        if tls.crl and material.crl_pem is not None:
            files[tls_plan.CRL] = material.crl_pem
        for name, content in files.items():
            write_file(staging / name, content, FILE_MODE)
        fsync_dir(staging)
        if folder.exists():
            swap(staging, folder)
            shutil.rmtree(staging)  # now the previous set
        else:
            staging.rename(folder)
        staging = None
        fsync_dir(folder.parent)
    except OSError as exc:
        raise InputError(
            show_path(folder),
            f"cannot hold the pod's certificates: {exc.strerror or exc} (it is inside the Server's home, "
            f"{tls.home_source}; the MindIE Server reads certificates only from there)",
        ) from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return folder


class CertKeeper:
    """Makes (or copies) the pod's certificate set and renews a generated one."""

    def __init__(self, tls: TlsPlan, tls_inputs: TlsInputs, keys: pki.KeyPrefetch | None = None) -> None:
        self.tls = tls
        self._inputs = tls_inputs
        self._keys = keys
        self._authority: pki.Authority | None = None
        self.material: pki.Material | None = None

    def first(self) -> pki.Material | None:
        """The set for this start, installed; None when TLS is off."""
        if self.tls.mode == "off":
            return None
        material = self._inputs.material() if self.tls.mode == "mounted" else self._issue()
        install(self.tls, material)
        self.material = material
        return material

    def renew(self) -> pki.Material:
        """A new leaf (same CA), installed; the processes pick it up when they next start."""
        material = self._issue()
        install(self.tls, material)
        self.material = material
        return material

    def renew_at(self) -> dt.datetime | None:
        """When a generated leaf is renewed: once two thirds of its life have passed."""
        if self.tls.mode != "generate" or self.material is None:
            return None
        life = self.material.not_after - self.material.not_before
        return self.material.not_before + life * 2 / 3

    def _issue(self) -> pki.Material:
        assert self.tls.lifetime_hours is not None
        authority = self._authority
        if authority is None and isinstance(self._inputs.authority, pki.Authority):
            authority = self._inputs.authority
        authority, material = pki.generate(
            self.tls.san_ips,
            self.tls.san_names,
            dt.timedelta(hours=self.tls.lifetime_hours),
            authority=authority,
            keys=self._keys,
        )
        self._keys = None  # used once: a renewal makes its key when it needs it
        self._authority = authority
        return material
