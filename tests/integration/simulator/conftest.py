from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.simstack import Stack


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    stacks: list[Stack] = []

    def make(**kwargs) -> Stack:  # type: ignore[no-untyped-def]
        stack = Stack(tmp_path / f"stack{len(stacks)}", **kwargs)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop_all()
