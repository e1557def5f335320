import itertools
import random
import statistics

from loadtests.loadgen import TIMED_OUT, Endpoint, Request, run_closed_loop
from loadtests.sizing.openloop import poisson_offsets, run_open_loop
from tests.loadtests.fake_http import FakeServer, serving


def test_poisson_schedule_has_the_asked_rate() -> None:
    offsets = poisson_offsets(200.0, 50.0, random.Random(7))
    assert abs(len(offsets) / 50.0 - 200.0) < 200.0 * 0.03  # ~10,000 arrivals: sd 1%
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert all(gap > 0 for gap in gaps)
    assert offsets[0] > 0 and offsets[-1] < 50.0
    # Exponential gaps: the standard deviation equals the mean.
    assert abs(statistics.stdev(gaps) / statistics.fmean(gaps) - 1.0) < 0.05


def test_poisson_schedule_is_seeded() -> None:
    assert poisson_offsets(10.0, 5.0, random.Random(1)) == poisson_offsets(10.0, 5.0, random.Random(1))
    assert poisson_offsets(10.0, 5.0, random.Random(1)) != poisson_offsets(10.0, 5.0, random.Random(2))


def _requests(endpoint: Endpoint, count: int) -> list[Request]:
    return [Request(endpoint.post({"input": f"text {i}"})) for i in range(count)]


async def test_open_loop_keeps_its_schedule_against_a_slow_server() -> None:
    """A server slower than the arrivals gets more connections, not fewer requests."""
    async with serving(FakeServer(delay=0.2)) as fake:
        endpoint = Endpoint("127.0.0.1", fake.port)
        offsets = [i * 0.02 for i in range(20)]  # 50 req/s for 0.4 s
        run = await run_open_loop(endpoint, _requests(endpoint, 20), offsets, duration=0.4, timeout=5)
    assert len(run.samples) == 20 and all(s.status == 200 for s in run.samples)
    assert fake.requests == 20
    assert run.peak_connections >= 8  # about delay x rate requests in flight
    assert run.waited_for_connection == 0
    assert statistics.median(run.send_lag) < 0.01  # bounds loose enough for a busy 2-core machine
    assert all(0.19 < s.latency < 0.6 for s in run.samples)


async def test_open_loop_counts_waiting_for_a_connection_as_latency() -> None:
    """No coordinated omission: with the pool capped, latency runs from the scheduled time."""
    async with serving(FakeServer(delay=0.1)) as fake:
        endpoint = Endpoint("127.0.0.1", fake.port)
        offsets = [i * 0.01 for i in range(10)]
        run = await run_open_loop(endpoint, _requests(endpoint, 10), offsets, duration=0.1, max_connections=1)
    assert run.peak_connections == 1 and run.waited_for_connection >= 8
    latencies = sorted(s.latency for s in run.samples)
    # The tenth request was due at 0.09 s and waited for nine replies of 0.1 s each.
    assert latencies[-1] > 0.85
    assert fake.connections == 1


async def test_open_loop_times_out_and_carries_on() -> None:
    async with serving(FakeServer(delay=1.0)) as fake:
        endpoint = Endpoint("127.0.0.1", fake.port)
        run = await run_open_loop(endpoint, _requests(endpoint, 3), [0.0, 0.01, 0.02], duration=0.05, timeout=0.2)
    assert [s.status for s in run.samples] == [TIMED_OUT] * 3
    assert all(0.19 < s.latency < 0.6 for s in run.samples)


async def test_replies_in_chunks_and_with_timing_headers() -> None:
    headers = {"x-queue-time": "1.5", "Connection": "close"}
    async with serving(FakeServer(chunked=True, headers=headers)) as fake:
        endpoint = Endpoint("127.0.0.1", fake.port)
        run = await run_open_loop(endpoint, _requests(endpoint, 5), [0.0, 0.05, 0.1, 0.15, 0.2], duration=0.25)
    assert all(s.status == 200 and b"x-queue-time: 1.5" in s.head for s in run.samples)
    assert fake.connections == 5  # `Connection: close` is honoured


async def test_closed_loop_counts_429_and_reconnects_after_close() -> None:
    async with serving(FakeServer(status=429, headers={"Connection": "close"})) as fake:
        endpoint = Endpoint("127.0.0.1", fake.port)
        run = await run_closed_loop(endpoint, _requests(endpoint, 4), clients=2, duration=0.3, warmup=0.0)
    assert len(run.samples) > 10
    assert {s.status for s in run.samples} == {429}
