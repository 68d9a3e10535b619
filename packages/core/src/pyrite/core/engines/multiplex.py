"""The multiplex engine (``config.SERVERTYPE = "multiplex"``): one thread serves everyone.

The thread running ``loop()`` waits on the listener and every client with a
``selectors`` selector.  A readable client is read without blocking
(``recv_some``) into its own protocol ``Session``, so a message that arrives in
pieces, or never completes, costs nothing but its buffer; a complete message
is handled right there, one at a time.  Calls therefore never run
concurrently: the objects served need no locking, but a slow call delays
every other client.

Replies are sent blocking.  A connection without a timeout
(``config.COMMTIMEOUT`` 0) gets ``SEND_TIMEOUT`` seconds, so a client that
stops reading its replies stalls the loop for that long at most and then
loses its connection.
"""

from __future__ import annotations

from typing import Any

from ..interfaces import DaemonHost
from .base import Client, Incoming, SelectorEngine

SEND_TIMEOUT = 60.0


class MultiplexEngine(SelectorEngine):
    """Server engine for SERVERTYPE "multiplex": single-threaded, selector based.

    Construct as ``MultiplexEngine(host, listener)``; see the module docstring.
    """

    servertype = "multiplex"

    def __init__(self, host: DaemonHost, listener: Any) -> None:
        super().__init__(host, listener)

    def _prepare(self, client: Client) -> None:
        try:
            if client.raw.timeout is None:
                client.raw.timeout = SEND_TIMEOUT
        except Exception:
            pass

    def _on_readable(self, client: Client) -> None:
        try:
            messages = self._read_messages(client)
        except Exception as exc:
            self._log_failure(client, exc)
            self._drop(client)
            return
        if not messages:
            return
        # busy: a shutdown from inside this call must leave the connection open for the reply
        client.busy = True
        self._unpark(client, messages, registered=True)

    def _unpark(self, client: Client, pending: list[Incoming], registered: bool = False) -> None:
        if not self._serve_messages(client, pending):
            return  # dropped or parked
        del pending
        client.busy = False
        if self._closed:
            self._drop(client)
        elif not registered:
            self._register(client)

    def _housekeep(self) -> None:
        self._run_housekeeping()


Engine = MultiplexEngine
