"""Circuit breaker state machine."""
from __future__ import annotations

import pytest

from proxy.providers.breaker import CircuitBreaker
from tests.providers.scripted import FakeClock


def test_opens_after_the_configured_consecutive_failures() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=FakeClock())
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(2, 10.0, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"


def test_half_open_after_reset_time_lets_exactly_one_trial_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 30.0, clock=clock)
    breaker.record_failure()
    clock.now += 29.9
    assert not breaker.allow()
    assert breaker.retry_in() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()          # the trial is still out


def test_successful_trial_closes_and_failed_trial_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_released_trial_lets_the_next_caller_try() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_zero_failures_disables_the_breaker() -> None:
    breaker = CircuitBreaker(0, 5.0, clock=FakeClock())
    for _ in range(100):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
