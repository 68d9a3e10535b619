"""What keeps a hostile or broken peer from costing more than its own connection (issue 8).

The selector engines use these pieces on their loop thread:

* ``max_connections()``: how many connections an engine admits
  (``config.MAX_CONNECTIONS``, or when that is 0 a figure derived from the
  process's descriptor limit, leaving headroom for files, the listener and
  the connections being refused).
* ``AcceptThrottle``: after a failed ``accept()`` (typically EMFILE, out of
  descriptors) the listener is not watched for a while, growing from 10 ms
  to 1 s while failures go on, and the failures are logged at most once a
  second, with a count, instead of once per turn of the loop.
* ``Limits`` and ``expired()``: the deadlines of an idle connection: the
  handshake (``config.HANDSHAKE_TIMEOUT``, counted from the accept, so it
  covers a TLS handshake as well), a frame once its first byte is in
  (``config.FRAME_TIMEOUT``), an optional idle timeout
  (``config.IDLE_TIMEOUT``) and, for output that waits for a peer that does
  not read, ``config.SEND_TIMEOUT``.  A value of 0 switches a deadline off.
* ``unsolicited_refusal()``: the bytes of a MSG_CONNECTFAIL for a client
  that is turned away before it said anything (Pyro5 clients accept it as the
  answer to their connect request).

The engine-neutral steps, used by the selector engines (``GuardMixin``) and
the asyncio engine alike: ``DeadlineClock`` (the timestamps of a client
record and ``note_read()``), ``admit()`` (the connection cap at accept) and
``close_expired()`` (one deadline sweep).
"""

from __future__ import annotations

import logging
import marshal
import selectors
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .. import protocol
from ..config import config

log = logging.getLogger("pyrite.core.engines")

__all__ = [
    "AcceptThrottle",
    "DeadlineClock",
    "GuardMixin",
    "Limits",
    "REFUSE_WAIT",
    "admit",
    "close_expired",
    "expired",
    "max_connections",
    "refusal_headroom",
    "sweep_interval",
    "unsolicited_refusal",
]

FALLBACK_FD_LIMIT = 4096  # when the descriptor limit cannot be read (or is unlimited)
REFUSE_WAIT = 2.0  # seconds a refused client has to send its connect request before it is just closed
ACCEPT_BACKOFF_MIN = 0.01
ACCEPT_BACKOFF_MAX = 1.0
ACCEPT_LOG_INTERVAL = 1.0
MARSHAL_ID = 2  # every Pyro5 peer can read a marshal string


def _fd_limit() -> int:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return FALLBACK_FD_LIMIT
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return FALLBACK_FD_LIMIT
    return int(soft)


def max_connections() -> int:
    """The number of client connections an engine admits before it refuses new ones.

    ``config.MAX_CONNECTIONS`` when positive; otherwise the soft RLIMIT_NOFILE
    minus an eighth of it (at least 32) for everything else the process opens.
    """
    configured = int(config.MAX_CONNECTIONS or 0)
    if configured > 0:
        return configured
    limit = _fd_limit()
    return max(8, limit - max(32, limit // 8))


def refusal_headroom(limit: int) -> int:
    """How many refused clients may wait at once for their CONNECTFAIL reply (beyond that: closed at once)."""
    return max(8, limit // 16)


class Limits(NamedTuple):
    """The deadlines in force, in seconds (None: off); read from config at every sweep."""

    handshake: float | None
    frame: float | None
    idle: float | None
    send: float | None

    @classmethod
    def current(cls) -> Limits:
        """The limits as config says now."""
        return cls(
            _positive(config.HANDSHAKE_TIMEOUT),
            _positive(config.FRAME_TIMEOUT),
            _positive(config.IDLE_TIMEOUT),
            _positive(config.SEND_TIMEOUT),
        )


def _positive(value: Any) -> float | None:
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def sweep_interval(limits: Limits) -> float:
    """How often the deadlines are checked: a quarter of the shortest one, between 50 ms and 1 s."""
    values = [v for v in limits if v is not None]
    shortest = min(values) if values else 4.0
    return min(1.0, max(0.05, shortest / 4))


def expired(client: Any, now: float, limits: Limits) -> str | None:
    """Why an idle client's connection must close now, or None.

    ``client`` is an engine's ``Client`` record (``since``, ``frame_start``,
    ``last_active``, ``refusing``, ``out`` and ``conn.handshaked``).
    """
    if client.refusing is not None:
        return "refused client sent no connect request" if now - client.since > REFUSE_WAIT else None
    out = client.out
    if out is not None and out.queued:
        if limits.send is not None and now - out.last_progress > limits.send:
            return f"peer did not read its replies for {limits.send:g} s (SEND_TIMEOUT)"
        return None  # not read while output waits; only the send deadline applies
    if not client.conn.handshaked:
        if limits.handshake is not None and now - client.since > limits.handshake:
            return f"no handshake within {limits.handshake:g} s (HANDSHAKE_TIMEOUT)"
    if client.frame_start is not None:
        if limits.frame is not None and now - client.frame_start > limits.frame:
            return f"message not complete within {limits.frame:g} s (FRAME_TIMEOUT)"
    elif limits.idle is not None and now - client.last_active > limits.idle:
        return f"idle for {limits.idle:g} s (IDLE_TIMEOUT)"
    return None


class DeadlineClock:
    """The timestamps ``expired()`` reads, kept by an engine's client record (a mixin).

    The record sets ``since``, ``last_active`` (both ``time.monotonic()`` at
    accept), ``frame_start = None`` and has a ``session``; after every read
    that brought data it calls ``note_read()``.
    """

    __slots__ = ("since", "last_active", "frame_start")

    session: Any

    def note_read(self) -> None:
        """Record that data arrived (for the frame and idle deadlines)."""
        self.last_active = now = time.monotonic()
        if not self.session.partial:
            self.frame_start = None
        elif self.frame_start is None:
            self.frame_start = now


def admit(raw: Any, count: int, refusing: Callable[[], int], owner: object) -> str | bool:
    """The connection cap, for a connection ``raw`` just accepted while ``count`` others are open.

    Returns "" to admit it, a refusal reason to answer its connect request with
    CONNECTFAIL (the engine keeps it, marked ``refusing``, until then or
    ``REFUSE_WAIT``), or False when it was already refused and closed here
    because ``refusing()`` (how many refused clients wait now; only asked when
    over the cap) leaves no room for another.
    """
    limit = max_connections()
    if count < limit:
        return ""
    reason = f"server has too many connections ({limit}, MAX_CONNECTIONS): try again later"
    if refusing() < refusal_headroom(limit):
        return reason
    try:
        send_some = getattr(raw, "send_some", None)
        if send_some is not None:
            send_some(unsolicited_refusal(reason))
    except Exception:
        pass  # it is being turned away anyway
    try:
        raw.close()
    except Exception:
        pass
    log.debug("%s: refused a connection at once: %s", owner, reason)
    return False


def close_expired(
    owner: object, clients: Iterable[Any], now: float, limits: Limits, drop: Callable[[Any], None]
) -> None:
    """One deadline sweep: ``drop`` every client of ``clients`` past a deadline (see ``expired``),
    logging one line for the lot (refused clients that never spoke are not counted)."""
    closed = 0
    first = ""
    for client in clients:
        reason = expired(client, now, limits)
        if reason is None:
            continue
        log.debug("%s: closing %r: %s", owner, client, reason)
        if client.refusing is None:
            closed += 1
            first = first or reason
        drop(client)
    if closed:
        log.info("%s: closed %d connection(s) past a deadline (e.g. %s)", owner, closed, first)


def unsolicited_refusal(reason: str) -> bytes:
    """A MSG_CONNECTFAIL (sequence 0, marshal) carrying ``reason``, for a client refused at accept."""
    msg = protocol.SendingMessage(
        protocol.MSG_CONNECTFAIL, 0, 0, MARSHAL_ID, marshal.dumps(reason), compress=False, corr_id=b"\0" * 16
    )
    return msg.data


class AcceptThrottle:
    """Back-off and rate-limited logging for a listener whose ``accept()`` keeps failing.

    Example (an engine's accept path)::

        try:
            raw = listener.accept()
        except CommunicationError as exc:
            pause = throttle.failed(exc)   # seconds not to watch the listener
            ...
        throttle.succeeded()
    """

    __slots__ = ("name", "backoff", "failures", "_last_log", "_last_error")

    def __init__(self, name: str) -> None:
        self.name = name
        self.backoff = 0.0
        self.failures = 0  # since the last log line
        self._last_log = 0.0
        self._last_error = ""

    def failed(self, exc: BaseException) -> float:
        """Count one failure, log if a second has passed since the last line; the pause to take."""
        self.failures += 1
        self._last_error = str(exc)
        self.backoff = ACCEPT_BACKOFF_MIN if not self.backoff else min(self.backoff * 2, ACCEPT_BACKOFF_MAX)
        self.flush_log(time.monotonic())
        return self.backoff

    def flush_log(self, now: float, force: bool = False) -> None:
        """Write the pending failure count if one is due (``force``: whenever any is pending)."""
        if self.failures and (force or now - self._last_log >= ACCEPT_LOG_INTERVAL):
            log.warning(
                "%s: accept failed %d time(s) in the last %.1f s (pausing up to %.2f s): %s",
                self.name,
                self.failures,
                min(now - self._last_log, 999.0) if self._last_log else 0.0,
                self.backoff,
                self._last_error,
            )
            self.failures = 0
            self._last_log = now

    def succeeded(self) -> None:
        """An accept worked: the next failure starts the back-off from the bottom again.

        Failures still uncounted are logged by the next due ``flush_log``, not now: a
        listener at the descriptor limit flips between success and failure quickly.
        """
        self.backoff = 0.0


class GuardMixin:
    """The deadline sweep, the connection cap and accept back-off of a selector engine
    (``base.SelectorEngine`` inherits it; everything runs on the loop thread)."""

    # provided by SelectorEngine
    _lock: threading.Lock
    _clients: set[Any]
    _listener: Any
    _selector: selectors.BaseSelector
    _closed: bool

    def _drop(self, client: Any) -> None:
        raise NotImplementedError

    def _unregister(self, client: Any) -> None:
        raise NotImplementedError

    def _watch_listener(self) -> None:
        raise NotImplementedError

    # ----- state

    def _init_guard(self) -> None:
        now = time.monotonic()
        self._accept_throttle = AcceptThrottle(f"{type(self).__name__} on {self._listener.location}")
        self._accept_resume: float | None = None
        self._next_sweep = now + sweep_interval(Limits.current())

    def _guard_due(self) -> float:
        """When the loop must look at the guard next (deadline sweep, listener pause)."""
        due = self._next_sweep
        if self._accept_resume is not None:
            due = min(due, self._accept_resume)
        return due

    def _guard_tick(self, now: float) -> None:
        if self._accept_resume is not None and now >= self._accept_resume:
            self._accept_resume = None
            if not self._closed:
                self._watch_listener()
        if self._accept_throttle.failures:
            self._accept_throttle.flush_log(now)
        if now >= self._next_sweep:
            self._sweep(now)

    # ----- accept

    def _accept_failed(self, exc: BaseException) -> None:
        pause = self._accept_throttle.failed(exc)
        try:
            self._selector.unregister(self._listener)
        except (KeyError, ValueError, OSError, RuntimeError):
            pass
        self._accept_resume = time.monotonic() + pause

    def _admission(self, raw: Any) -> str | bool:
        """See ``admit``."""
        with self._lock:
            count = len(self._clients)
        return admit(raw, count, self._refusing_count, self)

    def _refusing_count(self) -> int:
        with self._lock:
            return sum(1 for client in self._clients if client.refusing is not None)

    # ----- deadlines

    def _sweep(self, now: float) -> None:
        limits = Limits.current()
        self._next_sweep = now + sweep_interval(limits)
        with self._lock:
            idle = [client for client in self._clients if not client.busy and not client.gone]
        close_expired(self, idle, now, limits, self._drop)
