"""Session fixtures: real models, real servers on free ports, reference implementations."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from models.catalog import find_card
from models.sources import resolve_source
from server.settings import ServerSettings
from tests.helpers import RunningServer, free_port
from tests.tiny_models import DECODERS, build_bert, build_decoder, save_decoder_tokenizer

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return resolve_source(find_card("all-MiniLM-L6-v2").source)


@pytest.fixture(scope="session")
def st_minilm(minilm_dir: Path):  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu", model_kwargs={"dtype": torch.float32})


@pytest.fixture(scope="session")
def stsb_test() -> list[tuple[str, str, float]]:
    pairs = []
    for line in (DATA / "stsb" / "sts-test.csv").read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) >= 7:
            pairs.append((fields[5], fields[6], float(fields[4])))
    return pairs


@pytest.fixture(scope="session")
def decoder_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_decoder_tokenizer(tmp_path_factory.mktemp("decoder-tokenizer"))


@pytest.fixture(scope="session")
def tiny_models(
    tmp_path_factory: pytest.TempPathFactory, decoder_tokenizer_dir: Path, minilm_dir: Path
) -> dict[str, Path]:
    """Folders of tiny random Qwen3, Llama, Mistral (decoders) and BERT (encoder) models."""
    root = tmp_path_factory.mktemp("tiny")
    folders = {kind: build_decoder(kind, root / kind, decoder_tokenizer_dir) for kind in DECODERS}
    folders["bert"] = build_bert(root / "bert", minilm_dir)
    return folders


class ServerFactory:
    """Starts real uvicorn servers (one thread each) and stops them at the end of the session."""

    def __init__(self) -> None:
        self._servers: list[RunningServer] = []

    def __call__(self, **overrides: object) -> RunningServer:
        settings = ServerSettings(**{"dtype": "float32", "port": free_port(), **overrides})
        server = RunningServer(settings)
        self._servers.append(server)
        return server

    def close(self) -> None:
        for server in self._servers:
            server.stop()


# Each server holds a replica process of its own (hundreds of MB): a test's servers stop when the
# test ends, a module fixture's when the module ends; only minilm_server lives for the session.
@pytest.fixture
def start_server() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_servers() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def session_servers() -> Iterator[ServerFactory]:
    factory = ServerFactory()
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def minilm_server(session_servers: ServerFactory) -> RunningServer:
    """The default model at float32 with default settings."""
    return session_servers()


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
