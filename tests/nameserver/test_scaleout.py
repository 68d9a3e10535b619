"""Scale-out faults with real processes (issue 11): three ``pyrite-ns`` on one valkey-server,
kill -9 of a name server, of a publishing daemon, and of Redis itself (AOF on), and two name
servers racing a safe registration."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pyrite.core.client import Proxy
from pyrite.core.errors import NamingError
from pyrite.core.naming import locate_ns
from pyrite.core.uri import NAMESERVER_NAME
from pyrite.nameserver.server import SELF_LEASE_TTL

from tests.nameserver.redisserver import free_port
from tests.nameserver.test_processes import BCHOST, NameServerProcess
from tests.support import wait_for


@pytest.fixture
def processes():
    started: list[NameServerProcess] = []

    def start(command: list[str]) -> NameServerProcess:
        started.append(NameServerProcess(command))
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


def ns_command(url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pyrite.nameserver", "-n", "127.0.0.1", "-p", "0", "-s", url, *extra]


def proxy(uri) -> Proxy:
    p = Proxy(uri)
    p._pyroTimeout = 5.0
    return p


def test_three_name_servers_one_killed(processes, redis_server):
    bcport = free_port()
    procs = [processes(ns_command(redis_server.url, "--bchost", BCHOST, "--bcport", str(bcport))) for _ in range(3)]
    uris = [str(p.uri()) for p in procs]
    with proxy(uris[1]) as second, proxy(uris[2]) as third:
        assert sorted(str(u) for u in second.replicas(NAMESERVER_NAME)) == sorted(uris)
        assert sorted(second.list(prefix=NAMESERVER_NAME + ".").values()) == sorted(uris)
        second.register("app.svc", "PYRO:svc@127.0.0.1:1", metadata={"app"})
        procs[0].kill9()
        killed = time.monotonic()
        # clients that located another name server keep working
        assert str(third.lookup("app.svc")) == "PYRO:svc@127.0.0.1:1"
        third.register("app.more", "PYRO:more@127.0.0.1:2")
        assert str(second.lookup("app.more")) == "PYRO:more@127.0.0.1:2"
        # the dead one drops out of Pyro.NameServer within its lease
        assert wait_for(
            lambda: (
                len(second.replicas(NAMESERVER_NAME)) == 2
                and uris[0] not in second.list(prefix=NAMESERVER_NAME).values()
            ),
            timeout=SELF_LEASE_TTL + 2,
        )
        assert time.monotonic() - killed < SELF_LEASE_TTL + 1.0
        assert uris[0] not in [str(u) for u in second.replicas(NAMESERVER_NAME)]
        assert uris[0] not in second.list(prefix=NAMESERVER_NAME).values()
        # and whatever a client looks up, it lands on a live one
        for _ in range(4):
            with proxy(second.lookup(NAMESERVER_NAME)) as ns:
                ns.ping()
    # discovery finds a live name server (by broadcast; the dead one cannot answer)
    for _ in range(3):
        with locate_ns(port=bcport) as ns:
            assert str(ns._pyroUri) in uris[1:]
            assert str(ns.lookup("app.svc")) == "PYRO:svc@127.0.0.1:1"


PUBLISHER = textwrap.dedent(
    """
    import sys
    from pyrite.core.daemon import Daemon
    from pyrite.core.exposure import expose

    @expose
    class Service:
        def where(self):
            return sys.argv[2]

    daemon = Daemon(host="127.0.0.1", port=0)
    uri = daemon.publish(Service(), "app.replicated", ttl=float(sys.argv[3]), replica=True, ns=sys.argv[1])
    print("PUBLISHED", uri, flush=True)
    daemon.requestLoop()
    """
)


def test_a_killed_daemon_disappears_from_every_name_server(processes, redis_server):
    procs = [processes(ns_command(redis_server.url, "-x")) for _ in range(3)]
    uris = [p.uri() for p in procs]
    ttl = 2.0
    publishers = [processes([sys.executable, "-c", PUBLISHER, str(uris[i]), f"replica{i}", str(ttl)]) for i in range(2)]
    published = [p.wait_for(r"^PUBLISHED (\S+)$").group(1) for p in publishers]
    with proxy(uris[0]) as first, proxy(uris[1]) as second, proxy(uris[2]) as third:
        assert sorted(str(u) for u in third.replicas("app.replicated")) == sorted(published)
        time.sleep(ttl * 1.5)  # past the first lease: it was renewed
        assert len(first.replicas("app.replicated")) == 2
        with Proxy("PYRONAME:app.replicated@" + f"{uris[1].host}:{uris[1].port}") as svc:
            assert svc.where() in ("replica0", "replica1")
        publishers[0].kill9()
        killed = time.monotonic()
        for ns in (first, second, third):
            assert wait_for(lambda ns=ns: [str(u) for u in ns.replicas("app.replicated")] == [published[1]], ttl + 2)
        assert time.monotonic() - killed < ttl + 1.0
        # a clean stop of the other removes its URI at once, and with it the name
        publishers[1].proc.terminate()
        publishers[1].proc.wait(timeout=10)
    time.sleep(0.2)


def test_redis_restart_keeps_every_acknowledged_registration(processes, redis_server):
    ns_proc = processes(ns_command(redis_server.url, "-x"))
    uri = ns_proc.uri()
    done = threading.Event()
    acknowledged: list[str] = []

    def writer() -> None:
        with proxy(uri) as ns:
            i = 0
            while not done.is_set():
                try:
                    ns.register(f"durable.{i}", f"PYRO:o{i}@127.0.0.1:1", metadata={f"t{i % 3}"})
                    acknowledged.append(f"durable.{i}")
                except NamingError:
                    time.sleep(0.05)  # Redis is down: not acknowledged, tried again under a new name
                i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert wait_for(lambda: len(acknowledged) > 50, timeout=20)
        redis_server.kill()  # kill -9 in the middle of the writes
        time.sleep(0.5)
        redis_server.start()  # same port and directory: the AOF is replayed
        count = len(acknowledged)
        assert wait_for(lambda: len(acknowledged) > count + 20, timeout=20)  # the name server reconnected
    finally:
        done.set()
        thread.join(20)
    with proxy(uri) as ns:
        names = ns.list()
        missing = [name for name in acknowledged if name not in names]
        assert missing == []
        assert set(ns.yplookup(meta_all=["t1"], return_metadata=False)) >= {
            n for n in acknowledged if int(n.split(".")[1]) % 3 == 1
        }
        # its own entries came back by themselves
        assert wait_for(lambda: len(ns.replicas(NAMESERVER_NAME)) == 1, timeout=SELF_LEASE_TTL + 2)


RACER = textwrap.dedent(
    """
    import sys, time
    from pyrite.core.client import Proxy
    from pyrite.core.errors import NamingError
    ns = Proxy(sys.argv[1])
    ns._pyroBind()
    start = float(sys.argv[3])
    while time.time() < start:
        time.sleep(0.001)
    won = []
    for i in range(int(sys.argv[4])):
        try:
            ns.register(f"race.{i}", "PYRO:" + sys.argv[2] + "@127.0.0.1:1", safe=True)
            won.append(str(i))
        except NamingError:
            pass
    print("WON", ",".join(won), flush=True)
    """
)


def test_two_name_servers_racing_a_safe_registration(processes, redis_server):
    uris = [processes(ns_command(redis_server.url, "-x")).uri() for _ in range(2)]
    rounds = 200
    start = time.time() + 2.0
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(uris[i]), f"racer{i}", str(start), str(rounds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [r.communicate(timeout=60)[0] for r in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait(timeout=10)
    won = [set(filter(None, out.split("WON", 1)[1].strip().split(","))) for out in outputs]
    assert won[0].isdisjoint(won[1])
    assert len(won[0]) + len(won[1]) == rounds  # every name went to exactly one of them
    with proxy(uris[0]) as ns:
        for i in range(rounds):
            winner = "racer0" if str(i) in won[0] else "racer1"
            assert str(ns.lookup(f"race.{i}")) == f"PYRO:{winner}@127.0.0.1:1"
