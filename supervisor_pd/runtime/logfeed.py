"""Following a process's log as it is written (`logs -f`): the sink hands each line to the
followers of its process the moment it arrives, and each follower's reader awaits it. Nothing polls.

Each follower has a bounded queue: a reader that falls behind (a slow client, a stalled
connection) loses lines, counted by their numbers, instead of growing the supervisor's memory or
slowing the sink, which runs on the supervision loop and never waits. The number of followers is
bounded too. Everything here runs on the event loop's thread, as `LogSink.line()` does.
"""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

FOLLOW_LINES = 1000  # lines a follower may be behind before it loses some
MAX_FOLLOWERS = 32


class TooManyFollowers(Exception):
    pass


class Follower:
    """One reader of one process's lines as they come: (number, text); numbers count every line
    the process wrote, so a gap says how many were lost."""

    def __init__(self, feed: LogFeed, process: str, limit: int) -> None:
        self.feed = feed
        self.process = process
        send, receive = anyio.create_memory_object_stream[tuple[int, str]](limit)
        self._send: MemoryObjectSendStream[tuple[int, str]] = send
        self._receive: MemoryObjectReceiveStream[tuple[int, str]] = receive
        self.lost = 0

    def offer(self, number: int, text: str) -> None:
        try:
            self._send.send_nowait((number, text))
        except anyio.WouldBlock:
            self.lost += 1  # the reader is behind: the gap in the numbers tells it
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def lines(self) -> list[tuple[int, str]]:
        """The next lines: waits for at least one; [] when the feed has ended."""
        try:
            first = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return []
        batch = [first]
        while len(batch) < 512:
            try:
                batch.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
        return batch

    def end(self) -> None:
        """No more lines will come: the reader gets what is queued, then the end."""
        self._send.close()

    def close(self) -> None:
        self.feed.leave(self)
        self._send.close()
        self._receive.close()


class LogFeed:
    def __init__(self, limit: int = FOLLOW_LINES, max_followers: int = MAX_FOLLOWERS) -> None:
        self.limit = limit
        self.max_followers = max_followers
        self._followers: dict[str, set[Follower]] = {}
        self.ended = False

    def follow(self, process: str) -> Follower:
        if sum(len(group) for group in self._followers.values()) >= self.max_followers:
            raise TooManyFollowers(f"{self.max_followers} logs are followed already")
        follower = Follower(self, process, self.limit)
        if self.ended:
            follower.end()
        else:
            self._followers.setdefault(process, set()).add(follower)
        return follower

    def publish(self, process: str, number: int, text: str) -> None:
        for follower in self._followers.get(process, ()):
            follower.offer(number, text)

    def leave(self, follower: Follower) -> None:
        group = self._followers.get(follower.process)
        if group is not None:
            group.discard(follower)
            if not group:
                del self._followers[follower.process]

    def end(self) -> None:
        """The supervisor stops: every follow ends once its reader has what was queued."""
        self.ended = True
        for group in self._followers.values():
            for follower in group:
                follower.end()

    @property
    def followers(self) -> int:
        return sum(len(group) for group in self._followers.values())
