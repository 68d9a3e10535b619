"""A pyrite client in its own process for the client-side bomb test (its RSS is its own).

    python tests/hostile/_client.py URI COUNT SERIALIZER

Calls ``echo`` COUNT times on URI (a fresh proxy each time), and
prints one JSON line: RSS (MB) before and after, and the errors met.
"""

from __future__ import annotations

import gc
import json
import sys

from pyrite.core.client import Proxy
from pyrite.core.config import config


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main() -> None:
    uri, count = sys.argv[1], int(sys.argv[2])
    config.SERIALIZER = sys.argv[3]
    start = rss_mb()
    errors: list[str] = []
    peak = start
    for _ in range(count):
        try:
            with Proxy(uri) as proxy:
                proxy._pyroTimeout = 10.0
                proxy.echo(1)
            errors.append("no error")
        except Exception as exc:  # the point: every bomb must end in an exception, not in memory kept
            errors.append(type(exc).__name__)
        peak = max(peak, rss_mb())
    end = rss_mb()
    gc.collect()
    print(json.dumps({"start": start, "end": end, "after_gc": rss_mb(), "peak": peak, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
