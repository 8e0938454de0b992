"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.superstack import SupervisorRun


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Callable[..., SupervisorRun]]:
    """Make `supervisor-pd run` stacks, each in a folder of its own; whatever they leave is
    cleaned up after the test (and checked for refused transitions)."""
    made: list[SupervisorRun] = []

    def make(**kwargs: Any) -> SupervisorRun:
        folder = tmp_path / f"run{len(made)}"
        folder.mkdir()
        run = SupervisorRun(folder, **kwargs)
        made.append(run)
        return run

    yield make
    for run in made:
        run.cleanup()
