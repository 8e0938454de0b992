import json

import pytest

from supervisor_pd.simulator import textgen


def gen(path: str, body: dict, **kw) -> textgen.Generation:  # type: ignore[no-untyped-def]
    return textgen.parse(
        path, body, "m", default_tokens=kw.get("default", 8), limit=kw.get("limit", 512), request_id="7"
    )


def test_the_same_prompt_gives_the_same_text() -> None:
    one = gen("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
    two = gen("/v1/completions", {"prompt": "x"})
    assert one.text(0, 8) == two.text(0, 8)
    assert one.text(0, 8) != gen("/v1/completions", {"prompt": "y"}).text(0, 8)


def test_stream_pieces_add_up_to_the_full_reply() -> None:
    g = gen("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True})
    frames = b"".join(textgen.stream_piece(g, i) for i in range(3)) + textgen.stream_end(g)
    chunks = [json.loads(f[6:]) for f in frames.decode().split("\n\n") if f and f != "data: [DONE]"]
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == g.text(0, 4)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    full = json.loads(textgen.full_body(g))
    assert full["choices"][0]["message"]["content"] == g.text(0, 4)


def test_limits() -> None:
    assert gen("/v1/completions", {"prompt": "a"}, default=3).max_tokens == 3
    assert gen("/v1/completions", {"prompt": "a", "max_tokens": 999}, limit=10).max_tokens == 10


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": []}),
        ("/v1/chat/completions", {"messages": [{"content": "x"}], "max_tokens": 0}),
        ("/v1/completions", {"prompt": 5}),
        ("/infer", {"inputs": ""}),
        ("/infer_token", {"input_id": ["a"]}),
        ("/v2/models/m/infer", {"inputs": []}),
        ("/v1/chat/completions", [1, 2]),
    ],
)
def test_invalid_requests(path: str, body: object) -> None:
    with pytest.raises(textgen.InvalidRequest):
        textgen.parse(path, body, "m", 8, 512, "1")


@pytest.mark.parametrize(
    ("path", "body", "api", "stream"),
    [
        ("/generate", {"inputs": "x"}, "tgi", False),
        ("/generate", {"prompt": "x"}, "vllm", False),
        ("/generate_stream", {"inputs": "x"}, "tgi", True),
        ("/", {"inputs": "x", "stream": True}, "tgi", True),
        ("/infer", {"inputs": "x"}, "mindie-infer", False),
        ("/v2/models/m/generate_stream", {"text_input": "x"}, "triton-generate", True),
    ],
)
def test_api_detection(path: str, body: dict, api: str, stream: bool) -> None:
    g = gen(path, body)
    assert (g.api, g.stream) == (api, stream)
    assert textgen.full_body(g)


@pytest.mark.parametrize(
    ("path", "model", "message"),
    [
        ("/v1/chat/completions", "other", "Got model other, but not found in server"),
        ("/v1/completions", "other", "Not found given model, please check modelName in config file."),
        ("/v1/chat/completions", 3, "Request param model must be string"),
        ("/v1/completions", "", "Request param model must be not empty"),
    ],
)
def test_the_model_is_checked_as_mindie_does(path: str, model: object, message: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "x"}], "prompt": "x"}
    with pytest.raises(textgen.InvalidRequest, match=message):
        gen(path, body)
    assert gen(path, {**body, "model": "m"}).model == "m"
