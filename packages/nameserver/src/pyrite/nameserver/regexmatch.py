"""Regex filtering of names with a bound on time, for ``list(regex=...)`` and ``remove(regex=...)``.

A client sends the pattern, so it may be hostile: ``(a+)+$`` or ``(.*)*x``
against a long name backtracks for hours.  Python's ``re`` has no timeout, and
it holds the GIL while it matches, so a match running in a thread of the name
server would freeze every other thread too.  pyrite therefore does this:

1. The pattern is at most ``MAX_PATTERN_LENGTH`` characters and must compile;
   otherwise the caller gets a ``NamingError`` (an invalid regex was a
   ``NamingError`` in Pyro5 too).
2. The name server copies the names under its lock and matches *outside* it,
   so lookups and registrations never wait for a regex.
3. A pattern whose matching time is provably linear in the name length is
   matched right here: plain characters, character classes, anchors and groups
   of those, with at most one variable-length repeat, whose body is a
   fixed-width run of single characters.  That covers the usual
   ``test\\..*``, ``.+other..``, ``name.$``.
4. Any other pattern is matched in a separate Python process (a small pool of
   up to ``MAX_WORKERS`` reusable workers).  If the answer does not come within
   ``TIMEOUT`` seconds the worker is killed and the caller gets a
   ``NamingError``; the name server keeps serving throughout.  If no worker
   can be started (e.g. a frozen executable), such patterns are refused.

``filter_names(regex, names)`` also says whether the pattern matches the empty
string: such a pattern matches *every* name (``re.match`` is anchored at the
start only), which is what the name server's remove-all guard needs to know.
"""

from __future__ import annotations

import functools
import marshal
import queue
import re
import subprocess
import sys
import threading
from typing import Any

from pyrite.core.errors import NamingError

if sys.version_info >= (3, 11):
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _p  # type: ignore[attr-defined]
else:  # pragma: no cover - Python 3.10
    import sre_constants as _c
    import sre_parse as _p

__all__ = ["MAX_PATTERN_LENGTH", "TIMEOUT", "MAX_WORKERS", "compile_regex", "is_linear", "filter_names", "shutdown"]

MAX_PATTERN_LENGTH = 1000
"""Longest regex pattern a client may send, in characters."""

TIMEOUT = 2.0
"""Seconds a sandboxed match may take before it is killed and refused."""

MAX_WORKERS = 2
"""How many matcher processes may run at once; more concurrent queries wait (up to TIMEOUT)."""


def compile_regex(regex: Any) -> re.Pattern[str]:
    """Compile a client's pattern, or raise ``NamingError`` (``TypeError`` if it is not a str)."""
    if not isinstance(regex, str):
        raise TypeError("regex must be a str")
    if len(regex) > MAX_PATTERN_LENGTH:
        raise NamingError(f"invalid regex: longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re.compile(regex)
    except (re.error, OverflowError, RecursionError) as exc:
        raise NamingError(f"invalid regex: {exc}") from None


# --- static analysis: which patterns cannot backtrack badly --------------------------------

_SINGLE_CHAR = frozenset((_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN))
_REPEATS = frozenset(
    op
    for op in (getattr(_c, "MAX_REPEAT", None), getattr(_c, "MIN_REPEAT", None), getattr(_c, "POSSESSIVE_REPEAT", None))
    if op is not None
)


def _fixed_width(items: Any) -> bool:
    """True if ``items`` is a run of single characters (possibly grouped), no repeats or branches."""
    for op, av in items:
        if op in _SINGLE_CHAR:
            continue
        if op is _c.SUBPATTERN and _fixed_width(av[-1]):
            continue
        return False
    return True


def _linear(items: Any, budget: list[int]) -> bool:
    for op, av in items:
        if op in _SINGLE_CHAR or op is _c.AT:
            continue
        if op is _c.SUBPATTERN:
            if not _linear(av[-1], budget):
                return False
        elif op in _REPEATS:
            low, high, body = av
            if not _fixed_width(body):
                return False
            if low != high:
                budget[0] -= 1
                if budget[0] < 0:
                    return False
        else:  # branches, back references, conditionals, lookarounds: leave them to the sandbox
            return False
    return True


@functools.lru_cache(maxsize=256)
def is_linear(regex: str, flags: int = 0) -> bool:
    """True if matching ``regex`` is linear in the length of the name (safe to run in-process)."""
    try:
        tree = _p.parse(regex, flags)
    except Exception:
        return False
    return _linear(tree, [1])


# --- the sandbox ------------------------------------------------------------------------------

_WORKER_CODE = r"""
import marshal, re, sys
read, write, flush = sys.stdin.buffer.read, sys.stdout.buffer.write, sys.stdout.buffer.flush
while True:
    head = read(4)
    if len(head) < 4:
        break
    pattern, names = marshal.loads(read(int.from_bytes(head, "big")))
    rx = re.compile(pattern)
    out = marshal.dumps([i for i, name in enumerate(names) if rx.match(name)])
    write(len(out).to_bytes(4, "big") + out)
    flush()
"""


class _Worker:
    """One matcher process, with a reader thread that hands its replies over a queue."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WORKER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        self.replies: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read_replies, name="pyrite-ns-regex-reader", daemon=True).start()

    def _read_replies(self) -> None:
        out = self.proc.stdout
        try:
            while out is not None:
                head = out.read(4)
                if len(head) < 4:
                    break
                size = int.from_bytes(head, "big")
                body = out.read(size)
                if len(body) < size:
                    break
                self.replies.put(body)
        except (OSError, ValueError):
            pass
        self.replies.put(None)

    def match(self, pattern: str, names: list[str], timeout: float) -> list[int]:
        payload = marshal.dumps((pattern, names))
        assert self.proc.stdin is not None
        self.proc.stdin.write(len(payload).to_bytes(4, "big") + payload)
        self.proc.stdin.flush()
        reply = self.replies.get(timeout=timeout)  # queue.Empty when the time is up
        if reply is None:
            raise OSError("regex worker ended unexpectedly")
        positions: list[int] = marshal.loads(reply)
        return positions

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5.0)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class _Pool:
    """Reusable matcher processes, at most MAX_WORKERS at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._slots = threading.BoundedSemaphore(MAX_WORKERS)
        self.unavailable: str | None = "frozen executable" if getattr(sys, "frozen", False) else None

    def match(self, pattern: str, names: list[str]) -> list[int]:
        if self.unavailable:
            raise NamingError(
                f"regex {pattern!r} is too complex to match here without a time bound "
                f"(no matcher process: {self.unavailable}); use a simpler pattern"
            )
        timeout = TIMEOUT
        if not self._slots.acquire(timeout=timeout):
            raise NamingError("the name server is busy with other regex queries; try again")
        try:
            for attempt in (1, 2):  # an idle worker may have died meanwhile: then once more with a new one
                with self._lock:
                    worker = self._idle.pop() if self._idle else None
                if worker is None:
                    try:
                        worker = _Worker()
                    except (OSError, ValueError) as exc:
                        raise NamingError(
                            f"regex {pattern!r} needs a matcher process, which cannot start: {exc}"
                        ) from None
                try:
                    result = worker.match(pattern, names, timeout)
                except queue.Empty:
                    worker.kill()
                    raise NamingError(f"regex {pattern!r} took longer than {timeout:g} s to match; refused") from None
                except (OSError, ValueError, EOFError) as exc:
                    worker.kill()
                    if attempt == 2:
                        raise NamingError(f"regex matching failed: {exc}") from None
                    continue
                with self._lock:
                    self._idle.append(worker)
                return result
            raise AssertionError("unreachable")
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


_pool = _Pool()


def filter_names(regex: str | re.Pattern[str], names: list[str]) -> tuple[list[str], bool]:
    """The names that ``regex`` matches (``re.match``: anchored at the start), and whether it
    matches every name (it matches the empty string).  Raises NamingError if refused."""
    rx = regex if isinstance(regex, re.Pattern) else compile_regex(regex)
    if is_linear(rx.pattern, rx.flags):
        match = rx.match
        return [name for name in names if match(name)], match("") is not None
    probe = list(names)
    probe.append("")
    hits = _pool.match(rx.pattern, probe)
    everything = bool(hits) and hits[-1] == len(names)
    if everything:
        hits.pop()
    return [names[i] for i in hits], everything


def shutdown() -> None:
    """Stop the idle matcher processes (new ones start when needed)."""
    _pool.shutdown()
