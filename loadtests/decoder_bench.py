"""Decoder throughput and early exit: SmolLM2-135M (real GGUF weights, 30 layers) through the
torch engine at full depth and stopped at a middle layer, in one run.

    python loadtests/decoder_bench.py --dtype bfloat16 --layer 15

Inputs are STS-B sentences in batches of 32 (sorted by length, as a loaded server forms
them). Reports inputs/s and tokens/s per configuration, alternating configurations per round
so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from loadgen import native_dtype, stsb_sentences

from models.card import with_overrides
from models.catalog import find_card
from models.engines.base import EngineInput
from models.loader import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default=native_dtype(), choices=["bfloat16", "float32"])
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--sentences", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    card = find_card("smollm2-135m")
    configs = {"full depth (30 layers)": card, f"exit at layer {args.layer}": with_overrides(card, layer=args.layer)}
    engines = {}
    for name, config in configs.items():
        model = load_model(config, device=torch.device("cpu"), dtype_override=args.dtype)
        engines[name] = (model, model.create_engines([torch.device("cpu")])[0])
    tokenizer = next(iter(engines.values()))[0].tokenizer
    tokenized = sorted(tokenizer.encode_texts(stsb_sentences()[: args.sentences]), key=len)
    batches = [[EngineInput(t.ids) for t in tokenized[i : i + 32]] for i in range(0, len(tokenized), 32)]
    tokens = sum(len(t) for t in tokenized)
    timings: dict[str, list[float]] = {name: [] for name in engines}
    for _, engine in engines.values():
        engine.run(engine.prepare(batches[0]))
    for _ in range(args.rounds):
        for name, (_, engine) in engines.items():
            started = time.perf_counter()
            for batch in batches:
                engine.run(engine.prepare(batch))
            timings[name].append(time.perf_counter() - started)
    print(f"SmolLM2-135M GGUF, {args.dtype}, {len(tokenized)} sentences ({tokens} tokens), batches of 32, "
          f"{os.cpu_count()} cores, best of {args.rounds} alternating rounds")  # fmt: skip
    print("| configuration | inputs/s | tokens/s | vs full depth |")
    print("|---|---|---|---|")
    full = min(next(iter(timings.values())))
    for name, runs in timings.items():
        best = min(runs)
        print(f"| {name} | {len(tokenized) / best:.0f} | {tokens / best:.0f} | {full / best:.2f}x |")
    print("median seconds per pass:", {name: round(statistics.median(runs), 2) for name, runs in timings.items()})


if __name__ == "__main__":
    main()
