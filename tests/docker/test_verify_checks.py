"""Verify's containers on a real engine: a check that hangs or cannot start is reported as a
failure of that check alone, and its container is removed either way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.docker import engines as eng
from tests.docker.matrixspace import containers
from toolkit.verify import Check, checks_for, run_check, verify_image

BASE = f"{eng.STANDIN_REPOSITORY}:1809"


@pytest.fixture
def client(engines: dict[str, eng.Engine]) -> Iterator[Any]:
    made = engines["ltsc2016"].client()
    yield made
    made.close()


def _exit_zero(code: int, output: str) -> str | None:
    return None if code == 0 else f"exited {code}"


def test_a_hanging_check_times_out_and_its_container_is_removed(client: Any) -> None:
    hang = Check(
        name="hangs", argv=("python", "-c", "import time; time.sleep(60)"), judge=_exit_zero
    )
    started = time.monotonic()
    result = run_check(client, BASE, hang, timeout=2)
    assert time.monotonic() - started < 20
    assert not result.passed
    assert result.message == "did not finish within 2 s"
    assert containers(client.api) == []


def test_a_check_that_cannot_start_fails_alone(client: Any, standin_python_version: str) -> None:
    missing = Check(name="no-such-program", argv=("no-such-program",), judge=_exit_zero)
    checks = [missing, *checks_for(standin_python_version, "0", "linux")[:1]]
    results = verify_image(client, BASE, checks, timeout=30)
    assert [r.passed for r in results] == [False, True]
    assert results[0].message is not None
    assert results[0].message.startswith("the engine refused:")
    assert "no-such-program" in results[0].message
    assert results[1].output.strip() == f"Python {standin_python_version}"
    assert containers(client.api) == []
