"""Benchmark client process: runs workloads of one library on command.

Usage: ``python _worker.py LIBRARY CONFIG_JSON``

Reads one JSON command per line on stdin, answers one JSON line on stdout:

- ``{"cmd": "prepare", "workload": W, "uri": U, "serializer": S, "size": N, "threads": T}``:
  connect, check the workload gives the right answer, warm up; answers
  ``{"ok": true}``.  ``size`` is the payload size for echo and the calls per
  batch for batch (default 100); with ``threads`` > 1 the process runs T
  client threads, each with its own proxy.
- ``{"cmd": "go", "start": T, "duration": D}``: wait until monotonic time T
  (shared by all processes on the host), run the workload until T + D, answer
  ``{"ok": true, "ops": n, "units": u, "t0": ..., "t1": ..., "cpu": s}``;
  ``units`` is what the row counts (calls, or payload bytes for echo), ``cpu``
  the CPU seconds this process used during the run.
- ``{"cmd": "quit"}`` or EOF: exit.

Any failure answers ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback

import _aio
import _libs

MAX_LIFETIME = 900.0
BATCH_SIZE = 100
WARMUP_SECONDS = 0.15


class Workload:
    """One kind of client traffic against the Bench object."""

    def __init__(self, lib, kind: str, uri: str, serializer: str, size: int) -> None:
        self.lib, self.kind, self.uri, self.serializer = lib, kind, uri, serializer
        self.payload: bytes | str = os.urandom(size) if kind == "echo" else b""
        if kind == "echo" and serializer == "json":
            # JSON has no bytes type (neither library sends bytes with it): echo text instead
            self.payload = os.urandom(size // 2).hex()
        self.batch_size = size or BATCH_SIZE
        self.proxy = None
        if kind != "connect":
            self.proxy = self._new_proxy()
            self.proxy._pyroBind()

    def _new_proxy(self):
        proxy = self.lib.Proxy(self.uri)
        proxy._pyroSerializer = self.serializer
        return proxy

    def check(self) -> None:
        """One round of the workload with its answer checked, so we never time a broken path."""
        if self.kind in ("call", "oneway", "connect"):
            self.step()
            answer = self.proxy.ping(7) if self.proxy else None
            assert self.proxy is None or answer == 7, answer
        elif self.kind == "batch":
            batch = self.lib.BatchProxy(self.proxy)
            for i in range(self.batch_size):
                batch.ping(i)
            results = list(batch())
            assert results == list(range(self.batch_size)), results[:5]
        elif self.kind == "echo":
            answer = self.proxy.echo(self.payload)
            if isinstance(answer, dict):  # serpent's bytes are base64 in a dict, in both libraries
                import serpent

                answer = serpent.tobytes(answer)
            assert answer == self.payload, "echo returned different bytes"
        else:
            raise ValueError(f"unknown workload {self.kind!r}")

    def step(self) -> int:
        """Do one unit of the workload; return how many units it counted."""
        kind = self.kind
        if kind == "call":
            self.proxy.ping(42)
            return 1
        if kind == "oneway":
            self.proxy.fire(42)
            return 1
        if kind == "batch":
            batch = self.lib.BatchProxy(self.proxy)
            for _ in range(self.batch_size):
                batch.ping(42)
            for _ in batch():
                pass
            return self.batch_size
        if kind == "echo":
            self.proxy.echo(self.payload)
            return len(self.payload)
        if kind == "connect":
            proxy = self._new_proxy()
            proxy.ping(42)
            proxy._pyroRelease()
            return 1
        raise ValueError(f"unknown workload {kind!r}")

    def warm_up(self, seconds: float) -> None:
        if self.kind != "echo":  # for echo, check() was a full-size call already
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                self.step()
        if self.kind == "oneway":
            self.proxy.ping(0)

    def run(self, start: float, duration: float) -> dict:
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        step = self.step
        deadline = start + duration
        ops = units = 0
        cpu0 = time.process_time()
        t0 = time.monotonic()
        while True:
            units += step()
            ops += 1
            if time.monotonic() >= deadline:
                break
        if self.kind == "oneway":
            # oneway calls are only sent; a normal call after them returns once the
            # server has read every one of them (one connection, in order).
            self.proxy.ping(0)
        t1 = time.monotonic()
        cpu = time.process_time() - cpu0
        return {"ops": ops, "units": units, "t0": t0, "t1": t1, "cpu": cpu}

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy._pyroRelease()
            self.proxy = None


class ThreadedWorkload:
    """The same workload on several client threads of this process, each with its own proxy."""

    def __init__(self, lib, kind: str, uri: str, serializer: str, size: int, threads: int) -> None:
        self.kind = kind
        self.parts = [Workload(lib, kind, uri, serializer, size) for _ in range(threads)]
        for part in self.parts:
            # a proxy belongs to the thread that uses it (Pyro5's rule, both libraries)
            if part.proxy is not None and hasattr(part.proxy, "_pyroClaimOwnership"):
                part.proxy._pyroRelease()

    def _each(self, method: str, *args) -> list:
        results: list = [None] * len(self.parts)
        errors: list = []

        def work(i: int, part: Workload) -> None:
            try:
                if part.proxy is not None and hasattr(part.proxy, "_pyroClaimOwnership"):
                    part.proxy._pyroClaimOwnership()
                results[i] = getattr(part, method)(*args)
            except Exception:
                errors.append(traceback.format_exc(limit=6))

        threads = [threading.Thread(target=work, args=(i, p)) for i, p in enumerate(self.parts)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        if errors:
            raise RuntimeError(errors[0])
        return results

    def check(self) -> None:
        self._each("check")

    def warm_up(self, seconds: float) -> None:
        self._each("warm_up", seconds)

    def run(self, start: float, duration: float) -> dict:
        cpu0 = time.process_time()
        parts = self._each("run", start, duration)
        cpu = time.process_time() - cpu0
        return {
            "ops": sum(p["ops"] for p in parts),
            "units": sum(p["units"] for p in parts),
            "t0": min(p["t0"] for p in parts),
            "t1": max(p["t1"] for p in parts),
            "cpu": cpu,
        }

    def close(self) -> None:
        for part in self.parts:
            if part.proxy is not None and hasattr(part.proxy, "_pyroClaimOwnership"):
                part.proxy._pyroClaimOwnership()
            part.close()


def main() -> None:
    libname, settings = sys.argv[1], json.loads(sys.argv[2])
    killer = threading.Timer(MAX_LIFETIME, os._exit, (3,))
    killer.daemon = True
    killer.start()

    def answer(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        lib = _libs.load(libname)
        _libs.configure(lib, settings)
    except Exception as exc:
        answer({"ok": False, "error": f"cannot load {libname}: {exc!r}"})
        return
    answer({"ok": True, "version": lib.version})
    workload: Workload | ThreadedWorkload | None = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["cmd"] == "quit":
                break
            if command["cmd"] == "prepare" and command["workload"] in _aio.KINDS:
                if workload:
                    workload.close()
                workload = _aio.make(lib, command["workload"], command["uri"], command["serializer"])
                workload.check()
                workload.warm_up(command.get("warmup", WARMUP_SECONDS))
                answer({"ok": True})
            elif command["cmd"] == "prepare":
                if workload:
                    workload.close()
                args = (lib, command["workload"], command["uri"], command["serializer"], command.get("size", 0))
                threads = command.get("threads", 1)
                workload = ThreadedWorkload(*args, threads) if threads > 1 else Workload(*args)
                workload.check()
                workload.warm_up(command.get("warmup", WARMUP_SECONDS))
                answer({"ok": True})
            elif command["cmd"] == "go":
                assert workload is not None, "go before prepare"
                result = workload.run(command["start"], command["duration"])
                workload.close()
                workload = None
                answer({"ok": True, **result})
            else:
                raise ValueError(f"unknown command {command['cmd']!r}")
        except Exception:
            if workload:
                try:
                    workload.close()
                except Exception:
                    pass
                workload = None
            answer({"ok": False, "error": traceback.format_exc(limit=6)})
    os._exit(0)


if __name__ == "__main__":
    main()
