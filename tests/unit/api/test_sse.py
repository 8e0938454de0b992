"""Token events counted as they complete, across TCP chunk boundaries (api/sse.py)."""

from __future__ import annotations

import pytest

from supervisor_pd.api.sse import PREFIX, NulMessages, SseEvents, token_events

TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":"tok"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


def counts(chunks: list[bytes]) -> list[int]:
    reader = SseEvents()
    return [reader.feed(chunk) for chunk in chunks]


def test_one_event_per_chunk_is_one_token_each() -> None:
    assert counts([TOKEN, TOKEN, TOKEN]) == [1, 1, 1]


def test_events_coalesced_into_one_chunk_count_each() -> None:
    assert counts([TOKEN * 3, TOKEN]) == [3, 1]


def test_an_event_split_across_chunks_counts_when_its_blank_line_arrives() -> None:
    stream = TOKEN * 2
    # Cut everywhere, including between the two newlines that end an event.
    for cut in range(1, len(stream)):
        assert sum(counts([stream[:cut], stream[cut:]])) == 2, cut
    assert counts([TOKEN[:-1], b"\n"]) == [0, 1]
    assert counts([b"da", b"ta: x", b"\n", b"\n"]) == [0, 0, 0, 1]


def test_every_byte_in_its_own_chunk() -> None:
    stream = TOKEN + b": keep-alive\n\n" + TOKEN + DONE
    assert sum(counts([bytes([byte]) for byte in stream])) == 2


@pytest.mark.parametrize("end", [b"\r\n", b"\r", b"\n"])
def test_any_line_end_the_sse_spec_allows(end: bytes) -> None:
    event = b'data: {"x":1}' + end + end
    stream = event * 3
    assert counts([stream]) == [3]
    for cut in range(1, len(stream)):
        assert sum(counts([stream[:cut], stream[cut:]])) == 3, (end, cut)
    assert sum(counts([bytes([byte]) for byte in stream])) == 3


def test_mixed_line_ends_split_after_a_cr() -> None:
    assert counts([b"data: x\r", b"\n", b"\n"]) == [0, 0, 1]
    assert counts([b"data: x\r", b"\r"]) == [0, 1]


def test_done_comments_and_events_without_data_are_not_tokens() -> None:
    assert counts([b": ping\n\n", b"event: x\nid: 3\n\n", DONE, b"retry: 10\n\n"]) == [0, 0, 0, 0]


def test_an_error_event_is_not_a_token() -> None:
    error = b'data: {"error":{"message":"The Coordinator closed the reply mid-way.","code":502}}\n\n'
    assert counts([TOKEN, error]) == [1, 0]


def test_a_multi_line_event_is_one_token() -> None:
    assert counts([b'data: {"a":\ndata: 1}\n\n']) == [1]


def test_a_huge_event_keeps_only_a_prefix_between_reads() -> None:
    reader = SseEvents()
    assert reader.feed(b"data: " + b"x" * 100) == 0
    for _ in range(1000):
        assert reader.feed(b"x" * 1000) == 0
    assert len(reader._line) <= PREFIX
    assert reader.feed(b"\n\n") == 1


def test_vllm_messages_end_with_a_nul_byte() -> None:
    reader = NulMessages()
    assert [reader.feed(chunk) for chunk in (b'{"text":["a"]}\0{"te', b'xt":["ab"]}\0', b"")] == [1, 1, 0]


def test_the_reader_follows_the_content_type() -> None:
    assert isinstance(token_events("text/event-stream; charset=utf-8"), SseEvents)
    assert isinstance(token_events("Text/Event-Stream"), SseEvents)
    assert isinstance(token_events("text/plain"), NulMessages)
    assert token_events("application/json") is None
    assert token_events("") is None


def test_one_event_per_read_and_many_per_read_agree() -> None:
    """The one-event read takes a short cut (api/sse.py); it must judge events as the long way does."""
    events = [
        TOKEN,
        DONE,
        b"data:[DONE]\n\n",
        b'data: {"error":"x"}\n\n',
        b'data:{"error":"x"}\n\n',
        b"data:x\n\n",
        b"data: \n\n",
        b": c\n\n",
        b"event: e\n\n",
    ]
    one_by_one = counts(events)
    assert one_by_one == [1, 0, 0, 0, 0, 1, 1, 0, 0]
    assert counts([b"".join(events)]) == [sum(one_by_one)]
    assert counts([b"\n" + event for event in events])[1:] == one_by_one[1:]
