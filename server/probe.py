"""`python -m server.probe [PATH]`: the container's health check, with no curl in the image.

Exits 0 when GET http://127.0.0.1:$EMBED_PORT/PATH (default /ready) answers 200, else 1.
Standard library only, so it starts in tens of milliseconds.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    path = argv[0] if argv else "/ready"
    url = f"http://127.0.0.1:{os.environ.get('EMBED_PORT', '8000')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
