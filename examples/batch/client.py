"""Sends batches of calls and reads their results."""

from __future__ import annotations

import sys
import time

import pyrite.api as api


def run(uri: str) -> None:
    with api.Proxy(uri) as calc:
        batch = api.BatchProxy(calc)
        for n in range(1, 6):
            batch.multiply(n, 7)
        batch.add_to_total(10)
        results = list(batch())  # one round trip for all six calls
        print("batch results:", results)

        batch = api.BatchProxy(calc)
        batch.divide(1, 4)
        batch.divide(1, 0)
        batch.multiply(2, 2)  # never runs: the batch stops at the first error
        results = batch()
        print("first result:", next(results))
        try:
            next(results)
        except ZeroDivisionError as exc:
            print("second result raised:", repr(exc))

        batch = api.BatchProxy(calc)
        for _ in range(5):
            batch.add_to_total(1)
        print("oneway batch returns:", batch(oneway=True))
        # the oneway batch runs in the background on the server; wait for it, boundedly
        deadline = time.monotonic() + 10
        while calc.total() < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        print("total after the oneway batch:", calc.total())


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python client.py PYRO:example.batch@host:port")
    run(sys.argv[1])


if __name__ == "__main__":
    main()
