from loadtests.sizing.knee import Bounds, find_knee, violations
from loadtests.sizing.steps import Generator, Latency, Step


def step(rate: float, p99_ms: float, *, failed: int = 0, ratio: float = 1.0, query_p99_ms: float | None = None) -> Step:
    latency = Latency(100, p99_ms / 2, p99_ms * 0.8, p99_ms, p99_ms * 1.2, p99_ms / 2)
    by_kind = {"query": Latency(80, 1, 1, query_p99_ms, 1, 1)} if query_p99_ms is not None else {}
    return Step(
        mode="open", duration=10, rate=rate, clients=None, sent=100, ok=100 - failed, rejected=failed, errors=0,
        timeouts=0, offered_rps=rate, achieved_rps=rate * ratio, inputs_per_s=rate, latency=latency,
        by_kind=by_kind, status_counts={200: 100 - failed, 429: failed}, generator=Generator(0.1, 4, 0, 0.1),
    )  # fmt: skip


BOUNDS = Bounds(slo_p99_ms=500, max_failure_rate=0.01, min_throughput_ratio=0.9)


def test_knee_is_the_last_step_within_bounds() -> None:
    steps = [step(40, 300), step(10, 50), step(20, 80), step(80, 900)]
    knee = find_knee(steps, BOUNDS)
    assert knee.step is not None and knee.step.rate == 40
    assert knee.broken is not None and knee.broken.rate == 80
    assert knee.reached
    assert knee.reasons == ("p99 900 ms > 500 ms",)


def test_a_step_passing_again_above_a_break_is_noise() -> None:
    knee = find_knee([step(10, 50), step(20, 600), step(40, 100)], BOUNDS)
    assert knee.step is not None and knee.step.rate == 10
    assert knee.broken is not None and knee.broken.rate == 20


def test_every_bound_breaks_the_step() -> None:
    assert violations(step(10, 50, failed=1), BOUNDS) == []  # exactly 1%
    assert "2 rejected with 429" in violations(step(10, 50, failed=2), BOUNDS)[0]
    assert violations(step(10, 50, ratio=0.89), BOUNDS)[0].startswith("achieved 8.9 req/s = 89%")
    assert len(violations(step(10, 900, failed=5, ratio=0.5), BOUNDS)) == 3


def test_no_step_within_bounds() -> None:
    knee = find_knee([step(10, 900), step(20, 1000)], BOUNDS)
    assert knee.step is None
    assert knee.broken is not None and knee.broken.rate == 10


def test_knee_not_reached_when_nothing_breaks() -> None:
    knee = find_knee([step(10, 50), step(20, 60)], BOUNDS)
    assert knee.step is not None and knee.step.rate == 20
    assert not knee.reached and knee.reasons == ()


def test_the_bound_can_hold_only_queries() -> None:
    steps = [step(10, 900, query_p99_ms=100), step(20, 2000, query_p99_ms=700)]
    assert find_knee(steps, BOUNDS).step is None
    knee = find_knee(steps, Bounds(slo_p99_ms=500, slo_kind="query"))
    assert knee.step is not None and knee.step.rate == 10
    assert knee.reasons == ("query p99 700 ms > 500 ms",)


def test_a_step_without_requests_is_no_measurement() -> None:
    empty = step(0.1, 50)
    empty.sent = empty.ok = 0
    assert violations(empty, BOUNDS) == ["no request sent (rate x duration below one)"]
