"""MindIE's log variables, checked against what MindIE's processes accept.

Every MindIE process reads MINDIE_LOG_* itself, and a value it does not understand is dropped
without a word: the Server keeps its default (MindIE-LLM src/utils/log/log_utils.cpp:25-62, and
its Python side mindie_llm/utils/log/logging_base.py:315-325), the Controller and Coordinator
print a line to stdout and keep theirs (MindIE-Motor mindie_motor/src/http_client_ctl/log/
Logger.cpp:243-247, 251-270). A typo would mean logs nobody chose, so the plan refuses it.

The form, shared by both (log_utils.cpp:64-83 GetEnvParam; mindie_llm/utils/log/utils.py:27-47;
Logger.cpp:131-183 GetMotorEnv): items separated by ';', each `value` (every component) or
`component:value`; documented in MindIE-LLM docs/zh/user_guide/user_manual/logging_configuration.md
:96-102 and :191-205.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from supervisor_pd.errors import InputError
from supervisor_pd.formats.common import describe_value
from supervisor_pd.plan.public_vars import PublicVariables

# The components of this container's processes: the Server's loggers (MindIE-LLM
# src/utils/log/log_config.cpp:24-29, "*" = all of them) and MindIE-Motor's ("ms", Logger.cpp:162).
COMPONENTS = ("llm", "llmmodels", "server", "ms", "*")
# log_utils.cpp:53 and logging_base.py:320; Motor's Logger::GetLogLevel (Logger.cpp:251-264) also
# takes WARNING and NULL (logging off), which the Server would ignore: only under "ms:".
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "CRITICAL")
MOTOR_LEVELS = (*LEVELS, "WARNING", "NULL")
SWITCHES = ("true", "false", "1", "0")  # log_utils.cpp:29; Logger.cpp:243
# Motor ignores a log variable longer than this, with a warning (Logger.cpp:42, 134).
MAX_LENGTH = 256
# MINDIE_LOG_ROTATE "-fs <MB> -r <files>": MindIE-LLM src/utils/log/log_config.h:44-47 (checked in
# log_config.cpp:137-146), mindie_llm/utils/log/utils.py:120-138 (raises); Motor Logger.cpp:39-40, 506-519.
ROTATE_OPTIONS = {"-fs": (1, 500), "-r": (1, 64)}
_COMPONENT_FORM = "; or per component, as 'llm:<value>;ms:<value>' (components: " + ", ".join(COMPONENTS) + ")"


def check_log_variables(variables: PublicVariables) -> None:
    """Raise InputError naming the first log variable MindIE would not take as given."""
    checks: tuple[tuple[str, str | None, Callable[[str, str], str | None], str], ...] = (
        ("MINDIE_LOG_LEVEL", variables.log_level, _level, "one of " + ", ".join(LEVELS) + " (any case)"),
        ("MINDIE_LOG_TO_STDOUT", variables.log_to_stdout, _switch, "one of " + ", ".join(SWITCHES)),
        ("MINDIE_LOG_TO_FILE", variables.log_to_file, _switch, "one of " + ", ".join(SWITCHES)),
        ("MINDIE_LOG_VERBOSE", variables.log_verbose, _switch, "one of " + ", ".join(SWITCHES)),
        ("MINDIE_LOG_PATH", variables.log_path, _path, "a folder path without control characters"),
        (
            "MINDIE_LOG_ROTATE",
            variables.log_rotate,
            _rotate,
            "'-fs <MB, 1-500> -r <files, 1-64>' (either or both)",
        ),
    )
    for name, raw, check, allowed in checks:
        if raw is None:
            continue
        allowed_text = f"allowed: {allowed}{_COMPONENT_FORM}"
        if len(raw) > MAX_LENGTH:
            raise InputError(
                name,
                f"is {len(raw)} characters long; MindIE's Controller and Coordinator ignore "
                f"it above {MAX_LENGTH}; {allowed_text}",
            )
        # MindIE trims spaces only (log_utils.cpp:85-94 Trim; Logger.cpp:240-241): a newline stays in.
        for item in (part.strip(" ") for part in raw.split(";")):
            if not item:
                continue
            component, value = _split(name, item, allowed_text)
            problem = check(component, value)
            if problem is not None:
                raise InputError(name, f"{describe_value(item)} {problem}; {allowed_text}")


def _split(name: str, item: str, allowed: str) -> tuple[str, str]:
    if ":" not in item:
        return "", item
    component, _, value = item.partition(":")
    component, value = component.strip(" "), value.strip(" ")
    if component not in COMPONENTS or ":" in value:
        raise InputError(name, f"{describe_value(item)} names no component MindIE reads here; {allowed}")
    if not value:
        raise InputError(name, f"{describe_value(item)} has no value; {allowed}")
    return component, value


def _level(component: str, value: str) -> str | None:
    allowed = MOTOR_LEVELS if component == "ms" else LEVELS
    return None if value.upper() in allowed else "is not a log level"


def _switch(_component: str, value: str) -> str | None:
    return None if value.lower() in SWITCHES else "is not a switch"


def _path(_component: str, value: str) -> str | None:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        return "holds a control character"
    return None


_ROTATE_WORDS = re.compile(r"\S+")


def _rotate(_component: str, value: str) -> str | None:
    words = _ROTATE_WORDS.findall(value)
    if len(words) % 2:
        return "is not option-value pairs"
    for option, number in zip(words[::2], words[1::2], strict=True):
        if option not in ROTATE_OPTIONS:
            return f"has the option {option!r}, which MindIE does not know"
        low, high = ROTATE_OPTIONS[option]
        if not number.isascii() or not number.isdigit() or not low <= int(number) <= high:
            return f"sets {option} to {number!r}, outside [{low}, {high}]"
    return None
