"""`python -m server.probe`: the container HEALTHCHECK."""

from __future__ import annotations

from server import probe
from tests.helpers import free_port


def test_probe_answers_by_status(minilm_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EMBED_PORT", minilm_server.url.rsplit(":", 1)[1])
    assert probe.main(["/ready"]) == 0 and probe.main(["/health"]) == 0
    assert probe.main(["/no-such-path"]) == 1
    monkeypatch.setenv("EMBED_PORT", str(free_port()))
    assert probe.main([]) == 1
