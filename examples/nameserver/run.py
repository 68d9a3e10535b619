"""Run the name server example in one process: name server, server and client."""

from __future__ import annotations

import threading

import client
import pyrite.api as api
import server


def main() -> None:
    # port 0: a free port; no broadcast responder, nothing leaves this machine
    ns_uri, ns_daemon, _ = api.start_ns(host="127.0.0.1", port=0, enableBroadcast=False)
    ns_host, ns_port = ns_uri.host, ns_uri.port
    print("Name server running at", ns_uri)
    ns_thread = threading.Thread(target=ns_daemon.requestLoop, daemon=True)
    ns_thread.start()
    try:
        daemon = server.make_daemon(ns_host, ns_port)
        thread = threading.Thread(target=daemon.requestLoop, daemon=True)
        thread.start()
        try:
            client.run(ns_host, ns_port)
        finally:
            daemon.shutdown()
            thread.join(10)
            daemon.close()
    finally:
        ns_daemon.shutdown()
        ns_thread.join(10)
        ns_daemon.close()
    print("Done.")


if __name__ == "__main__":
    main()
