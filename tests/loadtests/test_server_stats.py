import pytest

from loadtests.sizing.server_stats import (
    gauge_lines,
    header_stage_times,
    metrics_stage_times,
    parse_metrics,
    server_stats,
    timing_from_head,
)


def page(scale: float, queue_tokens: float = 0.0, depth: float = 0.0) -> str:
    """A /metrics page as the server writes it, with a second model whose numbers must be ignored."""
    lines = []
    for name, total, count in (
        ("embed_tokenization_duration_seconds", 0.002, 10),
        ("embed_queue_duration_seconds", 0.5, 40),
        ("embed_inference_duration_seconds", 0.3, 10),
        ("embed_batch_size", 40, 10),
    ):
        lines += [f"# HELP {name} x", f"# TYPE {name} histogram"]
        for model, factor in (("mini", scale), ("other", 100.0)):
            lines += [
                f'{name}_bucket{{le="+Inf",model="{model}"}} {count * factor}',
                f'{name}_count{{model="{model}"}} {count * factor}',
                f'{name}_sum{{model="{model}"}} {total * factor}',
                f'{name}_created{{model="{model}"}} 1.7e9',
            ]
    lines += [
        "# HELP embed_request_duration_seconds x",
        "# TYPE embed_request_duration_seconds histogram",
        f'embed_request_duration_seconds_count{{endpoint="embeddings",model="mini"}} {8 * scale}',
        f'embed_request_duration_seconds_sum{{endpoint="embeddings",model="mini"}} {0.4 * scale}',
        f'embed_request_duration_seconds_count{{endpoint="documents",model="mini"}} {2 * scale}',
        f'embed_request_duration_seconds_sum{{endpoint="documents",model="mini"}} {0.1 * scale}',
        "# HELP embed_tokens_total x",
        "# TYPE embed_tokens_total counter",
        f'embed_tokens_total{{model="mini"}} {1000 * scale}',
        'embed_tokens_total{model="other"} 5',
        "# HELP embed_queue_tokens x",
        "# TYPE embed_queue_tokens gauge",
        f'embed_queue_tokens{{model="mini"}} {queue_tokens}',
        'embed_queue_tokens{model="other"} 999',
        "# HELP embed_queue_depth x",
        "# TYPE embed_queue_depth gauge",
        f'embed_queue_depth{{model="mini"}} {depth}',
        "# HELP embed_queue_capacity_tokens x",
        "# TYPE embed_queue_capacity_tokens gauge",
        'embed_queue_capacity_tokens{model="mini"} 1048576',
        "# HELP process_cpu_seconds_total x",
        "# TYPE process_cpu_seconds_total counter",
        "process_cpu_seconds_total 12.5",
    ]
    return "\n".join(lines) + "\n"


def test_parse_keeps_one_model() -> None:
    snapshot = parse_metrics(page(1.0, queue_tokens=64, depth=3), "mini")
    assert snapshot.histograms["queue"] == pytest.approx((0.5, 40))
    assert snapshot.histograms["request"] == pytest.approx((0.5, 10))  # both endpoints
    assert snapshot.tokens == 1000
    assert (snapshot.queue_tokens, snapshot.queue_depth, snapshot.queue_capacity) == (64, 3, 1048576)
    assert parse_metrics(page(1.0), None).tokens == 1005  # every model


def test_stage_times_from_metric_differences() -> None:
    before, after = parse_metrics(page(1.0), "mini"), parse_metrics(page(3.0, queue_tokens=10), "mini")
    stages = metrics_stage_times(before, after)
    assert stages.source == "metrics"
    assert stages.tokenize_ms == pytest.approx(0.2)  # 0.004 s over 20 requests
    assert stages.queue_ms == pytest.approx(12.5)  # 1.0 s over 80 inputs
    assert stages.inference_ms == pytest.approx(30.0)
    assert stages.request_ms == pytest.approx(50.0)
    during = [parse_metrics(page(2.0, queue_tokens=t, depth=d), "mini") for t, d in ((300, 5), (100, 1))]
    stats = server_stats(before, after, during)
    assert stats.batches == 20 and stats.mean_batch_size == pytest.approx(4.0)
    assert stats.tokens == 2000
    assert stats.queue_tokens_max == 300 and stats.queue_depth_max == 5
    assert stats.queue_tokens_mean == pytest.approx(200)  # while the load ran: not the idle ends
    assert stats.gauge_samples == 2
    assert server_stats(before, after, []).queue_tokens_mean == pytest.approx(5)  # no sample: the ends


def test_no_requests_means_no_stage_time() -> None:
    same = parse_metrics(page(1.0), "mini")
    assert metrics_stage_times(same, same).queue_ms is None
    assert server_stats(same, same, []).mean_batch_size is None


def test_gauge_lines_parse_to_the_same_gauges() -> None:
    text = page(1.0, queue_tokens=42, depth=2)
    small = gauge_lines(text)
    assert "embed_queue_duration" not in small and "embed_batch_size" not in small
    fast, full = parse_metrics(small, "mini"), parse_metrics(text, "mini")
    assert (fast.queue_tokens, fast.queue_depth) == (full.queue_tokens, full.queue_depth) == (42, 2)


def test_timing_headers() -> None:
    tei = b"HTTP/1.1 200 OK\r\nx-tokenization-time: 0.5\r\nX-Queue-Time: 3\r\nx-inference-time: 12.25\r\n\r\n"
    assert timing_from_head(tei) == {"tokenize": 0.5, "queue": 3.0, "inference": 12.25}
    server_timing = (
        b'HTTP/1.1 200 OK\r\nServer-Timing: tokenize;dur=0.4, queue;desc="wait";dur=2.5, inference;dur=9\r\n\r\n'
    )
    assert timing_from_head(server_timing) == {"tokenize": 0.4, "queue": 2.5, "inference": 9.0}
    assert timing_from_head(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n") == {}


def test_header_stage_times_need_most_replies_to_carry_them() -> None:
    with_timing = b"HTTP/1.1 200 OK\r\nx-queue-time: 4\r\nx-inference-time: 10\r\n\r\n"
    without = b"HTTP/1.1 200 OK\r\n\r\n"
    stages = header_stage_times([with_timing, with_timing, without])
    assert stages is not None and stages.source == "headers"
    assert (stages.tokenize_ms, stages.queue_ms, stages.inference_ms) == (None, 4.0, 10.0)
    assert header_stage_times([with_timing, without, without]) is None
    assert header_stage_times([]) is None
