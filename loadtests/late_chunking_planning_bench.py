"""Late-chunking planning at document scale, without a model: the direct formulation (every
window against every chunk span, a per-token scan for token spans, `np.add.at` accumulation)
against the library's linear one.

    python loadtests/late_chunking_planning_bench.py [--sizes 16384:1024,262144:16384] [--overlap 64]

Synthetic documents of 5-letter words, one token each, cut into equal chunks; 256-token
windows (MiniLM). Reports CPU seconds of the calling thread (best of --repeat), so other
processes on the machine do not inflate them, and checks that both give identical results.
Steps: `token spans` (/v1/embeddings: chunk character spans to token spans), `windows`
(/v1/documents/embeddings: fold_specials, plan_windows, assign_spans), `accumulate` (adding
every window's span sums, then the means).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.late_chunking import (
    SpanAccumulator,
    WindowSpans,
    assign_spans,
    fold_specials,
    plan_windows,
    token_spans,
)
from models.tokenization import TokenizedDocument
from tests.models.test_late_chunking import reference_assign_spans, reference_token_spans

WINDOW = 256
HIDDEN = 384


def cpu_seconds(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.thread_time()
        result = function()
        best = min(best, time.thread_time() - started)
    return best, result


Spans = list[tuple[int, int]]


def synthetic(n_tokens: int, n_chunks: int) -> tuple[TokenizedDocument, str, Spans, Spans]:
    """A document with one leading and one trailing special token, its text, and its chunks as
    content-token spans and as character spans."""
    content = n_tokens - 2
    text = " ".join(["abcde"] * content)
    offsets = [(0, 0)] + [(6 * i, 6 * i + 5) for i in range(content)] + [(len(text), len(text))]
    document = TokenizedDocument(ids=[100] * n_tokens, offsets=offsets, prefix_tokens=1, suffix_tokens=1)
    per_chunk = -(-content // n_chunks)
    content_spans = [(start, min(start + per_chunk, content)) for start in range(0, content, per_chunk)]
    char_spans = [(6 * start, 6 * end) for start, end in content_spans]
    return document, text, content_spans, char_spans


def plan(assign: Callable[..., list[WindowSpans]], document: TokenizedDocument, spans: Spans, overlap: int) -> list:
    return assign(plan_windows(len(document.ids), WINDOW, overlap), fold_specials(spans, document))


def reference_accumulate(spans: Spans, parts: list[WindowSpans], sums: list[np.ndarray]) -> np.ndarray:
    totals = np.zeros((len(spans), HIDDEN))
    for part, part_sums in zip(parts, sums, strict=True):
        np.add.at(totals, list(part.chunks), part_sums)
    counts = np.array([end - start for start, end in spans], dtype=np.float64)
    return (totals / counts[:, None]).astype(np.float32)


def accumulate(spans: Spans, parts: list[WindowSpans], sums: list[np.ndarray]) -> np.ndarray:
    accumulator = SpanAccumulator(spans, HIDDEN)
    for part, part_sums in zip(parts, sums, strict=True):
        accumulator.add(part, part_sums)
    return accumulator.means()


def measure(n_tokens: int, n_chunks: int, overlap: int, repeat: int) -> list[tuple[Any, ...]]:
    document, text, content_spans, char_spans = synthetic(n_tokens, n_chunks)
    windows = plan_windows(n_tokens, WINDOW, overlap)
    spans = fold_specials(content_spans, document)
    parts = assign_spans(windows, spans)
    rng = np.random.default_rng(0)
    sums = [rng.standard_normal((len(part.local), HIDDEN)).astype(np.float32) for part in parts]
    steps = [
        ("token spans", partial(reference_token_spans, document, text, char_spans),
         partial(token_spans, document, text, char_spans)),
        ("windows", partial(plan, reference_assign_spans, document, content_spans, overlap),
         partial(plan, assign_spans, document, content_spans, overlap)),
        ("accumulate", partial(reference_accumulate, spans, parts, sums), partial(accumulate, spans, parts, sums)),
    ]  # fmt: skip
    rows = []
    for name, old, new in steps:
        old_s, old_result = cpu_seconds(old, 1 if n_tokens > 100_000 else repeat)  # the direct one takes seconds
        new_s, new_result = cpu_seconds(new, repeat)
        same = np.array_equal(old_result, new_result) if name == "accumulate" else old_result == new_result
        assert same, f"{name} differs at {n_tokens} tokens"
        rows.append((n_tokens, len(spans), len(windows), name, old_s, new_s))
        print(f"{n_tokens} tokens, {len(spans)} chunks, {name}: {old_s:.3f} s -> {new_s:.4f} s", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="16384:1024,65536:4096,131072:8192,262144:16384", help="tokens:chunks,...")
    parser.add_argument("--overlap", type=int, default=64, help="window overlap in tokens (%(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept (%(default)s)")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        n_tokens, n_chunks = (int(part) for part in size.split(":"))
        rows += measure(n_tokens, n_chunks, args.overlap, args.repeat)
    print(
        f"\nwindows of {WINDOW} tokens, overlap {args.overlap}; CPU seconds of one thread, best of {args.repeat} "
        "(the direct formulation: one run above 100,000 tokens)\n"
    )
    print("| tokens | chunks | windows | step | direct (s) | linear (s) | speed-up |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for n_tokens, n_chunks, n_windows, name, old_s, new_s in rows:
        counts = f"{n_tokens:,} | {n_chunks:,} | {n_windows:,}"
        print(f"| {counts} | {name} | {old_s:.3f} | {new_s:.4f} | {old_s / new_s:.0f}x |")


if __name__ == "__main__":
    main()
