"""Following a log: lines reach followers as the sink takes them, a slow follower loses lines
(counted by their numbers) instead of growing memory, and the end of the feed ends every follow."""

from __future__ import annotations

import io

import anyio
import pytest

from supervisor_pd.runtime.logfeed import LogFeed, TooManyFollowers
from supervisor_pd.runtime.logs import LogSink

pytestmark = pytest.mark.anyio


async def test_a_follower_gets_each_line_of_its_process_when_the_sink_takes_it() -> None:
    sink = LogSink(out=io.BytesIO())
    try:
        sink.line("server-1", "stdout", "before")  # the tail's, not the follower's
        follower = sink.feed.follow("server-1")
        got: list[list[tuple[int, str]]] = []

        async def read() -> None:
            while batch := await follower.lines():
                got.append(batch)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            assert got == []  # nothing yet: the reader waits, it does not poll
            sink.line("server-1", "stdout", "one")
            sink.line("server-2", "stdout", "someone else's")
            await anyio.wait_all_tasks_blocked()
            assert got == [[(1, "one")]]  # woken by the line itself
            sink.line("server-1", "stdout", "two")
            sink.line("server-1", "stdout", "three")
            await anyio.wait_all_tasks_blocked()
            sink.feed.end()
        assert [line for batch in got for line in batch] == [(1, "one"), (2, "two"), (3, "three")]
        follower.close()
        assert sink.feed.followers == 0
    finally:
        sink.close()


async def test_a_follower_that_falls_behind_loses_lines_and_the_numbers_show_how_many() -> None:
    feed = LogFeed(limit=3)
    follower = feed.follow("p")
    for number in range(10):
        feed.publish("p", number, f"line {number}")
    assert follower.lost == 7  # bounded: the queue never held more than 3
    assert await follower.lines() == [(0, "line 0"), (1, "line 1"), (2, "line 2")]
    feed.publish("p", 10, "line 10")
    assert await follower.lines() == [(10, "line 10")]  # the gap says 7 were lost
    feed.end()
    assert await follower.lines() == []


async def test_followers_are_bounded_and_leave_when_closed() -> None:
    feed = LogFeed(max_followers=2)
    first, second = feed.follow("a"), feed.follow("b")
    with pytest.raises(TooManyFollowers):
        feed.follow("a")
    first.close()
    third = feed.follow("a")
    feed.publish("a", 0, "x")
    assert await third.lines() == [(0, "x")]
    second.close()
    third.close()
    assert feed.followers == 0


async def test_a_follow_begun_after_the_end_ends_at_once() -> None:
    feed = LogFeed()
    feed.end()
    assert await feed.follow("a").lines() == []
