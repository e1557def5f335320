"""A client that disconnects costs no more compute: its queued inputs are dropped."""

from __future__ import annotations

import socket
import time

import orjson


def test_disconnected_client_is_dropped_before_compute(start_server, stsb_test) -> None:  # type: ignore[no-untyped-def]
    server = start_server(max_batch_size=16)
    texts = [pair[0] for pair in stsb_test[:2000]]
    body = orjson.dumps({"input": texts})
    request = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    before = server.metric("embed_batch_size_sum", model="all-MiniLM-L6-v2")
    with socket.create_connection(("127.0.0.1", server.settings.port)) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + 30
        while server.metric("embed_queue_depth", model="all-MiniLM-L6-v2") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    # Socket closed: the server notices the disconnect and drops what is still queued.
    deadline = time.monotonic() + 30
    while server.metric("embed_queue_depth", model="all-MiniLM-L6-v2") > 0:
        assert time.monotonic() < deadline, "queued inputs were not dropped"
        time.sleep(0.01)
    time.sleep(0.5)  # let any batch that had already started finish
    computed = server.metric("embed_batch_size_sum", model="all-MiniLM-L6-v2") - before
    assert computed < len(texts) / 2, f"{computed} of {len(texts)} inputs were computed after the client left"
    # The server is unharmed.
    assert server.post("/v1/embeddings", {"input": "still serving"}).status_code == 200
