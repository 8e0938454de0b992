import pytest

from tests.helpers import private_net_unavailable


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say so when the runs that plan the sample configs' fixed ports shared this machine's network."""
    reason = private_net_unavailable()
    if reason is not None:
        terminalreporter.write_line(
            f"note: no private network namespace ({reason}): tests that plan the sample configs "
            "ran on this machine's network and needed ports 8080, 1025-1031 and 2000+ free"
        )
