"""How the MindIE binaries check a file before they read it (MINDIE_CHECK_INPUTFILES_PERMISSION).

Controller and Coordinator (MindIE-Motor `mindie_motor/src/http_client_ctl/common/Util.cpp`:
`FileToBuffer` -> `PathCheck`, `CheckPathLengthAndLink`, `CheckFileSecurity`): the path as given
is refused when empty, over 256 characters, a symbolic link, or not matching
`^(?!.*\\.\\.)[a-zA-Z0-9_./~-]+$`, whatever the variable says; then the file's mode must not exceed
`mode` and, when `check_owner`, its owner must be the running user. Their callers
(`ControllerConfig::Init`, `RankTableLoader::LoadRankTable`, `Configure::Init`) pass 0640 and
owner checking unless the variable is "0" (for the config files: and the path came from the
environment), then 0777 and no owner check.

Server (MindIE-LLM `src/config_manager/param_checker.cpp` `ParamChecker::ReadJsonFile` ->
`src/utils/log/file_utils.cpp` `FileUtils::RegularFilePath`, `FileUtils::IsFileValid`): the path
is resolved (at most PATH_MAX), must be a regular file, owned by the running user, mode within
0640. In this version `IsFileValid` returns false on a bad owner or mode whether or not the
check is switched off: the variable changes only what is printed.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

MOTOR_MAX_PATH = 256
MOTOR_PATH = re.compile(r"(?!.*\.\.)[a-zA-Z0-9_./~-]+")
PATH_MAX = 4096


def checks_on() -> bool:
    return os.environ.get("MINDIE_CHECK_INPUTFILES_PERMISSION") != "0"


def _mode_and_owner(path: Path, limit: int, check_owner: bool) -> str | None:
    info = path.stat()
    extra = stat.S_IMODE(info.st_mode) & ~limit
    if extra:
        return f"permission of {path} is {stat.S_IMODE(info.st_mode):o}, but required no greater than {limit:o}"
    if check_owner and info.st_uid != os.getuid():
        return f"owner of {path} is {info.st_uid}, not the running user {os.getuid()}"
    return None


def motor_read_error(path: str, limit: int, check_owner: bool) -> str | None:
    """Why MindIE-Motor's FileToBuffer would refuse `path`, or None."""
    if not path:
        return "File path is empty"
    if len(path) > MOTOR_MAX_PATH:
        return f"The file path exceeds the maximum allowed length of {MOTOR_MAX_PATH} characters ({len(path)})"
    if Path(path).is_symlink():
        return f"File {path} a symbolic link, which is not allowed."
    if not MOTOR_PATH.fullmatch(path):
        return f"The file path {path} has characters outside [a-zA-Z0-9_./~-] or '..'"
    real = Path(os.path.realpath(path))
    if not real.exists():
        return f"The specified file '{path}' does not exist."
    return _mode_and_owner(real, limit, check_owner)


def motor_config_rules(path_from_env: bool) -> tuple[int, bool]:
    """(mode limit, owner check) for a Controller or Coordinator config file."""
    strict = not path_from_env or checks_on()
    return (0o640, True) if strict else (0o777, False)


def server_read_error(path: str) -> str | None:
    """Why the Server's ParamChecker::ReadJsonFile would refuse `path`, or None."""
    if len(path) >= PATH_MAX:
        return f"The file path {path[:40]}... exceeds the maximum value set by PATH_MAX."
    real = Path(os.path.realpath(path))
    if not real.is_file():
        return f"The input file: {real.name} is not a regular file or not exists"
    problem = _mode_and_owner(real, 0o640, True)
    return f"Check path: {real.name} failed, by:{problem}" if problem else None


# MindIE-LLM src/utils/safe_path.cpp (SafePath): the newer check the Server runs on the model
# weights (model_deploy_config.cpp:467, DIR "r" 0750) and their config.json (LoadJson,
# safe_io.cpp:30: FILE "r" 0640, 500 MB, ".json"). Unlike ReadJsonFile above, uid 0 passes the
# owner and mode checks (:292, :316), and MINDIE_CHECK_INPUTFILES_PERMISSION=0 turns those two
# into printed warnings (:300, :325).
SAFE_PATH = re.compile(r"^(?!.*\.\.)[a-zA-Z0-9_./-]+$")  # safe_path.cpp:352


def safe_path_error(path: str, directory: bool, limit: int, size_limit: int = 0, suffix: str = "") -> str | None:
    """Why SafePath(path, DIR or FILE, "r", limit, size_limit, suffix).Check would fail, or None."""
    resolved = Path(path).expanduser().resolve()  # NormalizePath: the existing prefix resolved
    real = str(resolved)
    if not resolved.exists():
        return f"Path not found: {real}"
    if not SAFE_PATH.match(real):
        return f"Path contains special characters: {real}"
    parts = resolved.parts
    if len(real) > PATH_MAX or len(parts) > 32 or any(len(part) > 255 for part in parts):
        return "Path length exceeds maximum limit: 4096"
    if directory and not resolved.is_dir():
        return f"The path is not directory: {real}"
    if not directory:
        if not resolved.is_file():
            return f"The path is not file: {real}"
        if suffix and not real.endswith(suffix):
            return f"{real} is not a {suffix} file."
        if size_limit and resolved.stat().st_size > size_limit:
            return f"File size exceeds limit: {size_limit}"
    info = resolved.stat()
    uid = os.getuid()
    if uid not in (0, info.st_uid):
        message = f"path owner uid mismatch: path={real}, current_uid={uid}, path_uid={info.st_uid}"
        if checks_on():
            return message
        print(f"{message}, permission check is disabled by env MINDIE_CHECK_INPUTFILES_PERMISSION", flush=True)
    if not os.access(real, os.R_OK):
        return f"Insufficient permissions for mode 'r' on path: {real}"
    mode = stat.S_IMODE(info.st_mode)
    if uid != 0 and mode & ~limit:
        message = f"Path permission exceeds maximum allowed: {real}, actual=0{mode:o}, limit=0{limit:o}"
        if checks_on():
            return message
        print(f"{message}, permission check is disabled by env MINDIE_CHECK_INPUTFILES_PERMISSION", flush=True)
    return None
