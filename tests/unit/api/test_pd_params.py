"""Which request parameters PD disaggregation refuses."""

from __future__ import annotations

import pytest

from supervisor_pd.api.requests import DuplicateKey, parse_body, unsupported


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
        # The value decides, not its JSON type.
        ({"n": 2.0}, "n"),
        ({"n": "2"}, "n"),
        ({"n": " 3 "}, "n"),
        ({"best_of": 3.0}, "best_of"),
        ({"best_of": "4"}, "best_of"),
        ({"use_beam_search": 1}, "use_beam_search"),
        ({"use_beam_search": "true"}, "use_beam_search"),
        ({"use_beam_search": "True"}, "use_beam_search"),
        ({"logprobs": "true"}, "logprobs"),
        ({"logprobs": 0}, "logprobs"),
        ({"logprobs": "2"}, "logprobs"),
        ({"logprobs": 1.0}, "logprobs"),
        ({"top_logprobs": "5"}, "top_logprobs"),
        ({"top_logprobs": 2.0}, "top_logprobs"),
        ({"stop": ["", "x"]}, "stop"),
        ({"include_stop_str_in_output": "yes"}, "include_stop_str_in_output"),
        ({"include_stop_str_in_output": 1}, "include_stop_str_in_output"),
        ({"parameters": {"use_beam_search": "1"}}, "use_beam_search"),
    ],
)
def test_refused(body: dict[str, object], param: str) -> None:
    assert unsupported(body) == param


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
        {"n": 1.0},
        {"n": "1"},
        {"n": "two"},  # meaningless: left to MindIE's own validation
        {"n": None},
        {"use_beam_search": "false"},
        {"use_beam_search": 0},
        {"logprobs": "false"},
        {"top_logprobs": "0"},
        {"stop": [""]},
        {"n": float("nan")},
        [1, 2, 3],
        "text",
        None,
    ],
)
def test_allowed(body: object) -> None:
    assert unsupported(body) is None


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(DuplicateKey) as found:
        parse_body(b'{"n": 1, "messages": [], "n": 2}')
    assert found.value.key == "n"
    with pytest.raises(DuplicateKey):
        parse_body(b'{"parameters": {"best_of": 1, "best_of": 3}}')
    assert parse_body(b'{"n": 1, "x": {"n": 2}}') == {"n": 1, "x": {"n": 2}}  # the same key in two objects


def test_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_body(b"{not json")
