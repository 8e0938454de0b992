"""Host tool runs side by side: a bounded pool, each run within the per-run timeout.

Discovery asks npu-smi, hccn_tool and lspci up to three questions per chip; on an A3 that is 48
runs, each waiting mostly on the driver. They are independent, so they run at once, at most
`concurrency` at a time (16 by default: one wave per question on a 16-chip A3).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from supervisor_pd.platform.tools import ToolResult, run_tool

DEFAULT_CONCURRENCY = 16


class ToolPool:
    """`submit(argv)` returns a Future of the ToolResult; its `result()` raises ToolError as
    `run_tool` would. Used as a context manager: leaving it normally waits for every run; leaving
    it on an exception cancels what has not started and does not wait (a started run still ends
    within its timeout)."""

    def __init__(
        self, timeout: float, environ: Mapping[str, str] | None = None, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.timeout = timeout
        self.environ = environ
        self.concurrency = concurrency
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="host-tool")

    def submit(self, argv: list[str]) -> Future[ToolResult]:
        return self._executor.submit(run_tool, argv, self.timeout, self.environ)

    def __enter__(self) -> ToolPool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._executor.shutdown(wait=kind is None, cancel_futures=kind is not None)
