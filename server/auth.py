"""Bearer-key authentication for the /v1 routes."""

from __future__ import annotations

import hmac

from server.errors import AuthenticationError


class ApiKeyCheck:
    def __init__(self, keys: list[str]) -> None:
        self._keys = [key.encode() for key in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def __call__(self, authorization: str | None) -> None:
        if not self._keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Missing API key: send it as 'Authorization: Bearer <key>'.")
        given = token.strip().encode()
        # Compare against every key without stopping early: timing reveals nothing about which matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise AuthenticationError("Incorrect API key provided.")
