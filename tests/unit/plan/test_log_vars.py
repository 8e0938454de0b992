"""MINDIE_LOG_*: values MindIE's processes would drop without a word are refused at plan time,
naming the variable and what is allowed; every form MindIE documents is taken."""

from __future__ import annotations

import pytest

from supervisor_pd.errors import InputError
from supervisor_pd.plan.log_vars import check_log_variables
from supervisor_pd.plan.planner import make_plan
from supervisor_pd.plan.public_vars import PublicVariables
from supervisor_pd.settings import Settings
from tests import factories
from tests.factories import FakeChecker


def check(name: str, value: str) -> None:
    check_log_variables(PublicVariables.from_environ({name: value}))


GOOD = [
    ("MINDIE_LOG_LEVEL", "INFO"),
    ("MINDIE_LOG_LEVEL", "info"),
    ("MINDIE_LOG_LEVEL", "Critical"),
    ("MINDIE_LOG_LEVEL", "llm:debug;llmmodels:info"),  # logging_configuration.md:195
    ("MINDIE_LOG_LEVEL", "warn; ms: warning ;"),  # Motor also takes WARNING and NULL
    ("MINDIE_LOG_LEVEL", "ms:null"),
    ("MINDIE_LOG_LEVEL", "*:error"),
    ("MINDIE_LOG_TO_STDOUT", "1"),
    ("MINDIE_LOG_TO_STDOUT", "TRUE"),
    ("MINDIE_LOG_TO_FILE", "llm:true;llmmodels:false"),
    ("MINDIE_LOG_VERBOSE", "0"),
    ("MINDIE_LOG_PATH", "/var/log/mindie"),
    ("MINDIE_LOG_PATH", "llm:/path/to/llm_log;llmmodels:/path/to/llmmodels_log"),
    ("MINDIE_LOG_PATH", "relative/logs"),
    ("MINDIE_LOG_ROTATE", "-fs 20 -r 10"),
    ("MINDIE_LOG_ROTATE", "-r 64"),
    ("MINDIE_LOG_ROTATE", "llm: -fs 500 ; ms: -fs 1 -r 1"),
]


@pytest.mark.parametrize(("name", "value"), GOOD)
def test_forms_mindie_takes(name: str, value: str) -> None:
    check(name, value)


BAD = [
    ("MINDIE_LOG_LEVEL", "VERBOSE", "is not a log level", "DEBUG, INFO, WARN, ERROR, CRITICAL"),
    ("MINDIE_LOG_LEVEL", "WARNING", "is not a log level", "DEBUG, INFO, WARN, ERROR, CRITICAL"),  # not the Server
    ("MINDIE_LOG_LEVEL", "llm:null", "is not a log level", "DEBUG"),
    ("MINDIE_LOG_LEVEL", "lm:debug", "names no component", "llm, llmmodels, server, ms, *"),
    ("MINDIE_LOG_LEVEL", "LLM:debug", "names no component", "llm, llmmodels, server, ms, *"),
    ("MINDIE_LOG_LEVEL", "llm:", "has no value", "DEBUG"),
    ("MINDIE_LOG_LEVEL", "llm:debug:x", "names no component", "DEBUG"),
    ("MINDIE_LOG_TO_STDOUT", "yes", "is not a switch", "true, false, 1, 0"),
    ("MINDIE_LOG_TO_FILE", "llm:true;ms:on", "is not a switch", "true, false, 1, 0"),
    ("MINDIE_LOG_VERBOSE", "2", "is not a switch", "true, false, 1, 0"),
    ("MINDIE_LOG_PATH", "/var/log\n", "control character", "a folder path"),
    ("MINDIE_LOG_ROTATE", "-fs 0", "outside [1, 500]", "-fs <MB, 1-500> -r <files, 1-64>"),
    ("MINDIE_LOG_ROTATE", "-fs 501", "outside [1, 500]", "-fs"),
    ("MINDIE_LOG_ROTATE", "-r 65", "outside [1, 64]", "-r"),
    ("MINDIE_LOG_ROTATE", "-r x", "outside [1, 64]", "-r"),
    ("MINDIE_LOG_ROTATE", "-fs", "option-value pairs", "-fs"),
    ("MINDIE_LOG_ROTATE", "-s 20", "does not know", "-fs"),
    ("MINDIE_LOG_LEVEL", "info;" * 60, "characters long", "DEBUG"),
]


@pytest.mark.parametrize(("name", "value", "problem", "allowed"), BAD)
def test_values_mindie_would_drop_are_refused(name: str, value: str, problem: str, allowed: str) -> None:
    with pytest.raises(InputError) as caught:
        check(name, value)
    assert caught.value.where == name
    assert problem in caught.value.problem
    assert "allowed: " in caught.value.problem
    assert allowed in caught.value.problem


def test_the_plan_refuses_a_bad_log_level_before_anything_else() -> None:
    with pytest.raises(InputError) as caught:
        make_plan(
            factories.facts(factories.chips(8, per_node=4)),
            factories.inputs(),
            Settings(),
            FakeChecker(),
            variables=PublicVariables.from_environ({}, Settings(log_level="VERBOSE")),
        )
    assert caught.value.where == "MINDIE_LOG_LEVEL"
