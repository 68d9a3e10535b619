"""Run the asyncio example in one process: the sync daemon in a thread, then the asyncio client."""

from __future__ import annotations

import threading

import client
import server


def main() -> None:
    daemon, uri = server.make_daemon()
    print("Server ready at", uri)
    thread = threading.Thread(target=daemon.requestLoop, daemon=True)
    thread.start()
    try:
        client.run(str(uri))
    finally:
        daemon.shutdown()
        thread.join(10)
        daemon.close()
    print("Done.")


if __name__ == "__main__":
    main()
