"""The simulated Server's TLS: the HTTPS listeners (`httpsEnabled`) and the P->D link
(`interCommTLSEnabled`), checked where and as MindIE-LLM checks them.

Three moments, as in MindIE:
1. Config time (`https_config_problems`; MindIE-LLM `src/config_manager/server_config.cpp`
   `ServerConfigManager::CheckParam` -> `CheckHttpsConfig`, `CheckBusinessHttpsParam`,
   `CheckManagementHttpsParam`, `CheckMetricsHttpsParam`; `param_checker.cpp`
   `ParamChecker::CheckPath`): paths are the Server home + the value; every file exists, is no
   symbolic link, resolves inside the home, is not empty, belongs to the running user and has no
   mode bits outside 0640, whatever MINDIE_CHECK_INPUTFILES_PERMISSION says. A refusal ends the
   process like any bad config.
2. Start (`https_context`, `intercomm_start_problems`): the HTTPS contexts (`http_ssl.cpp`
   `HttpSsl::InitSSL`, `CertVerify`) and the gRPC set-up (`grpc_communication_mng.cpp`
   `GrpcCommunicationMng::Init` -> `GetSecFilePath`, `grpc_tls_function_expansion.cpp`
   `CheckTlsOption`). A refusal fails the endpoint: MindIE kills its process group.
3. When the link is used (`intercomm_identity`; `GetCertificateProvider`, `GetFileContent`,
   `GetKeyContent`, `SetTlsOps`): the gRPC files' owner, mode (within 0600) and key size. MindIE
   logs the failure and goes on without that listener or client, so hand-offs fail.

Paths at config time are under the *home* (`GetHomePath`); at start and use they are under the
*install folder*, the binary's folder's parent (`GetInstallPath`). The two agree for
`mindie_llm_server`, which sets MINDIE_LLM_HOME_PATH to its package root.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PATH_MAX = 4096
MAX_FILES = 3
FILE_MODE_640 = 0o640
FILE_MODE_600 = 0o600
MAX_DATA_SIZE = 4294967296
KEY_BYTES = (3072 // 8, 32768 // 8)  # SensitiveInfoManager bounds (MIN/MAX_PRIVATE_KEY_CONTENT_BYTE_LEN)
MIN_KEY_BITS = 3072  # MIN_PRIVATE_KEY_CONTENT_BIT_LEN (common_util.h)
LAUNCHER = "mindie_llm_server"


# --- where the binary is -------------------------------------------------------------------


def executable() -> str:
    """The path this Server was started by (the host's bin wrapper exports it; MindIE reads
    /proc/self/exe). Falls back to sys.argv[0]."""
    return os.environ.get("SUPERVISOR_PD_SIM_ARGV0") or sys.argv[0]


def imitate_launcher() -> None:
    """`mindie_llm_server` (MindIE-LLM mindie_llm/server/main.py `main`) sets MINDIE_LLM_HOME_PATH
    to its package root, the bin folder's parent, then execs the daemon."""
    if Path(executable()).name == LAUNCHER:
        os.environ["MINDIE_LLM_HOME_PATH"] = str(Path(os.path.realpath(executable())).parent.parent)


def install_dir() -> str:
    """`GetInstallPath` (http_ssl.cpp, file_utils.cpp): the binary's folder's parent, with '/'."""
    return str(Path(os.path.realpath(executable())).parent.parent) + "/"


def home_path() -> str | None:
    """`GetHomePath` (common_util.cpp `GetMindieLlmHomePath`, `GetBinaryPath`, `CanonicalPath`):
    MINDIE_LLM_HOME_PATH if it holds __init__.py, else MIES_INSTALL_PATH, else the binary's
    folder + "/../"; resolved. None if it cannot be resolved."""
    home = os.environ.get("MINDIE_LLM_HOME_PATH", "")
    if not home or not Path(home + "/__init__.py").exists():
        home = os.environ.get("MIES_INSTALL_PATH", "")
    if not home:
        home = str(Path(os.path.realpath(executable())).parent) + "/../"
    if len(home) > PATH_MAX or not Path(home).exists():
        return None
    return os.path.realpath(home)


# --- MindIE-LLM FileUtils, as ParamChecker::CheckPath uses them -------------------------------


def _base(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _owner_and_mode(path: str, limit: int) -> str | None:
    """ConstrainOwner, then ConstrainPermission (owner bits first)."""
    info = Path(path).stat()
    if info.st_uid != os.getuid():
        return f"owner id diff: current process user id is {os.getuid()}, file owner id is {info.st_uid}"
    names = {6: "Owner permission", 3: "Owner group permission", 0: "Other group permission"}
    for shift, name in names.items():
        current, allowed = (info.st_mode >> shift) & 7, (limit >> shift) & 7
        if current | allowed != allowed:
            return (
                f" Check {name} failed: {path} current permission is {current}, but required no greater than "
                f"{allowed}. Required permisssion is {limit:o}, but got permission is {stat.S_IMODE(info.st_mode):o}"
            )
    return None


def _regular_file_path(path: str, base_dir: str) -> str | None:
    """FileUtils::RegularFilePath(path, baseDir, errMsg, regularPath): the problem, or None."""
    if not path:
        return f"The file path: {_base(path)} is empty."
    if len(path) > PATH_MAX:
        return f"The file path: {_base(path)} exceeds the maximum value set by PATH_MAX."
    if Path(path).is_symlink():  # Path drops a trailing "/", as IsSymlink does
        return f"The file: {_base(path)} is a link."
    if Path(path).exists():
        real = os.path.realpath(path)
        folder = base_dir if base_dir.endswith("/") else base_dir + "/"
        if not real.startswith(folder):
            return f"The file: {_base(path)} is invalid, it's not in baseDir directory."
    return None


def _file_valid(path: str, limit: int) -> str | None:
    """FileUtils::IsFileValid(path, errMsg, true, mode, checkPermission, max): the problem, or
    None. A bad owner or mode fails whether or not checkPermission is set."""
    if not Path(path).exists():
        return f"The input file: {_base(path)} is not a regular file or not exists"
    if not Path(path).is_dir():
        size = Path(path).stat().st_size
        if size < 1 or size > MAX_DATA_SIZE:  # CheckDataSize: MIN_MALLOC_SIZE is 1
            return f"Read input file: {_base(path)} failed, file is too large"
    problem = _owner_and_mode(path, limit)
    return f"Check path: {_base(path)} failed, by:{problem}" if problem else None


def check_path(path: str, home: str, name: str, is_file: bool = True) -> str | None:
    """ParamChecker::CheckPath: a file (0640, owner) or a folder, inside `home`."""
    if not 1 <= len(path) <= PATH_MAX:
        return f"The {name} path is too long."
    if is_file:
        problem = _regular_file_path(path, home) or _file_valid(path, FILE_MODE_640)
        return f"The {name} path is invalid by: {problem}" if problem else None
    problem = _regular_file_path(path, home) if Path(path).is_dir() else ""
    return f"The {name} path is not a dir by: {problem}" if problem is not None else None


# --- config time ---------------------------------------------------------------------------

PLANES = ("business", "management", "metrics")
_FIELDS = {
    "business": ("tlsCert", "tlsPk", "tlsCaFile", "tlsCrlPath", "tlsCrlFiles"),
    "management": ("managementTlsCert", "managementTlsPk", "managementTlsCaFile", "managementTlsCrlPath",
                   "managementTlsCrlFiles"),
    "metrics": ("metricsTlsCert", "metricsTlsPk", "metricsTlsCaFile", "metricsTlsCrlPath", "metricsTlsCrlFiles"),
}  # fmt: skip
STRING_FIELDS = ("tlsCaPath", *(f for plane in _FIELDS.values() for f in (plane[0], plane[1], plane[3])))
ARRAY_FIELDS = tuple(f for plane in _FIELDS.values() for f in (plane[2], plane[4]))
INTERCOMM_STRINGS = ("interCommTlsCaPath", "interCommTlsCert", "interCommPk", "interCommTlsCrlPath")
INTERCOMM_ARRAYS = ("interCommTlsCaFiles", "interCommTlsCrlFiles")
# Older (KMC) images (MindIE-LLM 18f6576 server_config.cpp:32-52): the keystore and, per plane, a
# KMC-encrypted key password file; `kmcKsfMaster` present marks a config as that generation.
KMC_STRINGS = ("kmcKsfMaster", "kmcKsfStandby", "tlsPkPwd", "managementTlsPkPwd", "metricsTlsPkPwd", "interCommPkPwd")
PASSWORD_FIELDS = {"business": "tlsPkPwd", "management": "managementTlsPkPwd", "metrics": "metricsTlsPkPwd"}


@dataclass(frozen=True)
class Kmc:
    """Older images: the keystore files, relative to the home (config time) and to the install
    folder (when a password is decrypted)."""

    master: str
    standby: str


@dataclass(frozen=True)
class CertSet:
    """One HTTPS plane's files, as configured (relative to the home / install folder)."""

    plane: str
    cert: str
    key: str
    ca_path: str  # tlsCaPath: the CA files of every plane are in it
    ca_files: tuple[str, ...]  # a std::set in MindIE: sorted, no repeats
    crl_path: str
    crl_files: tuple[str, ...]
    key_password: str = ""  # older images: tlsPkPwd & co., a KMC ciphertext file ("" = no password)
    kmc: Kmc | None = None


@dataclass(frozen=True)
class InterComm:
    ca_path: str
    ca_files: tuple[str, ...]  # a std::vector: in order
    cert: str
    key: str
    crl_path: str
    crl_files: tuple[str, ...]
    key_password: str = ""  # older images: interCommPkPwd, always used (KMC ciphertext)
    kmc: Kmc | None = None


def kmc_settings(server: dict[str, Any]) -> Kmc | None:
    if "kmcKsfMaster" not in server:
        return None
    return Kmc(server.get("kmcKsfMaster", ""), server.get("kmcKsfStandby", ""))


def type_problems(server: dict[str, Any]) -> list[str]:
    """CheckJsonParamType for the TLS fields of g_serverParamsConstraint (server_config.cpp), and
    the element checks of InitHttpsConfigFromJson / InitDMIHttpsConfigFromJson."""
    problems = []
    for key in (*STRING_FIELDS, *KMC_STRINGS):
        if key in server and not isinstance(server[key], str):
            problems.append(f"The type of param {key} should be string, but got {type(server[key]).__name__}")
    for key in ARRAY_FIELDS:
        if key in server and not isinstance(server[key], list):
            problems.append(f"The type of param {key} should be array, but is {type(server[key]).__name__}")
        elif key in server and any(not isinstance(item, str) for item in server[key]):
            problems.append(f"{key} init error")
    if "interCommTLSEnabled" in server and not isinstance(server["interCommTLSEnabled"], bool):
        problems.append("The type of param interCommTLSEnabled should be bool")
    return problems


def intercomm_problems(server: dict[str, Any]) -> list[str]:
    problems = []
    for key in INTERCOMM_STRINGS:
        if key in server and not isinstance(server[key], str):
            problems.append(f"JSON type error: {key} must be a string")
    for key in INTERCOMM_ARRAYS:
        if key in server and (not isinstance(server[key], list) or any(not isinstance(i, str) for i in server[key])):
            problems.append(f"{key} init error")
    return problems


def cert_sets(server: dict[str, Any], check_management: bool) -> tuple[CertSet, ...]:
    kmc = kmc_settings(server)
    sets = []
    for plane in PLANES if check_management else PLANES[:1]:
        cert, key, ca_files, crl_path, crl_files = _FIELDS[plane]
        sets.append(
            CertSet(
                plane=plane,
                cert=server.get(cert, ""),
                key=server.get(key, ""),
                ca_path=server.get("tlsCaPath", ""),
                ca_files=tuple(sorted(set(server.get(ca_files, [])))),
                crl_path=server.get(crl_path, ""),
                crl_files=tuple(sorted(set(server.get(crl_files, [])))),
                key_password=server.get(PASSWORD_FIELDS[plane], "") if kmc else "",
                kmc=kmc,
            )
        )
    return tuple(sets)


def intercomm_set(server: dict[str, Any]) -> InterComm:
    return InterComm(
        ca_path=server.get("interCommTlsCaPath", ""),
        ca_files=tuple(server.get("interCommTlsCaFiles", [])),
        cert=server.get("interCommTlsCert", ""),
        key=server.get("interCommPk", ""),
        crl_path=server.get("interCommTlsCrlPath", ""),
        crl_files=tuple(server.get("interCommTlsCrlFiles", [])),
        key_password=server.get("interCommPkPwd", ""),
        kmc=kmc_settings(server),
    )


def _names(plane: str) -> dict[str, str]:
    """The names MindIE prints for each field of a plane (they differ by plane, as in the source)."""
    if plane == "business":
        prefix, field = "serverConfig_.", "tls"
        return {key: f"{prefix}{field}{key}" for key in ("Cert", "CrlPath", "CrlFiles", "CaFile", "Pk")} | {
            "CaPath": "serverConfig_.tlsCaPath",
            "err": "serverConfig_.tls",
        }
    return {key: f"ServerConfig.{plane}Tls{key}" for key in ("Cert", "CrlPath", "CrlFiles", "CaFile", "Pk")} | {
        "CaPath": "ServerConfig.tlsCaPath",
        "err": f"serverConfig_.{plane}Tls",
    }


def https_config_problems(sets: tuple[CertSet, ...]) -> list[str]:
    """Config-time checks of every plane in `sets`; all problems, as MindIE prints them all."""
    home = home_path()
    if home is None:
        return ["Failed to get home path."]
    home += "/"
    problems: list[str] = []

    def check(path: str, name: str, is_file: bool = True) -> None:
        problem = check_path(path, home, name, is_file)
        if problem:
            problems.append(problem)

    kmc = sets[0].kmc if sets else None
    if kmc is not None:  # older images: ServerConfigManager::CheckHttpsConfig (18f6576 :427-431)
        check(home + kmc.master, "serverConfig.kmcKsfMaster")
        check(home + kmc.standby, "serverConfig.kmcKsfStandby")
    for cert_set in sets:
        names = _names(cert_set.plane)
        space = " " if cert_set.plane == "business" else ""
        check(home + cert_set.cert, names["Cert"])
        if cert_set.crl_path and cert_set.crl_files:
            if len(cert_set.crl_files) > MAX_FILES:
                problems.append(f"ERR: {names['err']}CrlFiles size must in [0, 3] .")
            crl_folder = home + cert_set.crl_path
            check(crl_folder, names["CrlPath"], is_file=False)
            for name in cert_set.crl_files:
                path = crl_folder + name
                if not Path(path).exists() or Path(path).is_dir():
                    problems.append(f"ERR: {names['err']}CrlFiles file not exit .")
                    continue
                check(path, names["CrlFiles"])
        if not 1 <= len(cert_set.ca_files) <= MAX_FILES:
            problems.append(f"ERR: {names['err']}CaFile size must in [1, 3]{space}.")
        ca_folder = home + cert_set.ca_path
        check(ca_folder, names["CaPath"], is_file=False)
        for name in cert_set.ca_files:
            path = ca_folder + name
            if cert_set.plane != "business" and (not Path(path).exists() or Path(path).is_dir()):
                problems.append(f"ERR: {names['err']}CaFile file not exit .")
                continue
            check(path, names["CaFile"])
        check(home + cert_set.key, names["Pk"])
    return problems
