"""Run the Unix-socket example in one process, with the socket in a temporary folder."""

from __future__ import annotations

import os
import tempfile
import threading

import client
import server


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "example.sock")
        daemon, uri = server.make_daemon(path)
        print("Server ready at", uri)
        thread = threading.Thread(target=daemon.requestLoop, daemon=True)
        thread.start()
        try:
            client.run(str(uri))
        finally:
            daemon.shutdown()
            thread.join(10)
            daemon.close()
        print("socket file removed:", not os.path.exists(path))
    print("Done.")


if __name__ == "__main__":
    main()
