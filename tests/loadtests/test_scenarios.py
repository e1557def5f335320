import json

from loadtests.loadgen import Endpoint, Request
from loadtests.sizing.scenarios import INGESTION, QUERY, RequestStream, Scenario

ENDPOINT = Endpoint("127.0.0.1", 8000)


def body(request: Request) -> dict:
    return json.loads(request.raw.split(b"\r\n\r\n", 1)[1])


def test_queries_are_distinct_single_sentences_without_cache() -> None:
    stream = RequestStream(Scenario.named("queries"), ENDPOINT, model="m")
    requests = stream.take(2000)
    assert {r.kind for r in requests} == {QUERY} and {r.inputs for r in requests} == {1}
    bodies = [body(r) for r in requests]
    assert all(b["cache"] is False and b["model"] == "m" and b["encoding_format"] == "base64" for b in bodies)
    assert len({b["input"] for b in bodies}) == 2000  # fewer requests than sentences: no repeat


def test_ingestion_batches_of_long_passages() -> None:
    scenario = Scenario.named("ingestion", passages=8, passage_chars=300)
    requests = RequestStream(scenario, ENDPOINT, model=None, cache=True).take(20)
    assert {r.kind for r in requests} == {INGESTION} and {r.inputs for r in requests} == {8}
    passages = [p for r in requests for p in body(r)["input"]]
    assert all(len(p) >= 300 for p in passages) and len(set(passages)) == len(passages)
    assert "cache" not in body(requests[0]) and "model" not in body(requests[0])


def test_mixed_share_and_seed() -> None:
    scenario = Scenario.named("mixed", query_share=0.8, passages=2, passage_chars=50)
    kinds = [r.kind for r in RequestStream(scenario, ENDPOINT, model="m", seed=3).take(2000)]
    assert 0.77 < kinds.count(QUERY) / len(kinds) < 0.83
    again = [r.kind for r in RequestStream(scenario, ENDPOINT, model="m", seed=3).take(2000)]
    assert kinds == again
