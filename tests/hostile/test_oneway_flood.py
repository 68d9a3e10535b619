"""Issue 8, item 3: a oneway flood applies back-pressure to the flooding connection only.

A client sends far more slow oneway calls than the oneway queue holds; a legit client is
answered within 1 s all the while (the overflow never runs on the loop thread), and the
flood's calls still run, at the pace of the oneway threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from .conftest import FLAGS_ONEWAY, LegitClient, handshaked_socket, invoke, wait_until

FLOOD = 8000  # the pool's oneway backlog holds 2 x 64 calls here
PADDING = "p" * 4000  # 8,000 calls are ~32 MB: far more than socket buffers and a read turn (4 MB) hold


def _flood(sock: socket.socket, stop: threading.Event, sent: list[int]) -> None:
    sock.settimeout(0.5)
    for seq in range(1, FLOOD + 1):
        data = invoke("slow_oneway", [0.02, PADDING], flags=FLAGS_ONEWAY, seq=seq)
        while not stop.is_set():
            try:
                sock.sendall(data)
                break
            except socket.timeout:
                continue  # the server stopped reading us: that is the back-pressure
            except OSError:
                return
        if stop.is_set():
            return
        sent[0] = seq


def test_oneway_flood_leaves_other_clients_served(server):
    # a small pool, so that its backlog fills: the thread engine shares it with the oneway calls
    proc = server(ONEWAY_THREADS=2, THREADPOOL_SIZE=16, THREADPOOL_SIZE_MIN=2)
    flood_sock = handshaked_socket(proc.address)
    stop = threading.Event()
    sent = [0]
    flooder = threading.Thread(target=_flood, args=(flood_sock, stop, sent), daemon=True)
    flooder.start()
    try:
        assert wait_until(lambda: sent[0] >= 500, 5.0), "flood did not start"
        with LegitClient(proc, interval=0.02) as legit:
            time.sleep(2.5)
        in_flight = sent[0]
        legit.check(p99_bound=1.0, min_calls=5)
        assert max(legit.latencies) < 1.0, f"a legit call waited {max(legit.latencies):.2f} s"
        # the server stopped reading the flooder (back-pressure), it did not take all in at once
        assert in_flight < FLOOD, "the whole flood was read while the queue was full"
        with proc.proxy() as proxy:
            # more than the queue holds have run: the parked connection was resumed, nothing lost
            assert wait_until(lambda: proxy.count() > 150, 5.0), proxy.count()
        assert proc.alive()
    finally:
        stop.set()
        flooder.join(5.0)
        with contextlib.suppress(OSError):
            flood_sock.close()
    assert not flooder.is_alive()
