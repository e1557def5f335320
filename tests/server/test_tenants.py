"""Tenants: the API-keys file (YAML, JSON, sha256 keys), refusals that never show a key,
lookup by bearer token, the model allow-list, and live reload (SIGHUP, file edits, a
Kubernetes `..data` symlink swap, a bad file keeping the tenants in use)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.errors import AuthenticationError, ModelNotFoundError, status_of
from server.tenants import ANONYMOUS, DEFAULT_TENANT, Tenant, Tenants, TenantsFileError, load_tenants
from tests.redis_server import wait_until

SEARCH_KEY = "sk-live-abc123"
INGEST_KEY = "sk-ingest-xyz789"
HASHED_KEY = "sk-hashed-only-in-digest"
SECRET_LIKE = "sk-must-never-show-9f2e"  # a key in a bad file: no message or log may contain it
# Seen within this bound after a change (the watcher yields ~50 ms after the last event).
RELOAD_BOUND_S = 3.0

TENANTS = {
    "tenants": {
        "search": {
            "keys": [SEARCH_KEY, "sha256:" + hashlib.sha256(HASHED_KEY.encode()).hexdigest().upper()],
            "requests_per_minute": 600,
            "tokens_per_minute": 2_000_000,
            "max_concurrent": 32,
            "models": ["all-MiniLM-L6-v2"],
        },
        "ingestion": {"keys": [INGEST_KEY]},
    }
}
YAML_TEXT = f"""\
tenants:
  search:
    keys: ["{SEARCH_KEY}", "sha256:{hashlib.sha256(HASHED_KEY.encode()).hexdigest()}"]  # plain and digest
    requests_per_minute: 600
    tokens_per_minute: 2000000
    max_concurrent: 32
    models: ["all-MiniLM-L6-v2"]
  ingestion:
    keys: ["{INGEST_KEY}"]
"""


def bearer(key: str) -> str:
    return f"Bearer {key}"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def tenants_yaml(*names: str, key_of: str = "sk-{name}") -> str:
    return "tenants:\n" + "".join(f"  {name}:\n    keys: [{key_of.format(name=name)}]\n" for name in names)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_maps_plain_and_digest_keys_to_their_tenant(tmp_path: Path, suffix: str) -> None:
    text = YAML_TEXT if suffix == ".yaml" else json.dumps(TENANTS)
    tenants = Tenants(path=write(tmp_path / f"api-keys{suffix}", text))
    assert tenants.enabled and sorted(tenants.tenants) == ["ingestion", "search"]
    search = tenants.authenticate(bearer(SEARCH_KEY))
    assert search == Tenant("search", 600, 2_000_000, 32, frozenset({"all-MiniLM-L6-v2"}))
    assert tenants(f"bearer   {HASHED_KEY}  ") is search  # scheme case and spacing as ApiKeyCheck
    assert tenants(bearer(INGEST_KEY)) == Tenant("ingestion") and not tenants(bearer(INGEST_KEY)).limited
    for header in (
        None,
        "",
        "Bearer",
        "Bearer  ",
        f"Basic {SEARCH_KEY}",
        bearer("sk-unknown"),
        bearer(SEARCH_KEY[:-1]),
    ):
        with pytest.raises(AuthenticationError) as caught:
            tenants(header)
        assert status_of(caught.value) == 401 and SEARCH_KEY not in caught.value.message


def test_env_keys_are_tenant_default_beside_the_file(tmp_path: Path) -> None:
    tenants = Tenants(["ops-1", "ops-2"], write(tmp_path / "t.yaml", YAML_TEXT))
    assert tenants(bearer("ops-2")) == Tenant(DEFAULT_TENANT) and tenants(bearer(SEARCH_KEY)).name == "search"
    only_env = Tenants(["ops-1"])
    assert only_env.enabled and only_env(bearer("ops-1")).name == DEFAULT_TENANT
    with pytest.raises(AuthenticationError):
        only_env(None)


def test_no_keys_at_all_is_an_open_server() -> None:
    tenants = Tenants()
    assert not tenants.enabled
    assert tenants(None) is ANONYMOUS and tenants(bearer("anything")) is ANONYMOUS and not ANONYMOUS.limited


def test_only_digests_are_kept_and_nothing_shows_a_key(tmp_path: Path) -> None:
    tenants = Tenants(["ops-key-1"], write(tmp_path / "t.yaml", YAML_TEXT))
    table = tenants._table
    assert all(len(digest) == 32 and stored == digest for digest, (stored, _) in table.by_digest.items())
    shown = repr(table) + repr(tenants.tenants) + repr(load_tenants(tmp_path / "t.yaml"))
    for key in (SEARCH_KEY, INGEST_KEY, "ops-key-1"):
        digest = hashlib.sha256(key.encode()).digest()
        assert key not in shown and repr(digest) not in shown and digest.hex() not in shown


SECRET_DIGEST = "sha256:" + hashlib.sha256(SECRET_LIKE.encode()).hexdigest()


def search(fields: str = "", keys: str = f"[{SECRET_LIKE}]") -> str:
    """A file with tenant `search` holding the secret-like key, plus `fields` (YAML lines)."""
    return f"tenants:\n  search:\n    keys: {keys}\n" + "".join(f"    {line}\n" for line in fields.splitlines())


BAD_FILES = [
    pytest.param("", ["empty"], id="empty"),
    pytest.param("tenants: {}\n", ["tenants", "at least 1"], id="no-tenants"),
    pytest.param("tenant:\n  a:\n    keys: [k]\n", ["tenant", "Extra inputs"], id="misspelt-top-level"),
    pytest.param(search("rpm: 5"), ["tenants.search.rpm", "Extra inputs"], id="extra"),
    pytest.param(search("requests_per_minute: 0"), ["search.requests_per_minute", "greater than 0"], id="zero"),
    pytest.param(search("tokens_per_minute: '2000'"), ["search.tokens_per_minute", "integer"], id="string-limit"),
    pytest.param(search("max_concurrent: true"), ["tenants.search.max_concurrent", "integer"], id="bool-limit"),
    pytest.param(search("models: []"), ["tenants.search.models", "at least 1"], id="empty-models"),
    pytest.param(search(keys="[]"), ["tenants.search.keys", "at least 1"], id="no-keys"),
    pytest.param(search(keys=SECRET_LIKE), ["tenants.search.keys", "list"], id="keys-not-list"),
    pytest.param(search(keys=f"[' {SECRET_LIKE}']"), ["tenants.search.keys[0]", "whitespace"], id="space"),
    pytest.param(search(keys="['sha256:abc']"), ["tenants.search.keys[0]", "64 hex digits"], id="short-digest"),
    pytest.param(
        "tenants:\n  search:\n    max_concurrent: 2\n", ["tenants.search.keys", "Field required"], id="no-keys-field"
    ),
    pytest.param(
        f"tenants:\n  'bad name{{x}}':\n    keys: [{SECRET_LIKE}]\n", ["tenants.bad name{x}", "pattern"], id="name"
    ),
    pytest.param(
        search(keys=f"[x, {SECRET_LIKE}]") + f"  b:\n    keys: [{SECRET_LIKE}]\n",
        ["tenants.b.keys[0]", "same key", "'search'", "tenants.search.keys[1]"],
        id="duplicate-across-tenants",
    ),
    pytest.param(
        search() + f"  b:\n    keys: ['{SECRET_DIGEST}']\n",
        ["tenants.b.keys[0]", "same key", "'search'"],
        id="duplicate-plain-and-digest",
    ),
    pytest.param(
        search("requests_per_minute: 5", keys=f'["{SECRET_LIKE}", '),
        ["not valid YAML at line 5, column 1", "expected ',' or ']'"],
        id="yaml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_files_are_refused_naming_the_field_never_the_key(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path / "api-keys.yaml", text)
    with pytest.raises(TenantsFileError) as caught:
        Tenants(path=path)
    message = str(caught.value)
    assert message.startswith(str(path))
    for fragment in expected:
        assert fragment in message, message
    assert SECRET_LIKE not in message and SECRET_LIKE not in repr(caught.value)
    # Not chained: a logged traceback would print the parser's or pydantic's error, quoting the key.
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_bad_json_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "api-keys.json", f'{{"tenants": {{"a": {{"keys": ["{SECRET_LIKE}"]}}')
    with pytest.raises(TenantsFileError, match=r"not valid JSON at line 1") as caught:
        Tenants(path=path)
    assert SECRET_LIKE not in str(caught.value)
    with pytest.raises(TenantsFileError, match="cannot be read"):
        Tenants(path=tmp_path / "absent.yaml")


def test_tenant_named_default_clashes_only_with_env_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "t.yaml", tenants_yaml("default"))
    assert Tenants(path=path)(bearer("sk-default")).name == "default"
    with pytest.raises(TenantsFileError, match="'default' is taken"):
        Tenants(["ops"], path)
    with pytest.raises(TenantsFileError, match=r"tenants.a.keys\[0\] is the same key as tenant 'default'"):
        Tenants(["sk-a"], write(tmp_path / "u.yaml", tenants_yaml("a")))


def test_model_allow_list_answers_404_model_not_found() -> None:
    search = Tenant("search", models=frozenset({"minilm"}))
    search.require_model("minilm", ["all-MiniLM-L6-v2", "minilm"])  # allowed through an alias
    search.require_model(None, ["all-MiniLM-L6-v2", "minilm"])
    Tenant("any").require_model("bge", ["bge"])  # no list: every model
    with pytest.raises(ModelNotFoundError) as caught:
        search.require_model("bge", ["bge-small"], allowed_names=["bge", "bge-small", "minilm"])
    error = caught.value
    assert status_of(error) == 404 and error.code == "model_not_found" and error.param == "model"
    assert "'bge' does not exist or you do not have access to it" in error.message
    assert "available to you: minilm" in error.message and "bge-small" not in error.message


def test_reload_swaps_tenants_and_a_bad_file_keeps_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "t.yaml", tenants_yaml("a"))
    tenants = Tenants(path=path)
    write(path, tenants_yaml("a", "b"))
    assert tenants.reload() and tenants(bearer("sk-b")).name == "b"
    assert not tenants.reload(force=False)  # unchanged bytes: nothing to do
    write(path, f"tenants:\n  c:\n    keys: [{SECRET_LIKE}]\n    rpm: 1\n")
    with caplog.at_level(logging.ERROR, logger="server.tenants"):
        assert not tenants.reload()
    assert "not reloaded, keeping the 2 tenants" in caplog.text and "tenants.c.rpm" in caplog.text
    assert SECRET_LIKE not in caplog.text
    assert tenants(bearer("sk-b")).name == "b"
    with pytest.raises(AuthenticationError):
        tenants(bearer(SECRET_LIKE))
    path.unlink()
    assert not tenants.reload() and tenants(bearer("sk-a")).name == "a"  # a vanished file keeps them too


@contextlib.asynccontextmanager
async def watching(tenants: Tenants) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(tenants.watch(stop))
    await asyncio.sleep(0.3)  # the inotify watch is set up on the watcher's thread
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_watch_reloads_an_edited_file(tmp_path: Path) -> None:
    path = write(tmp_path / "api-keys.yaml", tenants_yaml("a"))
    tenants = Tenants(path=path)
    async with watching(tenants):
        write(path, tenants_yaml("a", "b"))  # in place
        await wait_until(lambda: "b" in tenants.tenants, RELOAD_BOUND_S, "in-place edit seen")
        replacement = write(tmp_path / "api-keys.yaml.tmp", tenants_yaml("c"))
        os.replace(replacement, path)  # an editor's atomic save: a new inode under the path
        await wait_until(lambda: list(tenants.tenants) == ["c"], RELOAD_BOUND_S, "atomic save seen")


def kubernetes_secret_dir(root: Path, text: str) -> Path:
    """The kubelet's layout: dir/api-keys.yaml -> ..data/api-keys.yaml, ..data -> ..<timestamp>/."""
    root.mkdir()
    (root / "..2025_01_01_00_00_00.1").mkdir()
    write(root / "..2025_01_01_00_00_00.1" / "api-keys.yaml", text)
    os.symlink("..2025_01_01_00_00_00.1", root / "..data")
    os.symlink("..data/api-keys.yaml", root / "api-keys.yaml")
    return root / "api-keys.yaml"


def kubernetes_update(root: Path, stamp: str, text: str) -> None:
    """What the kubelet does on a Secret change: a new timestamped directory, a new `..data`
    symlink renamed over the old one (atomic), then the old directory removed."""
    old = os.readlink(root / "..data")
    (root / stamp).mkdir()
    write(root / stamp / "api-keys.yaml", text)
    os.symlink(stamp, root / "..data_tmp")
    os.replace(root / "..data_tmp", root / "..data")
    shutil.rmtree(root / old)


async def test_watch_follows_a_kubernetes_secret_symlink_swap(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = kubernetes_secret_dir(tmp_path / "auth", tenants_yaml("a"))
    tenants = Tenants(path=path)
    assert tenants(bearer("sk-a")).name == "a"
    async with watching(tenants):
        kubernetes_update(tmp_path / "auth", "..2025_01_01_00_01_00.2", tenants_yaml("a", "b"))
        await wait_until(lambda: "b" in tenants.tenants, RELOAD_BOUND_S, "new tenants after the ..data swap")
        assert tenants(bearer("sk-b")).name == "b" and tenants.reloads == 1
        with caplog.at_level(logging.ERROR, logger="server.tenants"):
            bad = f"tenants:\n  c:\n    keys: [{SECRET_LIKE}]\n    max_concurrent: -1\n"
            kubernetes_update(tmp_path / "auth", "..2025_01_01_00_02_00.3", bad)
            await wait_until(lambda: "not reloaded" in caplog.text, RELOAD_BOUND_S, "bad file logged")
        assert sorted(tenants.tenants) == ["a", "b"] and tenants(bearer("sk-b")).name == "b"
        assert SECRET_LIKE not in caplog.text
        kubernetes_update(tmp_path / "auth", "..2025_01_01_00_03_00.4", tenants_yaml("c"))
        await wait_until(lambda: list(tenants.tenants) == ["c"], RELOAD_BOUND_S, "good file after a bad one")
        with pytest.raises(AuthenticationError):
            tenants(bearer("sk-a"))


async def test_watch_ends_on_stop_and_on_cancel(tmp_path: Path) -> None:
    tenants = Tenants(path=write(tmp_path / "t.yaml", tenants_yaml("a")))
    async with watching(tenants) as task:
        pass
    assert task.done() and task.exception() is None
    task = asyncio.create_task(tenants.watch())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert await asyncio.wait_for(Tenants().watch(), 1) is None  # no file: nothing to watch
