"""The paths MindIE's Controller and Coordinator will accept for the files supervisor_pd writes.

They read ms_controller.json, ms_coordinator.json and the ranktable through one check: MindIE-Motor
`mindie_motor/src/http_client_ctl/common/Util.cpp`, `PathCheck` and `CheckPathLengthAndLink`,
reached through `FileToBuffer` from `ControllerConfig::Init`, `RankTableLoader` (through
`controller/json_file_loader/JsonFileLoader.cpp` `FileToJsonObj`) and the Coordinator's
`configure/Configure.cpp`. It refuses a path over 256 characters, a symbolic link, and any path
with `..` or a character outside `[a-zA-Z0-9_./~-]`, whatever MINDIE_CHECK_INPUTFILES_PERMISSION
says: that variable turns off only the mode (0640) and owner checks. A folder with a space in its
name would pass every simulated start and fail every real one, so the plan refuses it.
"""

from __future__ import annotations

import re

from supervisor_pd.errors import InputError

MAX_LENGTH = 256
ALLOWED = re.compile(r"[a-zA-Z0-9_./~-]+")


def check_motor_path(path: str, where: str) -> None:
    """Raise InputError naming `where` if MindIE's Controller or Coordinator would refuse `path`."""
    if ".." in path or not ALLOWED.fullmatch(path):
        bad = sorted({ch for ch in path if not ALLOWED.fullmatch(ch)})
        shown = ", ".join(repr(ch) for ch in bad) if bad else "'..'"
        raise InputError(
            where,
            f"{path!r} holds {shown}: MindIE's Controller and Coordinator read files only under paths made of "
            "letters, digits and _ . / ~ - (no '..'); choose another folder",
        )
    if len(path) > MAX_LENGTH:
        raise InputError(
            where,
            f"{path[:40] + '...' + path[-30:]!r} is {len(path)} characters: MindIE's Controller and Coordinator "
            f"read paths of at most {MAX_LENGTH}; choose a shorter folder",
        )
