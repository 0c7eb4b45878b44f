"""`kafka_calls.retry` waits out a broker's transient states and names what it waited for; anything
else fails at once. A fake clock makes the bound exact; the real broker path runs in the demo test."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka.errors import (
    CoordinatorNotAvailableError,
    InvalidTopicError,
    LeaderNotAvailableError,
    NoBrokersAvailable,
    NotControllerError,
    RequestTimedOutError,
)

from lambda_tools.kafka_calls import KafkaUnavailableError, retry

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def failing(errors: list[Exception], result: str = "ok") -> Callable[[], str]:
    def call() -> str:
        if errors:
            raise errors.pop(0)
        return result

    return call


@pytest.mark.parametrize(
    "error",
    [CoordinatorNotAvailableError(), LeaderNotAvailableError(), NotControllerError(), RequestTimedOutError()],
)
def test_a_transient_broker_state_is_retried_until_it_passes(error: Exception) -> None:
    clock = FakeClock()
    call = failing([error, error, error])
    assert retry("do it", call, sleep=clock.sleep, clock=lambda: clock.now) == "ok"
    assert clock.pauses == [0.1, 0.2, 0.4]


def test_the_pause_doubles_up_to_two_seconds_and_the_bound_ends_it_with_what_was_awaited() -> None:
    clock = FakeClock()
    errors: list[Exception] = [CoordinatorNotAvailableError("not yet")] * 100
    with pytest.raises(KafkaUnavailableError) as raised:
        retry("report the committed offsets of group 'g'", failing(errors), bound_s=10,
              sleep=clock.sleep, clock=lambda: clock.now)  # fmt: skip
    assert max(clock.pauses) == 2.0
    assert sum(clock.pauses) <= 10
    message = str(raised.value)
    assert "report the committed offsets of group 'g' within 10 s" in message
    assert f"waited {sum(clock.pauses):.1f} s" in message
    assert "CoordinatorNotAvailableError" in message


@pytest.mark.parametrize("error", [InvalidTopicError(), NoBrokersAvailable()])
def test_an_error_that_will_not_pass_by_itself_is_raised_at_once(error: Exception) -> None:
    clock = FakeClock()
    with pytest.raises(type(error)):
        retry("do it", failing([error]), sleep=clock.sleep, clock=lambda: clock.now)
    assert clock.pauses == []
