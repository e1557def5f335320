"""Which dtype to serve on this CPU: float32 vs bfloat16 through our torch engine, in one run.

    python loadtests/dtype_bench.py --model all-MiniLM-L6-v2

For each dtype: throughput on STS-B test sentences (batches of 64 sorted by length, best of
alternating rounds), and STS-B test Spearman; across dtypes: the cosine between the two
vectors of every sentence (mean, min). The engine is the one the server runs, without packing,
so the numbers isolate the dtype.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import torch
from loadgen import stsb_pairs
from scipy.stats import spearmanr

from models.catalog import find_card
from models.engines.base import EngineInput
from models.loader import load_model

DTYPES = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    pairs = stsb_pairs()
    texts = [p[0] for p in pairs] + [p[1] for p in pairs]
    gold = np.array([p[2] for p in pairs])
    card = find_card(args.model)
    cpu = torch.device("cpu")
    engines = {}
    for dtype in DTYPES:
        model = load_model(card, device=cpu, dtype_override=dtype)
        engines[dtype] = model.create_engines([cpu], packing=False)[0]
    tokenized = model.tokenizer.encode_texts(texts)
    order = sorted(range(len(texts)), key=lambda i: len(tokenized[i]))
    batches = [order[i : i + 64] for i in range(0, len(order), 64)]
    tokens = sum(len(t) for t in tokenized)

    vectors: dict[str, np.ndarray] = {}
    seconds: dict[str, list[float]] = {dtype: [] for dtype in DTYPES}
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for dtype, engine in engines.items():
            out = np.zeros((len(texts), engine.hidden_size), dtype=np.float32)
            started = time.perf_counter()
            for batch in batches:
                result = engine.run(engine.prepare([EngineInput(tokenized[i].ids) for i in batch]))
                out[batch] = result.pooled
            if round_index:
                seconds[dtype].append(time.perf_counter() - started)
            vectors[dtype] = out

    def normalised(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    cosines = (normalised(vectors["float32"]) * normalised(vectors["bfloat16"])).sum(axis=1)
    n = len(pairs)
    print(f"{args.model}, {len(texts)} STS-B test sentences ({tokens} tokens), batches of 64, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, best of {args.rounds} alternating rounds")  # fmt: skip
    print("| dtype | inputs/s | vs float32 | STS-B Spearman |")
    print("|---|---|---|---|")
    base = min(seconds["float32"])
    for dtype in DTYPES:
        v = normalised(vectors[dtype])
        rho = spearmanr((v[:n] * v[n:]).sum(axis=1), gold).statistic
        best = min(seconds[dtype])
        print(f"| {dtype} | {len(texts) / best:.0f} | {base / best:.2f}x | {rho:.4f} |")
    print(f"cosine(float32, bfloat16) per sentence: mean {cosines.mean():.6f}, min {cosines.min():.6f}")


if __name__ == "__main__":
    main()
