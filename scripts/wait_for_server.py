"""Wait until the Prefect API answers /health (used by the systemd worker unit)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--url", default=os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    while True:  # at least one try: --timeout 0 is a single health check
        try:
            with urllib.request.urlopen(f"{args.url}/health", timeout=2) as response:  # noqa: S310
                if response.read().strip() == b"true":
                    return 0
        except OSError:
            pass
        if time.monotonic() >= deadline:
            break
        time.sleep(1)
    print(f"error: {args.url} did not answer /health within {args.timeout:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
