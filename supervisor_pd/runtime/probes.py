"""HTTP checks of the children's own endpoints, each bounded by a timeout."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from supervisor_pd.runtime.spec import HttpCheck


@dataclass(frozen=True)
class Result:
    ok: bool
    detail: str
    body: Any = None
    seconds: float = 0.0


class Prober:
    """One shared client session with keep-alive (a check costs no connection set-up); a check that
    meets a connection the child closed (it restarted) is retried once on a fresh one."""

    def __init__(self, timeout: float, tls: ssl.SSLContext | None = None) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Prober:
        # The TLS context is used for https:// checks only.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ssl=self.tls if self.tls else True)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def check(self, check: HttpCheck, limit: float | None = None, retry: bool = True) -> Result:
        """GET `check`; `retry=False` for a request that must not be sent twice (/stopService)."""
        result = await self._check(check, limit)
        if retry and not result.ok and result.detail.endswith("ServerDisconnectedError"):
            result = await self._check(check, limit)
        return result

    async def _check(self, check: HttpCheck, limit: float | None) -> Result:
        assert self._session is not None
        limit = limit if limit is not None else self.timeout.total
        began = time.monotonic()
        try:
            async with self._session.get(check.url, timeout=aiohttp.ClientTimeout(total=limit)) as response:
                raw = await response.read()
                seconds = time.monotonic() - began
                body = None
                if raw[:1] == b"{":
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        body = None
                return Result(response.status == 200, f"{check.path} answered {response.status}", body, seconds)
        except TimeoutError:
            return Result(False, f"{check.path} did not answer within {limit:g} s", None, time.monotonic() - began)
        except aiohttp.ClientError as exc:
            return Result(False, f"{check.path} failed: {type(exc).__name__}", None, time.monotonic() - began)
