"""Issue 8, item 5: a client that never reads its replies costs its own connection only.

It pipelines requests for large results and reads nothing.  Multiplex: the replies wait
in its output buffer (capped by MAX_OUTPUT_BUFFER), the loop never blocks, the
connection is closed; thread: its sends have a deadline (SEND_TIMEOUT).  Another
client's p99 stays under 0.5 s throughout.
"""

from __future__ import annotations

import socket
import time

from .conftest import JSON, MSG_CONNECTOK, LegitClient, connect_request, invoke, read_message, wait_until


def test_client_not_reading_replies(server):
    proc = server(MAX_OUTPUT_BUFFER=1024 * 1024, SEND_TIMEOUT=1.0)
    hostile = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hostile.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hostile.settimeout(5.0)
    try:
        hostile.connect(proc.address)
        hostile.sendall(connect_request(serializer=JSON))
        assert read_message(hostile)[0] == MSG_CONNECTOK
        with LegitClient(proc, interval=0.01) as legit:
            requests = b"".join(invoke("big", [200_000], seq=i) for i in range(1, 201))
            hostile.sendall(requests)
            time.sleep(2.0)
        legit.check(p99_bound=0.5, min_calls=30)
        # the server gave up on the hostile connection: reading now ends in EOF (or a reset)
        assert _closed_eventually(hostile, 5.0)
        assert proc.alive()
    finally:
        hostile.close()
    with proc.proxy() as proxy:
        assert wait_until(lambda: proxy.echo("after") == "after", 2.0)


def _closed_eventually(sock: socket.socket, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1024 * 1024)
        except socket.timeout:
            return False
        except OSError:
            return True
        if not chunk:
            return True
        got += len(chunk)
    return False
