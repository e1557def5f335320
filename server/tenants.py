"""Tenants: who a bearer key belongs to, and that tenant's limits and models.

Keys come from the API-keys file (`--api-keys-file`, YAML or JSON, the format the Helm chart
writes) and from `--api-key` / `EMBED_API_KEY` (tenant "default", no limits). With neither,
the server is open and every request is tenant "anonymous". A configured file always means
authentication, even if it later fails to load.

Only sha256 digests of keys are kept: a presented token is hashed and looked up in a dict. The
dict lookup compares digests, not keys, so its timing tells an attacker nothing they can steer
towards a key; the found digest is compared once more with `hmac.compare_digest`. Keys never
reach logs, reprs or error messages: errors name the tenant and the position of the key.

The file is reloaded on SIGHUP (`reload()`) and when it changes (`watch()`). Kubernetes mounts
a Secret as `dir/tenants.yaml -> ..data/tenants.yaml`, `..data -> ..2025_x/`, and updates it by
swapping the `..data` symlink atomically, so the watch is on the directory and every event
re-reads the path (never the original inode). A file that fails to parse or validate keeps the
tenants loaded before it and is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, ValidationError
from watchfiles import awatch

from server.errors import AuthenticationError, ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_TENANT = "default"  # the keys of --api-key / EMBED_API_KEY
ANONYMOUS_TENANT = "anonymous"  # no keys configured at all
# Tenant names become metric labels and Redis key parts: the chart's own pattern, bounded length.
TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_DIGEST_PREFIX = "sha256:"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
# A burst of events (Kubernetes writes a directory, a symlink, renames it, removes the old one)
# yields once, `step` ms after the last event.
_WATCH_STEP_MS = 50
_WATCH_DEBOUNCE_MS = 1000
_WATCH_RESTART_S = 5.0


class TenantsFileError(ValueError):
    """The API-keys file cannot be used; the message names the file and the offending field."""


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant's limits (None: unlimited) and models (None: every served model). Holds no key."""

    name: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None
    models: frozenset[str] | None = None

    @property
    def limited(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute or self.max_concurrent)

    def may_use(self, names: Iterable[str]) -> bool:
        """Whether any of `names` (a model's served name and aliases) is on the allow-list."""
        return self.models is None or not self.models.isdisjoint(names)

    def require_model(self, requested: str | None, names: Iterable[str], allowed_names: Iterable[str] = ()) -> None:
        """404 model_not_found, exactly as for a model that is not served, when the tenant may not
        use it: OpenAI answers so for models a key has no access to, and a 403 would tell the
        tenant which models exist. `allowed_names` (optional) are listed in the message."""
        if self.may_use(names):
            return
        listed = sorted(name for name in allowed_names if self.models is None or name in self.models)
        shown = requested if requested is not None else next(iter(names), "?")
        raise ModelNotFoundError(
            f"The model {shown!r} does not exist or you do not have access to it; "
            f"models available to you: {', '.join(listed) or 'none'}",
            param="model",
        )


ANONYMOUS = Tenant(ANONYMOUS_TENANT)

# -- the file's schema ------------------------------------------------------------------

TenantName = Annotated[str, StringConstraints(pattern=TENANT_NAME.pattern)]
ModelName = Annotated[str, StringConstraints(min_length=1)]
# Strict: `true` or "600" in the file is a mistake to report, not a limit of 1 or 600.
Limit = Annotated[int, Field(strict=True, gt=0)]


class TenantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: list[SecretStr] = Field(min_length=1, description='Plain keys or "sha256:<64 hex>" digests of keys.')
    requests_per_minute: Limit | None = None
    tokens_per_minute: Limit | None = None
    max_concurrent: Limit | None = None
    models: list[ModelName] | None = Field(None, min_length=1, description="Allowed models (default: all).")


class TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # At least one tenant: an empty file must not turn authentication off.
    tenants: dict[TenantName, TenantSpec] = Field(min_length=1)


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _spec_digest(secret: SecretStr, where: str) -> bytes:
    value = secret.get_secret_value()
    if value != value.strip() or not value:
        raise TenantsFileError(f"{where}: a key may not be empty or start or end with whitespace")
    if value.startswith(_DIGEST_PREFIX):
        hex_part = value[len(_DIGEST_PREFIX) :]
        if not _HEX64.fullmatch(hex_part):
            raise TenantsFileError(f"{where}: after 'sha256:' a digest needs exactly 64 hex digits")
        return bytes.fromhex(hex_part)
    return key_digest(value)


def _location(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _parse(text: str, path: Path) -> object:
    """JSON for a .json file, else YAML (a superset of JSON). Parser messages quote the offending
    line, which may hold a key: only the position and the problem are kept, and the parser's
    exception is not chained (its context would carry the line)."""
    problem: str | None = None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            problem = f"not valid JSON at line {exc.lineno}, column {exc.colno}"
    else:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            detail = getattr(exc, "problem", None)
            problem = f"not valid YAML{where}" + (f" ({detail})" if detail else "")
    raise TenantsFileError(f"{path}: {problem}")


@dataclass(frozen=True, slots=True)
class KeyTable:
    """Digest → (that digest, tenant), and the tenants by name; replaced as a whole on reload."""

    # Not in the repr: an unsalted digest of a weak key could be brute-forced from a log.
    by_digest: Mapping[bytes, tuple[bytes, Tenant]] = field(repr=False)
    tenants: Mapping[str, Tenant]


def read_tenants_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TenantsFileError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None


def load_tenants(path: Path, env_keys: Sequence[str] = (), data: bytes | None = None) -> KeyTable:
    """Validate the file (`data`: its bytes, already read); with `env_keys`, add tenant "default".
    Raises TenantsFileError."""
    raw = read_tenants_file(path) if data is None else data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TenantsFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise TenantsFileError(f"{path}: the file is empty; it needs a 'tenants:' mapping")
    data = _parse(text, path)
    problems: list[str] = []
    try:
        parsed = TenantsFile.model_validate(data)
    except ValidationError as exc:
        # include_input=False: the offending value may be a key (and the error is not chained).
        problems = [
            f"{_location(error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
    if problems:
        raise TenantsFileError(f"{path}: " + "; ".join(problems))
    table = _key_table(env_keys)
    by_digest = dict(table.by_digest)
    owner = {digest: f"{DEFAULT_TENANT!r}'s (--api-key / EMBED_API_KEY)" for digest in by_digest}
    tenants = dict(table.tenants)
    for name, spec in parsed.tenants.items():
        if name in tenants:
            raise TenantsFileError(f"{path}: tenant name {name!r} is taken by the --api-key / EMBED_API_KEY keys")
        tenant = Tenant(
            name,
            spec.requests_per_minute,
            spec.tokens_per_minute,
            spec.max_concurrent,
            frozenset(spec.models) if spec.models is not None else None,
        )
        tenants[name] = tenant
        for index, secret in enumerate(spec.keys):
            where = f"tenants.{name}.keys[{index}]"
            digest = _spec_digest(secret, f"{path}: {where}")
            other = owner.get(digest)
            if other is not None and by_digest[digest][1] is not tenant:
                raise TenantsFileError(f"{path}: {where} is the same key as tenant {other}")
            by_digest[digest] = (digest, tenant)
            owner[digest] = f"{name!r}'s {where}"
    return KeyTable(by_digest, tenants)


def _key_table(env_keys: Sequence[str]) -> KeyTable:
    if not env_keys:
        return KeyTable({}, {})
    default = Tenant(DEFAULT_TENANT)
    digests = [key_digest(key) for key in env_keys]
    return KeyTable({digest: (digest, default) for digest in digests}, {DEFAULT_TENANT: default})


class Tenants:
    """Bearer token → Tenant; a drop-in for ApiKeyCheck whose call returns the tenant.

    Event-loop use: `authenticate` reads one attribute, `reload` replaces it whole, so a
    request never sees half a reload.
    """

    def __init__(self, env_keys: Sequence[str] = (), path: str | Path | None = None) -> None:
        self._env_keys = tuple(env_keys)
        self.path = Path(path) if path is not None else None
        self._file_digest: bytes | None = None
        self.reloads = 0  # loads that changed the file's contents (tests, debugging)
        if self.path is None:
            self._table = _key_table(self._env_keys)
        else:
            data = read_tenants_file(self.path)  # a bad file at start-up stops the server
            self._table = load_tenants(self.path, self._env_keys, data)
            self._file_digest = hashlib.sha256(data).digest()

    @property
    def enabled(self) -> bool:
        return self.path is not None or bool(self._table.by_digest)

    @property
    def tenants(self) -> Mapping[str, Tenant]:
        return self._table.tenants

    def authenticate(self, authorization: str | None) -> Tenant:
        """The tenant of an `Authorization: Bearer <key>` header, or AuthenticationError."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("Missing API key: send it as 'Authorization: Bearer <key>'.")
        digest = key_digest(token)
        found = self._table.by_digest.get(digest)
        if found is None or not hmac.compare_digest(found[0], digest):
            raise AuthenticationError("Incorrect API key provided.")
        return found[1]

    __call__ = authenticate

    def reload(self, *, force: bool = True) -> bool:
        """Re-read the file (SIGHUP; `force=False`: only if its bytes changed). True when new
        tenants are in use; a bad file keeps the current ones and is logged, never raised."""
        if self.path is None:
            return False
        try:
            data = read_tenants_file(self.path)
            digest = hashlib.sha256(data).digest()
            if not force and digest == self._file_digest:
                return False
            table = load_tenants(self.path, self._env_keys, data)
        except TenantsFileError as exc:
            log.error("API-keys file not reloaded, keeping the %d tenants in use: %s", len(self.tenants), exc)
            return False
        changed = digest != self._file_digest
        self._table, self._file_digest = table, digest
        self.reloads += changed
        log.info("API-keys file %s %s: %d tenants (%s)", self.path, "reloaded" if changed else "unchanged",
                 len(table.tenants), ", ".join(sorted(table.tenants)))  # fmt: skip
        return True

    async def watch(self, stop_event: asyncio.Event | None = None) -> None:
        """Reload whenever something in the file's directory changes, until `stop_event` is set or
        the task is cancelled (run it as a lifespan task). Events, not polling: inotify through
        watchfiles. If the watch itself fails (directory gone, inotify limits), it is logged and
        restarted; SIGHUP still works meanwhile."""
        if self.path is None:
            return
        stop = stop_event or asyncio.Event()
        directory = self.path.parent
        while not stop.is_set():
            try:
                async for _ in awatch(
                    directory,
                    watch_filter=None,  # every event counts: the file's digest decides
                    recursive=False,
                    step=_WATCH_STEP_MS,
                    debounce=_WATCH_DEBOUNCE_MS,
                    stop_event=stop,
                ):
                    self.reload(force=False)
            except Exception as exc:  # the watch failing must not stop the server
                log.warning("watching %s for API-keys file changes failed (%s); retrying in %gs", directory,
                            exc, _WATCH_RESTART_S)  # fmt: skip
                try:
                    async with asyncio.timeout(_WATCH_RESTART_S):
                        await stop.wait()
                except TimeoutError:
                    pass
                self.reload(force=False)  # changes made while the watch was down
            else:
                return
