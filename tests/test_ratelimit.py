"""The politeness gate: token bucket, Retry-After pause, breaker and backoff, on a fake clock."""

from __future__ import annotations

import logging
import threading

import pytest

from kinetix.sources.ratelimit import (
    BackoffPolicy,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    Clock,
    Outcome,
    RequestGate,
    TokenBucket,
    shared_gate,
)


class FakeClock(Clock):
    """Time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)


def test_bucket_spaces_requests_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock)
    starts = []
    for _ in range(5):
        bucket.acquire()
        starts.append(clock.now - 1000.0)
    # the first token is there at once, then one every half second
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])


def test_bucket_saves_up_no_more_than_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, burst=2, clock=clock)
    clock.now += 60  # a long idle spell
    waits = [bucket.take() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 1.0, 2.0])


def test_concurrent_takers_queue_for_distinct_slots() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        w = bucket.take()
        with lock:
            waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # nobody shares a slot: 20 takers at 10/s are spread over 1.9 s
    assert sorted(waits) == pytest.approx([i / 10 for i in range(20)])


def test_bucket_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        TokenBucket(0)


def _breaker(clock: FakeClock, **kw: object) -> CircuitBreaker:
    policy = BreakerPolicy(window=10, min_calls=4, threshold=0.5, cooldown=60, max_cooldown=200)
    return CircuitBreaker(policy, clock=clock, advice="try --cookies FILE", **kw)  # type: ignore[arg-type]


def test_breaker_ignores_ordinary_answers_and_a_few_refusals() -> None:
    breaker = _breaker(FakeClock())
    for outcome in [Outcome.OK] * 6 + [Outcome.THROTTLED] * 3:
        breaker.record(outcome)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.wait_time() == 0


def test_breaker_trips_on_a_spike_and_warns_of_every_pause_advice_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    caplog.set_level(logging.INFO, logger="kinetix.sources.ratelimit")
    for outcome in [Outcome.OK, Outcome.THROTTLED, Outcome.THROTTLED, Outcome.THROTTLED]:
        breaker.record(outcome)
    assert breaker.state is BreakerState.OPEN
    assert breaker.wait_time() == pytest.approx(60)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "3 of the last 4 requests were refused" in text
    assert "pausing every worker for 60s" in text and "try --cookies FILE" in text

    # after the cool-down one probe goes; it is refused again: a longer pause, warned again
    clock.now += 60
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.wait_time() == 0  # the probe
    assert breaker.wait_time() > 0  # everyone else waits for its answer
    breaker.record(Outcome.THROTTLED)
    assert breaker.state is BreakerState.OPEN
    assert breaker.wait_time() == pytest.approx(120)
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert len(caplog.records) == 2
    second = caplog.records[1].getMessage()
    assert "pausing every worker for 120s" in second and "(pause 2)" in second
    assert "try --cookies FILE" not in second  # the advice is said once
    assert breaker.trips == 2

    # the cool-down doubles up to its cap, and a successful probe closes the breaker
    clock.now += 120
    assert breaker.wait_time() == 0
    breaker.record(Outcome.THROTTLED)
    assert breaker.wait_time() == pytest.approx(200)
    clock.now += 200
    assert breaker.wait_time() == 0
    breaker.record(Outcome.OK)
    assert breaker.state is BreakerState.CLOSED
    for _ in range(3):
        breaker.record(Outcome.THROTTLED)  # a fresh window: three refusals alone do not trip it
    assert breaker.state is BreakerState.CLOSED


def test_gate_sleeps_through_an_open_breaker_then_takes_a_token() -> None:
    clock = FakeClock()
    gate = RequestGate(1.0, clock=clock, breaker=BreakerPolicy(window=4, min_calls=2, cooldown=30))
    gate.acquire()
    gate.record(Outcome.THROTTLED)
    gate.acquire()
    gate.record(Outcome.THROTTLED)
    before = clock.now
    gate.acquire()  # waits out the 30 s pause; the bucket has long refilled
    assert clock.now - before == pytest.approx(30)
    assert gate.breaker.state is BreakerState.HALF_OPEN


def test_retry_after_pauses_every_worker() -> None:
    clock = FakeClock()
    gate = RequestGate(100.0, clock=clock)
    gate.acquire()
    delay = gate.retry_delay(0, throttled=True, retry_after=7.0)
    assert delay == 7.0
    gate.wait(delay, everyone=True)
    assert clock.slept[-1] == 7.0
    gate.pause(5.0)  # a second worker told to wait less does not shorten the pause
    gate.pause(3.0)
    before = clock.now
    gate.acquire()
    assert clock.now - before == pytest.approx(5.0)


def test_reserve_never_blocks_and_says_how_long_to_wait() -> None:
    """The dispatcher of a cluster asks without sleeping: it must keep collecting results."""
    clock = FakeClock()
    gate = RequestGate(2.0, clock=clock, breaker=BreakerPolicy(window=4, min_calls=2, cooldown=30))
    assert gate.reserve() == 0.0  # a token: go
    assert gate.reserve() == pytest.approx(0.5)  # the next one in half a second; none taken
    assert gate.reserve() == pytest.approx(0.5)
    clock.now += 0.5
    assert gate.reserve() == 0.0
    gate.pause(7.0)  # a Retry-After: nobody goes, whatever the bucket holds
    clock.now += 5.0
    assert gate.reserve() == pytest.approx(2.0)
    clock.now += 2.0
    assert gate.reserve() == 0.0
    assert clock.slept == []  # never slept


def test_reserve_lets_one_probe_through_a_half_open_breaker() -> None:
    clock = FakeClock()
    gate = RequestGate(10.0, clock=clock, breaker=BreakerPolicy(window=4, min_calls=2, cooldown=30))
    for _ in range(2):
        assert gate.reserve() == 0.0
        clock.now += 0.1
        gate.record(Outcome.THROTTLED)
    assert gate.reserve() == pytest.approx(30.0)  # open: the whole cool-down
    clock.now += 30.0
    assert gate.reserve() == 0.0  # half open: this one is the probe
    clock.now += 0.1
    assert gate.reserve() > 0  # the others wait for its answer, asking again soon
    gate.record(Outcome.OK)
    assert gate.breaker.state is BreakerState.CLOSED
    assert gate.reserve() == 0.0


def test_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    policy = BackoffPolicy(base=2.0, throttled_base=15.0, cap=100.0)
    highest = lambda lo, hi: hi  # noqa: E731 - the top of the jitter range
    assert policy.delay(0, rand=highest) == 2.0
    assert policy.delay(3, rand=highest) == 16.0
    assert policy.delay(1, throttled=True, rand=highest) == 30.0
    assert policy.delay(10, throttled=True, rand=highest) == 100.0  # capped
    assert policy.delay(10, retry_after=7.0) == 7.0
    assert policy.delay(0, retry_after=86400.0) == 100.0  # a day-long Retry-After is capped
    assert all(0.0 <= policy.delay(4) <= 32.0 for _ in range(50))


def test_shared_gate_is_one_per_service_and_rate() -> None:
    a = shared_gate("test-service", 3.0)
    assert shared_gate("test-service", 3.0) is a
    assert shared_gate("test-service", 4.0) is not a
    assert a.rate == 3.0
