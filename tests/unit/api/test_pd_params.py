"""Which request parameters PD disaggregation refuses."""

from __future__ import annotations

import pytest

from supervisor_pd.api.proxy import unsupported


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"best_of": 2}, "best_of"),
        ({"use_beam_search": True}, "use_beam_search"),
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": 3}, "logprobs"),
        ({"top_logprobs": 5}, "top_logprobs"),
        ({"stop": "\n"}, "stop"),
        ({"stop": ["a", "b"]}, "stop"),
        ({"include_stop_str_in_output": True}, "include_stop_str_in_output"),
        ({"inputs": "x", "parameters": {"best_of": 3}}, "best_of"),
        ({"inputs": "x", "parameters": {"n": 4}}, "n"),
    ],
)
def test_refused(body: dict[str, object], param: str) -> None:
    assert unsupported("/v1/chat/completions", body) == param


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"n": 1},
        {"n": True},  # a bool is not a count
        {"best_of": 1},
        {"logprobs": False},
        {"logprobs": None},
        {"top_logprobs": 0},
        {"stop": None},
        {"stop": []},
        {"stop": ""},
        {"use_beam_search": False},
        {"include_stop_str_in_output": False},
        {"parameters": "not a dict"},
        [1, 2, 3],
        "text",
        None,
    ],
)
def test_allowed(body: object) -> None:
    assert unsupported("/v1/chat/completions", body) is None
