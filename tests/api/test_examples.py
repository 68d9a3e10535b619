"""Every example runs, in one process, to completion on loopback, and prints what it should."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

# example folder -> patterns its `python run.py` output must contain
EXPECTED = {
    "greeting": [
        r"Server ready at PYRO:example\.greeting@127\.0\.0\.1:\d+",
        r"Hello, Alice\. Here is your fortune message",
        r"The server refused: ValueError\('a fortune needs a name'\); remote traceback has [1-9]\d* lines",
    ],
    "nameserver": [
        r"Name server running at PYRO:Pyro\.NameServer@127\.0\.0\.1:\d+",
        r"names under 'example\.': example\.thermometer\.attic, example\.thermometer\.kitchen",
        r"attic metadata: class:thermometer, room:attic",
        r"thermometers by metadata: 2",
        r"by name: kitchen: 21\.5 C",
        r"by metadata: attic: 14\.0 C",
    ],
    "callbacks": [
        r"\[callback\] backup: step 1/3",
        r"\[callback\] backup: step 3/3",
        r"\[callback\] backup: finished",
        r"backup: 3 steps done",
        r"the listener raised ZeroDivisionError",
    ],
    "streaming": [
        r"countdown: 5 4 3 2 1",
        r"first squares of an endless stream: \[1, 4, 9, 16, 25, 36\]",
        r"line: first line\nline: second line\nline: third line",
    ],
    "batch": [
        r"batch results: \[7, 14, 21, 28, 35, 10\]",
        r"first result: 0\.25",
        r"second result raised: ZeroDivisionError\(",
        r"oneway batch returns: None",
        r"total after the oneway batch: 15",
    ],
    "custom-serialization": [
        rf"{name} +scale -> Rectangle\(width=20, height=30\) \(Rectangle\), total area 601"
        for name in ("serpent", "json", "msgpack")
    ],
    "unix-socket": [
        r"Server ready at PYRO:example\.unixsocket@\./u:\S+example\.sock",
        r"echo from process \d+: hello over a unix socket",
        r"socket file removed: True",
    ],
    "scale-out": [
        r"Redis-protocol server on 127\.0\.0\.1:\d+ \(AOF on\)",
        r"name servers sharing redis://127\.0\.0\.1:\d+/0: 3 live",
        r"the clients reach: replica-A, replica-B",
        r"killed name server 1 and replica-A with kill -9",
        r"calls right after: replica-B replica-B replica-B replica-B",
        r"after the leases ran out: 2 name servers, 1 replica",
        r"a new client via name server 2: replica-B",
        r"everything stopped",
    ],
    "asyncio": [
        r"Server ready at PYRO:example\.asyncio@127\.0\.0\.1:\d+",
        r"name: the example library",
        r"one call: book 7",
        r"shelf: book 0, book 1, book 2",
        r"100 concurrent calls: 100 distinct titles, first 'book 0', last 'book 99'",
        r"visitors: 2",
        r"SharedProxy from 4 threads: 40 calls, one connection",
    ],
    "third-party-serializer": [
        r"example-repr +id \d+ +from pyrite-example-serializer",
        r"the client speaks: example-repr",
        r"the server saw serializer id (\d+), which is example-repr",
        r"result: \{'answer': 42, 'items': \(1, 2, 3\)\}",
    ],
}


# scripts beside an example folder's server/client/run trio: (folder, script, args) -> patterns
OTHER_SCRIPTS = {
    ("asyncio", "async_daemon.py", "--demo"): [
        r"Ready\. Object uri = PYRO:example\.kitchen@127\.0\.0\.1:\d+",
        r"10 dishes in \d+\.\d s, at most ([5-9]|10) on the stove at once",  # async calls run at once
        r"menu: soup, bread, pie",
        r"inventory: pyrite-worker\S* counted 12 eggs",  # a plain method, on a worker thread
        r"oneway order returned in 0\.0\d s",
        r"orders taken: \['tea'\]",
    ],
}


def run_example(folder: str, script: str = "run.py", *args: str, timeout: float = 45) -> str:
    proc = subprocess.run(
        [sys.executable, script, *args], cwd=EXAMPLES / folder, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{folder}/{script} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_every_example_folder_is_tested() -> None:
    folders = {p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    # the plugin is a distribution, not a runnable example; third-party-serializer runs it
    assert folders - {"plugin-serializer"} == set(EXPECTED) | {folder for folder, _, _ in OTHER_SCRIPTS}


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_example_has_readme_and_scripts(folder: str) -> None:
    base = EXAMPLES / folder
    assert (base / "README.md").read_text().startswith(f"# {folder}")
    for script in ("server.py", "client.py", "run.py"):
        assert (base / script).is_file(), script


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_example_runs_in_one_process(folder: str) -> None:
    out = run_example(folder)
    for pattern in EXPECTED[folder]:
        assert re.search(pattern, out), f"{pattern!r} not in output of {folder}:\n{out}"
    assert out.rstrip().endswith("Done.")


class _Process:
    """A long-running example process (a server, a name server); its output is read in a thread."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output = ""
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.output += line
                self._changed.notify_all()
        with self._changed:
            self.output += "<exited>"
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first match of pattern in the output, waiting for it at most timeout seconds."""
        with self._changed:
            found = self._changed.wait_for(
                lambda: re.search(pattern, self.output) or "<exited>" in self.output, timeout
            )
            match = re.search(pattern, self.output)
        assert found and match, f"{pattern!r} not in output:\n{self.output}"
        return match

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _server(folder: str, *args: str) -> _Process:
    return _Process(["server.py", *args], EXAMPLES / folder)


@pytest.mark.parametrize(
    "folder",
    ["greeting", "callbacks", "streaming", "batch", "custom-serialization", "third-party-serializer", "asyncio"],
)
def test_server_and_client_as_separate_processes(folder: str) -> None:
    server = _server(folder)
    try:
        uri = server.wait_for(r"Object uri = (\S+)").group(1)
        assert uri.startswith("PYRO:example.")
        out = run_example(folder, "client.py", uri)
    finally:
        server.stop()
    client_patterns = [p for p in EXPECTED[folder] if "Server ready" not in p]
    for pattern in client_patterns:
        assert re.search(pattern, out), f"{pattern!r} not in client output:\n{out}"


def test_unix_socket_server_and_client_as_separate_processes(tmp_path: Path) -> None:
    path = tmp_path / "example.sock"
    server = _server("unix-socket", str(path))
    try:
        uri = server.wait_for(r"Object uri = (\S+)").group(1)
        assert uri == f"PYRO:example.unixsocket@./u:{path}"
        out = run_example("unix-socket", "client.py", uri)
        assert re.search(rf"echo from process {server.proc.pid}: hello over a unix socket", out)
    finally:
        server.stop()


def test_nameserver_example_with_the_pyrite_ns_command() -> None:
    # the README's three terminals: the name server command, the server, the client
    ns = _Process(["-m", "pyrite.nameserver", "-n", "127.0.0.1", "-p", "0", "-x"], EXAMPLES / "nameserver")
    try:
        port = ns.wait_for(r"URI = PYRO:Pyro\.NameServer@127\.0\.0\.1:(\d+)").group(1)
        server = _server("nameserver", "127.0.0.1", port)
        try:
            server.wait_for(r"Ready\.")
            out = run_example("nameserver", "client.py", "127.0.0.1", port)
        finally:
            server.stop()
    finally:
        ns.stop()
    for pattern in EXPECTED["nameserver"][1:]:
        assert re.search(pattern, out), f"{pattern!r} not in client output:\n{out}"


def test_client_without_arguments_prints_usage() -> None:
    proc = subprocess.run(
        [sys.executable, "client.py"], cwd=EXAMPLES / "greeting", capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0 and "usage: python client.py" in proc.stderr


@pytest.mark.parametrize("folder, script, args", sorted(OTHER_SCRIPTS))
def test_other_example_scripts(folder: str, script: str, args: str) -> None:
    out = run_example(folder, script, *args.split())
    for pattern in OTHER_SCRIPTS[folder, script, args]:
        assert re.search(pattern, out), f"{pattern!r} not in output of {folder}/{script}:\n{out}"
    assert out.rstrip().endswith("Done.")
