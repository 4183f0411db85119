"""The bucket arithmetic (GCRA) with an injected clock: bursts, refill, boundaries; the memory
counter, the response fields and the failed-authentication throttle."""

from __future__ import annotations

import pytest

from gateway.core.ratelimit import (
    AuthFailureGuard,
    AuthFailureSettings,
    LimitKey,
    MemoryCounter,
    OfflineCounter,
    RateLimit,
    gcra,
    limit_headers,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limit(
    quota: int = 10, period: float = 1.0, burst: int = 5, key: str = "client_id"
) -> RateLimit:
    """A limit of ``quota`` per ``period`` seconds, ``burst`` at once."""
    return RateLimit(quota=quota, period=period, burst=burst, key=LimitKey(key), scope="GET /x")


def take(counter: MemoryCounter, rule: RateLimit, n: int, bucket: str = "a") -> list[bool]:
    """Whether each of ``n`` requests at the current instant is allowed."""
    return [counter.take_now(bucket, rule).allowed for _ in range(n)]


def test_a_fresh_bucket_allows_exactly_the_burst_at_once() -> None:
    """At one instant, ``burst`` requests pass and the next is refused."""
    counter = MemoryCounter(clock=Clock())
    assert take(counter, limit(burst=5), 6) == [True] * 5 + [False]


def test_remaining_counts_down_to_zero() -> None:
    """Each allowed request reports how many more may follow right now."""
    counter = MemoryCounter(clock=Clock())
    rule = limit(burst=3)
    assert [counter.take_now("a", rule).remaining for _ in range(3)] == [2, 1, 0]


@pytest.mark.parametrize(
    ("wait", "allowed"),
    [
        (0.0999, False),  # just before one interval (1/10 s) has passed
        (0.1, True),  # exactly one interval: one token is back
        (0.1001, True),
    ],
)
def test_one_token_refills_after_exactly_one_interval(wait: float, allowed: bool) -> None:
    """After an emptied bucket, the next request passes from ``period / quota`` seconds on."""
    clock = Clock()
    counter = MemoryCounter(clock=clock)
    rule = limit(quota=10, burst=5)
    assert take(counter, rule, 5) == [True] * 5
    clock.now += wait
    assert counter.take_now("a", rule).allowed is allowed


def test_refused_requests_do_not_spend_tokens() -> None:
    """A client hammering a spent bucket gets its next token on time all the same."""
    clock = Clock()
    counter = MemoryCounter(clock=clock)
    rule = limit(quota=10, burst=2)
    assert take(counter, rule, 2 + 50) == [True] * 2 + [False] * 50
    clock.now += 0.1
    assert take(counter, rule, 2) == [True, False]


def test_the_bucket_refills_to_the_burst_and_no_further() -> None:
    """A long idle time gives back the burst, never more."""
    clock = Clock()
    counter = MemoryCounter(clock=clock)
    rule = limit(quota=10, burst=4)
    take(counter, rule, 4)
    clock.now += 3600
    assert take(counter, rule, 5) == [True] * 4 + [False]


def test_the_sustained_rate_is_the_quota_per_period() -> None:
    """Sent evenly at the limit's rate, every request passes; twice as fast, about half do."""
    clock = Clock()
    counter = MemoryCounter(clock=clock)
    rule = limit(quota=100, period=60.0, burst=1)  # one every 0.6 s
    allowed = []
    for _ in range(100):
        allowed.append(counter.take_now("even", rule).allowed)
        clock.now += 0.6
    assert all(allowed)
    fast = []
    for _ in range(100):
        fast.append(counter.take_now("fast", rule).allowed)
        clock.now += 0.3
    assert sum(fast) == 50


def test_buckets_are_separate() -> None:
    """One client's spent bucket does not touch another's."""
    counter = MemoryCounter(clock=Clock())
    rule = limit(burst=1)
    assert take(counter, rule, 2, "a") == [True, False]
    assert take(counter, rule, 1, "b") == [True]


def test_gcra_refusal_says_when_to_retry_and_when_the_bucket_is_full() -> None:
    """A refusal's retry_after is the wait for one token; reset the wait for a full bucket."""
    tat: float | None = None
    for _ in range(5):
        verdict, tat = gcra(tat, 0.0, 0.5, 5)
        assert verdict.allowed
    verdict, same = gcra(tat, 0.0, 0.5, 5)
    assert not verdict.allowed
    assert same == tat
    assert verdict.retry_after == pytest.approx(0.5)
    assert verdict.reset == pytest.approx(2.5)


def test_memory_counter_drops_full_buckets_when_it_grows_past_its_size() -> None:
    """Past ``max_entries``, buckets that have refilled are forgotten (they equal new ones)."""
    clock = Clock()
    counter = MemoryCounter(clock=clock, max_entries=10)
    rule = limit(quota=10, burst=5)
    for n in range(10):
        counter.take_now(f"old{n}", rule)
    clock.now += 10  # every old bucket is full again
    counter.take_now("new", rule)
    assert len(counter) == 1


def test_memory_counter_stays_bounded_under_many_busy_keys() -> None:
    """Keys that are all still counting cannot grow the table past its size."""
    counter = MemoryCounter(clock=Clock(), max_entries=100)
    rule = limit(quota=1, period=3600, burst=5)
    for n in range(1000):
        counter.take_now(f"k{n}", rule)
    assert len(counter) <= 100


async def test_offline_counter_never_consumes() -> None:
    """`gateway explain` and `gateway test` never spend quota: every answer is a full bucket."""
    counter = OfflineCounter()
    rule = limit(burst=2)
    verdicts = [await counter.take("a", rule) for _ in range(5)]
    assert all(v.allowed and v.remaining == 1 for v in verdicts)


@pytest.mark.parametrize(
    ("quota", "period", "burst", "policy"),
    [
        (10, 1.0, 20, '"client_id";q=20;w=2'),
        (100, 60.0, 10, '"client_id";q=10;w=6'),
        (1000, 1.0, 1, '"client_id";q=1;w=1'),  # never a zero window
    ],
)
def test_policy_field_states_the_burst_and_its_refill_time(
    quota: int, period: float, burst: int, policy: str
) -> None:
    """RateLimit-Policy: q is the burst (the most ``r`` can be), w the seconds it takes to
    refill, so q/w is the sustained rate."""
    rule = limit(quota=quota, period=period, burst=burst)
    verdict = MemoryCounter(clock=Clock()).take_now("a", rule)
    assert limit_headers(rule, verdict)["RateLimit-Policy"] == policy


def test_allowed_fields_carry_the_remaining_quota() -> None:
    """An allowed request gets r (remaining) and t (seconds to a full bucket), no Retry-After."""
    rule = limit(quota=10, burst=5)
    headers = limit_headers(rule, MemoryCounter(clock=Clock()).take_now("a", rule))
    assert headers == {
        "RateLimit-Policy": '"client_id";q=5;w=1',
        "RateLimit": '"client_id";r=4;t=1',
    }


def test_refused_fields_carry_retry_after_in_whole_seconds() -> None:
    """A refusal has r=0 and a Retry-After of at least one second, rounded up."""
    counter = MemoryCounter(clock=Clock())
    rule = limit(quota=1, period=30.0, burst=1)
    counter.take_now("a", rule)
    headers = limit_headers(rule, counter.take_now("a", rule))
    assert headers["RateLimit"] == '"client_id";r=0;t=30'
    assert headers["Retry-After"] == "30"


def test_a_named_limit_uses_its_name_as_the_policy() -> None:
    """``name`` replaces the key as the policy identifier."""
    rule = RateLimit(quota=5, period=1.0, burst=5, key=LimitKey.IP, name="orders-ip")
    assert rule.policy_header.startswith('"orders-ip";')


def test_bucket_prefix_changes_with_the_numbers_not_with_the_name() -> None:
    """Counters survive a reload that keeps the numbers; new numbers mean new buckets."""
    base = limit()
    renamed = RateLimit(
        quota=10, period=1.0, burst=5, key=LimitKey.CLIENT_ID, name="x", scope="GET /x"
    )
    assert renamed.prefix == base.prefix
    assert limit(burst=6).prefix != base.prefix
    assert limit(key="subject").prefix != base.prefix


@pytest.mark.parametrize("bad", [{"quota": 0}, {"period": 0.0}, {"burst": 0}])
def test_a_limit_with_a_zero_number_is_refused(bad: dict[str, float]) -> None:
    """Zero quota, period or burst is a programming error, caught at construction."""
    values = {"quota": 1, "period": 1.0, "burst": 1, **bad}
    with pytest.raises(ValueError, match="positive"):
        RateLimit(quota=int(values["quota"]), period=values["period"], burst=int(values["burst"]),
                  key=LimitKey.IP)  # fmt: skip


def test_throttle_blocks_after_exactly_max_failures() -> None:
    """The max-th refused token blocks the address; earlier ones do not."""
    guard = AuthFailureGuard(AuthFailureSettings(max_failures=3), clock=Clock())
    assert [guard.failed("10.0.0.1") for _ in range(3)] == [False, False, True]
    assert guard.blocked_for("10.0.0.1") == pytest.approx(60.0)
    assert guard.blocked_for("10.0.0.2") == 0.0


def test_throttle_cooldown_ends() -> None:
    """After the cool-down the address is let through again."""
    clock = Clock()
    guard = AuthFailureGuard(AuthFailureSettings(max_failures=1, cooldown=5.0), clock=clock)
    guard.failed("a")
    clock.now += 4.9
    assert guard.blocked_for("a") == pytest.approx(0.1)
    clock.now += 0.1
    assert guard.blocked_for("a") == 0.0


def test_throttle_forgets_failures_spread_over_more_than_the_window() -> None:
    """Failures slower than max per window never block."""
    clock = Clock()
    guard = AuthFailureGuard(AuthFailureSettings(max_failures=3, window=60.0), clock=clock)
    for _ in range(30):
        assert not guard.failed("a")
        clock.now += 20.0


def test_throttle_settings_change_in_place() -> None:
    """A reload's new numbers apply to the next failure."""
    guard = AuthFailureGuard(AuthFailureSettings(max_failures=100), clock=Clock())
    guard.failed("a")
    guard.settings = AuthFailureSettings(max_failures=1)
    assert guard.failed("a")
