"""What the sizing tool sends: search-like queries, ingestion batches of passages, or both mixed.

Texts are STS-B sentences (passages are consecutive sentences joined). Every pass over the
corpus is a new seeded shuffle, so the same input is not in flight twice (the server computes
identical in-flight inputs once), and `"cache": false` keeps the result cache out of the
measurement unless `cache` is asked for.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from loadtests.loadgen import Endpoint, Request, stsb_sentences

QUERY, INGESTION = 0, 1
KIND_NAMES = ("query", "ingestion")
SCENARIOS = ("queries", "ingestion", "mixed")


@dataclass(frozen=True)
class Scenario:
    name: str
    query_share: float  # fraction of requests that are single queries; the rest are ingestion batches
    passages_per_request: int = 32
    passage_chars: int = 600  # a passage is sentences joined until it is at least this long

    @classmethod
    def named(cls, name: str, *, query_share: float = 0.8, passages: int = 32, passage_chars: int = 600) -> Scenario:
        shares = {"queries": 1.0, "ingestion": 0.0, "mixed": query_share}
        if name not in shares:
            raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
        if not 0.0 <= query_share <= 1.0:
            raise ValueError(f"query share must be within 0..1, got {query_share}")
        return cls(name, shares[name], passages, passage_chars)

    def describe(self) -> str:
        ingestion = f"{self.passages_per_request} passages of >= {self.passage_chars} characters per request"
        if self.query_share == 1.0:
            return "one STS-B sentence per request (search queries)"
        if self.query_share == 0.0:
            return ingestion + " (ingestion)"
        return f"{self.query_share:.0%} of requests one sentence, the others {ingestion}"


def shuffled_forever(items: Sequence[str], rng: random.Random) -> Iterator[str]:
    order = list(items)
    while True:
        rng.shuffle(order)
        yield from order


class RequestStream:
    """An endless, seeded sequence of pre-built requests for one scenario."""

    def __init__(
        self,
        scenario: Scenario,
        endpoint: Endpoint,
        *,
        model: str | None,
        seed: int = 0,
        cache: bool = False,
        encoding_format: str = "base64",
        sentences: Sequence[str] | None = None,
    ) -> None:
        self.scenario = scenario
        self._endpoint = endpoint
        self._rng = random.Random(seed)
        unique = list(dict.fromkeys(sentences if sentences is not None else stsb_sentences()))
        self._queries = shuffled_forever(unique, random.Random(seed + 1))
        self._passage_sentences = shuffled_forever(unique, random.Random(seed + 2))
        self._fields: dict[str, object] = {"encoding_format": encoding_format}
        if model:
            self._fields["model"] = model
        if not cache:
            self._fields["cache"] = False

    def take(self, count: int) -> list[Request]:
        return [self._next() for _ in range(count)]

    def _next(self) -> Request:
        if self._rng.random() < self.scenario.query_share:
            return Request(self._endpoint.post({"input": next(self._queries), **self._fields}), 1, QUERY)
        passages = [self._passage() for _ in range(self.scenario.passages_per_request)]
        return Request(self._endpoint.post({"input": passages, **self._fields}), len(passages), INGESTION)

    def _passage(self) -> str:
        passage = next(self._passage_sentences)
        while len(passage) < self.scenario.passage_chars:
            passage += " " + next(self._passage_sentences)
        return passage
