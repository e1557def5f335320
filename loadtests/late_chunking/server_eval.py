"""Late vs naive chunking through the server: the retrieval evaluation of this folder
(24 Wikipedia documents, 120 queries, relevance = chunk overlaps an evidence span), with every
vector coming from POST /v1/documents/embeddings (late_chunking true / false) and queries from
POST /v1/embeddings.

    python loadtests/late_chunking/server_eval.py --dtype float32

Metrics and the paired bootstrap come from reference_eval.py, so the numbers compare with
the reference implementation's.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from reference_eval import evaluate, load_jsonl, paired_bootstrap_ci, summarize  # noqa: E402
from serving_bench import start_server  # noqa: E402

CHUNKERS = {
    "tok64": {"kind": "tokens", "max_tokens": 64},
    "tok128": {"kind": "tokens", "max_tokens": 128},
    "sent64": {"kind": "sentences", "max_tokens": 64},
}
MODELS = ["all-MiniLM-L6-v2", "all-mpnet-base-v2"]


def embed_documents(client: httpx.Client, model: str, documents: list[dict], chunking: dict, late: bool):
    vectors, meta = [], []
    for document in documents:
        body = client.post(
            "/v1/documents/embeddings",
            json={
                "model": model,
                "input": document["text"],
                "chunking": chunking,
                "late_chunking": late,
                "encoding_format": "base64",
            },
        ).json()
        for chunk in body["data"][0]["chunks"]:
            vectors.append(np.frombuffer(base64.b64decode(chunk["embedding"]), dtype="<f4"))
            meta.append((document["id"], chunk["start"], chunk["end"]))
            assert document["text"][chunk["start"] : chunk["end"]] == chunk["text"]
    return np.stack(vectors), meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--port", type=int, default=8351)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    documents = load_jsonl(HERE / "documents.jsonl")
    queries = load_jsonl(HERE / "queries.jsonl")
    context = {q["id"] for q in queries if q["context_needed"]}
    server = start_server(args.port, args.dtype, [arg for model in MODELS for arg in ("--model", model)])
    rows = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=600) as client:
            for model in MODELS:
                response = client.post("/v1/embeddings", json={"model": model, "input": [q["query"] for q in queries]})
                query_vectors = np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)
                for name, chunking in CHUNKERS.items():
                    results = {}
                    for late in (False, True):
                        chunk_vectors, meta = embed_documents(client, model, documents, chunking, late)
                        results[late] = evaluate(query_vectors, chunk_vectors, meta, queries)
                    row = {"model": model, "chunker": name, "chunks": len(meta)}
                    for subset_name, subset in (("all", None), ("context_needed", context)):
                        naive, late = summarize(results[False], subset), summarize(results[True], subset)
                        ids = subset or {q["id"] for q in queries}
                        late_scores = [r["ndcg"] for r in results[True] if r["id"] in ids]
                        naive_scores = [r["ndcg"] for r in results[False] if r["id"] in ids]
                        diff = paired_bootstrap_ci(late_scores, naive_scores)
                        row[subset_name] = {"naive": naive, "late": late, "ndcg_diff": diff}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"\n{len(documents)} documents, {len(queries)} queries ({len(context)} need document context); {args.dtype}")
    print("| model | chunker | chunks | queries | nDCG@10 naive | nDCG@10 late | late − naive [95% CI] | "
          "recall@10 naive | recall@10 late |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        for subset in ("all", "context_needed"):
            part = row[subset]
            ci = part["ndcg_diff"]
            print(f"| {row['model']} | {row['chunker']} | {row['chunks']} | {subset} ({part['naive']['n']}) | "
                  f"{part['naive']['ndcg@10']:.3f} | {part['late']['ndcg@10']:.3f} | {ci['mean_diff']:+.3f} "
                  f"[{ci['ci95'][0]:+.3f}, {ci['ci95'][1]:+.3f}] | {part['naive']['recall@10']:.3f} | "
                  f"{part['late']['recall@10']:.3f} |")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
