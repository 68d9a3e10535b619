"""``AutoCleaner``: removes registrations whose server has gone away.

Off by default.  With ``config.NS_AUTOCLEAN`` set to a number of seconds (at
least ``AutoCleaner.min_autoclean_value``, 3), a name server daemon starts one
of these threads.  Every ``NS_AUTOCLEAN`` seconds it opens (and closes) a
connection to the location of every registered ``PYRO:`` URI, as Pyro5 does;
a name that has been unreachable for ``max_unreachable_time`` seconds (20) is
removed.  The checks run on at most ``MAX_PARALLEL_CHECKS`` threads, each with
a connect timeout of ``config.COMMTIMEOUT`` (5 s when that is 0), so a round
over many dead hosts stays bounded.  PYRONAME/PYROMETA registrations, the
name servers' own entries and daemon objects are never checked.  Of a replica
set, the URI ``list()`` shows is checked, and only that URI is removed.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyrite.core import plugins
from pyrite.core.config import config
from pyrite.core.errors import PyroError
from pyrite.core.uri import DAEMON_NAME, URI

from .registry import is_protected

__all__ = ["AutoCleaner", "MAX_PARALLEL_CHECKS"]

log = logging.getLogger("pyrite.nameserver")

MAX_PARALLEL_CHECKS = 8


def _reachable(uri_text: str, timeout: float) -> bool | None:
    """True if something accepts a connection at the URI's location; None if not checkable."""
    try:
        uri = URI(uri_text)
    except PyroError:
        return None
    if uri.protocol != "PYRO" or not uri.location:
        return None
    try:
        conn = plugins.get_transport(uri.location).connect(uri.location, timeout)
    except (OSError, PyroError):
        return False
    try:
        conn.close()
    except (OSError, PyroError):
        pass
    return True


class AutoCleaner(threading.Thread):
    """The thread that checks the registrations of one ``NameServer`` now and then."""

    min_autoclean_value = 3
    max_unreachable_time = 20.0
    loop_delay = 2.0
    override_autoclean_min = False  # tests lower the minimum

    def __init__(self, nameserver: Any) -> None:
        if config.NS_AUTOCLEAN <= 0:
            raise ValueError("NS_AUTOCLEAN must be > 0 to use the autocleaner")
        if not self.override_autoclean_min and config.NS_AUTOCLEAN < self.min_autoclean_value:
            raise ValueError(f"NS_AUTOCLEAN cannot be smaller than {self.min_autoclean_value}")
        super().__init__(name="pyrite-ns-autoclean", daemon=True)
        self.nameserver = nameserver
        self.period = float(config.NS_AUTOCLEAN)
        self.timeout = float(config.COMMTIMEOUT or 5.0)
        self.last_cleaned = time.monotonic()
        self.unreachable: dict[str, float] = {}  # name -> since when
        self._stopped = threading.Event()

    @property
    def stop(self) -> bool:
        """Set to True (as in Pyro5) to end the thread after its current round."""
        return self._stopped.is_set()

    @stop.setter
    def stop(self, value: bool) -> None:
        if value:
            self._stopped.set()
        else:
            self._stopped.clear()

    def run(self) -> None:
        while not self._stopped.wait(self.loop_delay):
            if time.monotonic() - self.last_cleaned < self.period:
                continue
            try:
                self.clean()
            except Exception:  # the cleaner must outlive any one bad round (e.g. a closed storage)
                log.exception("autoclean round failed")
            self.last_cleaned = time.monotonic()

    def clean(self) -> list[str]:
        """One round: check every registration, remove the ones unreachable for too long.
        Returns the names removed."""
        entries = {
            name: uri for name, uri in self.nameserver.list().items() if name != DAEMON_NAME and not is_protected(name)
        }
        if not entries:
            self.unreachable.clear()
            return []
        with ThreadPoolExecutor(
            max_workers=min(MAX_PARALLEL_CHECKS, len(entries)), thread_name_prefix="pyrite-ns-autoclean-check"
        ) as pool:
            results = dict(zip(entries, pool.map(lambda u: _reachable(u, self.timeout), entries.values())))
        now = time.monotonic()
        removed = []
        for name in list(self.unreachable):
            if name not in entries:
                del self.unreachable[name]
        for name, ok in results.items():
            if self._stopped.is_set():
                break
            if ok is None or ok:
                self.unreachable.pop(name, None)
                continue
            since = self.unreachable.setdefault(name, now)
            if now - since >= self.max_unreachable_time:
                log.info("autoclean: removing %s; no connection to %s for %.0f s", name, entries[name], now - since)
                del self.unreachable[name]
                if self._remove_if_unchanged(name, entries[name]):
                    removed.append(name)
        return removed

    def _remove_if_unchanged(self, name: str, uri: str) -> bool:
        # the name may have been registered again (to a live server) while we were checking:
        # only this URI goes (for a replica set, only this replica)
        with self.nameserver.lock:
            return bool(self.nameserver._store.remove_entry(name, uri) == 1)
