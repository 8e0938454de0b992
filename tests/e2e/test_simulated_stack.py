"""The simulated MindIE processes, started by hand from a plan, form a working PD service."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.simstack import Stack


@pytest.mark.parametrize("profile", ["800i-a2", "800i-a3"])
def test_streamed_chat_completion_with_the_openai_client(tmp_path: Path, profile: str) -> None:
    stack = Stack(tmp_path, profile=profile)
    try:
        stack.start_all()
        stack.wait_ready()
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{stack.ports.predict}/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="llama3-8b",
            messages=[{"role": "user", "content": "Say something about Ascend."}],
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, finish, usage = [], None, None
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
        assert len(pieces) == 12 and all(pieces)
        assert finish == "length"
        assert usage is not None and usage.completion_tokens == 12
        whole = client.chat.completions.create(
            model="llama3-8b", messages=[{"role": "user", "content": "Say something about Ascend."}], max_tokens=12
        )
        assert whole.choices[0].message.content == "".join(pieces)  # same prompt, same text, through P and D
        completion = client.completions.create(model="llama3-8b", prompt="Hello", max_tokens=5)
        assert completion.usage is not None and completion.usage.completion_tokens == 5
    finally:
        stack.stop_all()
