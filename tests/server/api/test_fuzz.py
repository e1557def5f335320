"""Property-based fuzzing of every documented operation against the real server (schemathesis).

The app's /openapi.json drives generation: valid and invalid requests (bodies, headers, path
parameters, undeclared methods), a bounded number per operation, derandomized so CI reruns the
same cases. Every answer must conform to the schema (status, content type, body, headers), no
answer may be a server error, and every 4xx/5xx body must be OpenAI's error object. A second test
sends only schema-valid bodies (narrowed where validity depends on the served model or on another
field) and requires them to be accepted: the schema must not promise what the parser refuses.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import assume
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from starlette.testclient import TestClient

from models.catalog import DEFAULT_MODEL
from server.app import create_app
from server.settings import ServerSettings
from tests.helpers import RunningServer

# Hypothesis keeps caches (unicode tables, source constants) in ./.hypothesis even without an
# example database; keep them out of the checkout unless the environment says where.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "embed-server-hypothesis"))

SEED = 20261203  # with derandomized Hypothesis: CI reruns exactly the same cases
# Generation only: the server takes up to 2,048 long inputs, but small bodies find the same
# parser and validation bugs, and a 2-core CI box must run the whole file in about a minute.
# The schema's request examples fit these bounds, or the examples phase would drop them.
MAX_ITEMS = 4
MAX_CHARS = 24
# Fuzzing-phase examples per operation (the coverage phase adds its own deterministic cases).
EXAMPLES = {
    ("POST", "/v1/embeddings"): 100,
    ("POST", "/v1/documents/embeddings"): 100,
    ("GET", "/v1/models/{model_id}"): 30,
}
EXAMPLES_OTHERWISE = 10  # operations whose only inputs are headers
VALID_BODY_EXAMPLES = 40
TIKTOKEN_IDS = {"minimum": 0, "maximum": 100_000}  # cl100k_base ids (the default --token-ids tiktoken)


def _bounded(node: Any) -> Any:
    """A request schema whose strings and arrays are short (existing tighter bounds are kept)."""
    if isinstance(node, list):
        return [_bounded(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _bounded(value) for key, value in node.items()}
    kind = node.get("type")
    if kind == "array":
        out["maxItems"] = min(node.get("maxItems", MAX_ITEMS), MAX_ITEMS)
    elif kind == "string" and "const" not in node and "enum" not in node:
        out["maxLength"] = min(node.get("maxLength", MAX_CHARS), MAX_CHARS)
    return out


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    return None if body is None else body["schema"]


def _for_generation(document: dict[str, Any]) -> dict[str, Any]:
    """The served schema with bounded request sizes; responses stay exactly as served."""
    document = copy.deepcopy(document)
    for _, _, operation in _operations(document):
        if (schema := _body_schema(operation)) is not None:
            operation["requestBody"]["content"]["application/json"]["schema"] = _bounded(schema)
        for parameter in operation.get("parameters", ()):
            parameter["schema"] = _bounded(parameter["schema"])
    return document


def _config(*, modes: str, operations: list[dict[str, Any]]) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "request-timeout": 120,
            "generation": {"mode": modes, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "operations": operations,
        }
    )


# Loaded at import: schemathesis makes one test per operation at collection, before any fixture
# starts a server (its fixture-based loader breaks on pytest 9). No model is needed to build the
# document; test_the_server_serves_this_schema checks that the live server serves exactly it.
DOCUMENT = create_app(ServerSettings(), cards=[]).openapi()

api = schemathesis.openapi.from_dict(
    _for_generation(DOCUMENT),
    config=_config(
        modes="all",
        operations=[
            {
                "include-method": method,
                "include-path": path,
                "generation": {"max-examples": EXAMPLES.get((method, path), EXAMPLES_OTHERWISE)},
            }
            for method, path, _ in _operations(DOCUMENT)
        ],
    ),
)


def test_the_server_serves_this_schema(minilm_server: RunningServer) -> None:
    response = httpx.get(minilm_server.url + "/openapi.json", timeout=30)
    assert response.status_code == 200 and response.json() == DOCUMENT


# --- checks ---------------------------------------------------------------------------------------


def _asked_deadline_s(case: Case) -> float:
    try:
        return float((case.headers or {}).get("X-Request-Timeout", "inf"))
    except ValueError:
        return math.inf


def no_server_error(ctx: CheckContext, response: Response, case: Case) -> None:
    """schemathesis's not_a_server_error, except the 504 a request asks for with a deadline
    (X-Request-Timeout) under a second: generation likes 5e-324 s, and no server meets that."""
    if response.status_code == 504 and _asked_deadline_s(case) < 1.0:
        assert response.json()["error"]["code"] == "request_timeout", response.text
        return
    not_a_server_error(ctx, response, case)


def openai_errors(ctx: CheckContext, response: Response, case: Case) -> None:
    """Every 4xx/5xx answer is exactly OpenAI's error object (/ready's 503 adds its report)."""
    if response.status_code < 400:
        return
    assert "Traceback" not in response.text, response.text
    body = response.json()
    extra = {"status", "models"} if case.operation.path == "/ready" and response.status_code == 503 else set()
    assert isinstance(body, dict) and set(body) == {"error", *extra}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error


CONFORMANCE: list[Callable[..., Any]] = [
    openai_errors,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CHECKS = [no_server_error, *CONFORMANCE, unsupported_method]


@api.parametrize()
def test_every_answer_conforms(case: Case, minilm_server: RunningServer) -> None:
    case.call_and_validate(base_url=minilm_server.url, checks=CHECKS)


# --- refusals before any work: no key, not ready -------------------------------------------------------


def _example_case(method: str, path: str) -> Case:
    """A request the schema documents: the operation's example body and model id."""
    operation = api[path][method]
    arguments: dict[str, Any] = {}
    if "{model_id}" in path:
        arguments["path_parameters"] = {"model_id": DEFAULT_MODEL}
    if (media := DOCUMENT["paths"][path][method.lower()].get("requestBody")) is not None:
        arguments["body"] = media["content"]["application/json"]["examples"]["default"]["value"]
        arguments["media_type"] = "application/json"
    return operation.Case(**arguments)


@pytest.mark.parametrize(("settings", "status"), [({"api_key": ["the-key"]}, 401), ({}, 503)])
def test_refusals_conform(settings: dict[str, Any], status: int) -> None:
    """401 (a key is required, none sent) and 503 (not ready), which the ready, keyless fuzzed
    server never answers: the app without its lifespan loads no model, so it stays not ready."""
    client = TestClient(create_app(ServerSettings(**settings), cards=[]))
    for method, path, _ in _operations(DOCUMENT):
        case = _example_case(method, path)
        response = client.request(method, case.formatted_path, json=case.body if case.media_type else None)
        v1 = path.startswith("/v1/")
        expected = status if v1 else {"/ready": 503, "/health": 200, "/metrics": 200}[path]
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text}"
        case.validate_response(response, checks=CONFORMANCE)


# --- schema-valid bodies are accepted ---------------------------------------------------------------

# Fields whose valid values depend on the served model (its names, Matryoshka sizes, prompts,
# context length): the schema cannot list them, so this test leaves them out.
MODEL_SPECIFIC = ("model", "dimensions", "prompt_name", "instruction", "window_overlap")


def _narrowed(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    for name in MODEL_SPECIFIC:
        schema["properties"].pop(name, None)
    for shape in schema["properties"]["input"].get("anyOf", ()):
        items = shape.get("items", {})
        if items.get("type") == "integer":
            items.update(TIKTOKEN_IDS)
        elif items.get("items", {}).get("type") == "integer":
            items["items"].update(TIKTOKEN_IDS)
    return schema


def _valid_bodies_document() -> dict[str, Any]:
    """The operations with a body, their bodies narrowed, and deadlines the work can meet."""
    document = _for_generation(DOCUMENT)
    for path, item in list(document["paths"].items()):
        for method, operation in list(item.items()):
            if (schema := _body_schema(operation)) is None:
                del item[method]
                continue
            operation["requestBody"]["content"]["application/json"]["schema"] = _narrowed(schema)
            for parameter in operation["parameters"]:
                if parameter["name"] == "X-Request-Timeout":
                    parameter["schema"] = {"type": "number", "minimum": 60}
        if not item:
            del document["paths"][path]
    return document


valid_bodies = schemathesis.openapi.from_dict(
    _valid_bodies_document(),
    config=_config(
        modes="positive",
        operations=[{"include-method": "POST", "generation": {"max-examples": VALID_BODY_EXAMPLES}}],
    ),
)


def _has_float(value: Any) -> bool:
    """JSON Schema's integer admits 1.0 (a number without a fraction); the parser's strict
    integers refuse it, and no request field is a float."""
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return isinstance(value, float)


def _follows_cross_field_rules(body: dict[str, Any]) -> bool:
    """The rules between fields that the schema does not express (server/embedding_service.py,
    models/chunking.py)."""
    token_ids = isinstance(body.get("input"), list) and any(not isinstance(item, str) for item in body["input"])
    if body.get("late_chunking") and (token_ids or body.get("truncate") not in (None, "none")):
        return False
    chunking = body.get("chunking") or {}
    return chunking.get("overlap_tokens", 0) < chunking.get("max_tokens", 1)


@valid_bodies.parametrize()
def test_schema_valid_bodies_are_accepted(case: Case, minilm_server: RunningServer) -> None:
    assume(isinstance(case.body, dict) and not _has_float(case.body) and _follows_cross_field_rules(case.body))
    response = case.call(base_url=minilm_server.url)
    assert response.status_code == 200, f"{case.body!r} -> {response.status_code} {response.text}"
    case.operation.validate_response(response, case=case)
