"""Macro-chunk assembly: windows, span assignment and accumulation reproduce span means exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from models.late_chunking import SpanAccumulator, Window, assign_spans, plan_windows


def random_spans(rng: np.random.Generator, n_tokens: int, n_chunks: int) -> list[tuple[int, int]]:
    cuts = sorted(rng.choice(np.arange(1, n_tokens), size=n_chunks - 1, replace=False).tolist())
    bounds = [0, *cuts, n_tokens]
    return list(itertools.pairwise(bounds))


def test_a_document_that_fits_is_one_window() -> None:
    assert plan_windows(256, 256, 64) == [Window(0, 256, 0)]
    assert plan_windows(10, 256, 0) == [Window(0, 10, 0)]


@pytest.mark.parametrize(("n_tokens", "length", "overlap"), [(200, 256, 64), (1000, 256, 64), (1001, 128, 0),
                                                             (5000, 512, 511), (257, 256, 255)])  # fmt: skip
def test_windows_reproduce_the_single_pass_means(n_tokens: int, length: int, overlap: int) -> None:
    """With token vectors that do not depend on context, every window sees the same vectors as
    a single pass, so the assembled chunk means must equal the plain span means."""
    rng = np.random.default_rng(n_tokens)
    tokens = rng.standard_normal((n_tokens, 8))
    spans = random_spans(rng, n_tokens, min(40, n_tokens // 3))
    windows = plan_windows(n_tokens, length, overlap)
    assert windows[0].start == 0 and windows[-1].end == n_tokens
    assert all(w.processed <= length for w in windows)
    # Every token is contributed by exactly one window.
    kept = np.concatenate([np.arange(w.keep_from, w.end) for w in windows])
    np.testing.assert_array_equal(kept, np.arange(n_tokens))
    accumulator = SpanAccumulator(spans, hidden=8)
    for plan in assign_spans(windows, spans):
        local = tokens[plan.window.start : plan.window.end]
        accumulator.add(plan, np.stack([local[a:b].sum(0) for a, b in plan.local]) if plan.local else np.zeros((0, 8)))
    expected = np.stack([tokens[a:b].mean(0) for a, b in spans])
    np.testing.assert_allclose(accumulator.means(), expected.astype(np.float32), rtol=1e-5, atol=1e-6)


def test_overlap_must_leave_a_stride() -> None:
    with pytest.raises(ValueError):
        plan_windows(1000, 256, 256)
