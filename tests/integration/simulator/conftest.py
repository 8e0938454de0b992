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


@pytest.fixture
def make_tls_stack(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Like make_stack, for tests/integration/simulator/tlsstack.TlsStack."""
    from tests.integration.simulator.tlsstack import TlsStack

    stacks: list[TlsStack] = []

    def make(**kwargs) -> TlsStack:  # type: ignore[no-untyped-def]
        stack = TlsStack(tmp_path / f"tls{len(stacks)}", **kwargs)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop_all()


@pytest.fixture(scope="module")
def make_module_tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator:  # type: ignore[type-arg]
    """Like make_tls_stack, for the module-scoped fixtures of binaries that several tests only read
    (handshakes against one started listener): stopped after the module's last test."""
    from tests.integration.simulator.tlsstack import TlsStack

    stacks: list[TlsStack] = []

    def make(**kwargs) -> TlsStack:  # type: ignore[no-untyped-def]
        stack = TlsStack(tmp_path_factory.mktemp("tls-shared"), **kwargs)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop_all()
