"""uvicorn with a bounded, observable drain.

On SIGTERM (or SIGINT) readiness fails at once, before uvicorn stops accepting, so a probe
that still reaches the process sees 503; accepted requests then have `--drain-timeout-s` to
finish, after which those still waiting are answered 503 and the process exits.
"""

from __future__ import annotations

from types import FrameType

import uvicorn

from server.lifecycle import ServerState


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: set the flag now, schedule the rest on the loop.
        self._state.draining = True
        loop = self._state.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._state.begin_drain)
        super().handle_exit(sig, frame)


# uvicorn's own graceful-shutdown timeout is set this much past the drain, as a backstop.
DRAIN_BACKSTOP_S = 5.0
