"""Hostile input against real daemons (SERVERTYPE "thread" and "multiplex") on loopback.

Raw sockets send garbage, wrong tags, versions and magic numbers, truncated
headers and frames, 1 GB declarations followed by silence or a hang-up, broken
annotation chunks, zip bombs, undeserializable payloads and requests before the
handshake.  Each costs at most its own connection: it gets a clear error or is
closed, and meanwhile a well-behaved client (Pyro5 5.17's Proxy or pyrite's)
keeps getting its calls served.  Idle and half-sent connections do not delay a
normal call.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
import zlib

import Pyro5.client
import Pyro5.protocol
import Pyro5.serializers
import pytest
from pyrite.core import protocol
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.exposure import expose
from Pyro5 import config as pyro5_config

from tests.daemons import running

HOST = "127.0.0.1"
WAIT = 5.0  # every socket wait in this module: generous, it only proves "not blocked"
JOIN = 10.0
GB = 1024**3
SERPENT = Pyro5.serializers.serializers["serpent"]


@expose
class Service:
    def add(self, a, b):
        return a + b

    def echo(self, value):
        return value


class Served:
    def __init__(self, daemon, uri):
        self.daemon = daemon
        self.uri = uri
        self.port = uri.port
        self.calls = 0

    def good_call(self):
        """A well-behaved client makes a call; alternately Pyro5's proxy and pyrite's."""
        self.calls += 1
        proxy = Pyro5.client.Proxy(str(self.uri)) if self.calls % 2 else Proxy(str(self.uri))
        proxy._pyroTimeout = WAIT
        with proxy:
            assert proxy.add(self.calls, 1) == self.calls + 1

    def connect(self):
        return socket.create_connection((HOST, self.port), timeout=WAIT)


@pytest.fixture(autouse=True)
def _pyro5_settings():
    saved = (pyro5_config.COMMTIMEOUT, pyro5_config.SERIALIZER)
    pyro5_config.COMMTIMEOUT = WAIT
    pyro5_config.SERIALIZER = "serpent"
    yield
    pyro5_config.COMMTIMEOUT, pyro5_config.SERIALIZER = saved


@contextlib.contextmanager
def serving(servertype):
    """A daemon of the given server type with its request loop in a thread (stopped, bounded, after)."""
    config.SERVERTYPE = servertype
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = WAIT
    daemon = Daemon(host=HOST)
    uri = daemon.register(Service(), "service")
    with running(daemon):
        yield Served(daemon, uri)


@pytest.fixture(params=["thread", "multiplex"])
def servertype(request):
    return request.param


@pytest.fixture
def served(servertype):
    with serving(servertype) as served:
        yield served


# -- wire helpers (independent of pyrite's framing code) ------------------------------------------


def header(
    msgtype=protocol.MSG_CONNECT,
    serializer_id=1,
    flags=0,
    seq=1,
    data_size=0,
    ann_size=0,
    tag=b"PYRO",
    version=502,
    magic=0x4DC5,
):
    return struct.pack(
        "!4sHBBHHII16sHH", tag, version, msgtype, serializer_id, flags, seq, data_size, ann_size, b"\0" * 16, 0, magic
    )


def message(msgtype, payload, serializer_id=1, flags=0, seq=1, annotations=b""):
    return header(msgtype, serializer_id, flags, seq, len(payload), len(annotations)) + annotations + payload


def connect_message(serializer=SERPENT, seq=0):
    return Pyro5.protocol.SendingMessage(
        Pyro5.protocol.MSG_CONNECT,
        0,
        seq,
        serializer.serializer_id,
        serializer.dumps({"handshake": "hello", "object": "service"}),
    ).data


def read_until_closed(sock, timeout=WAIT):
    """Everything the server sends until it closes the connection; fails if it stays open."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data
        except socket.timeout:
            pytest.fail(f"the server kept the connection open (got {data[:80]!r})")
        if not chunk:
            return data
        data += chunk
        if time.monotonic() > deadline:
            pytest.fail("the server kept sending and never closed")


def recv_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def read_message(sock):
    """One message: (type, flags, seq, serializer id, payload without annotations)."""
    sock.settimeout(WAIT)
    fields = struct.unpack("!4sHBBHHII16sHH", recv_exact(sock, 40))
    assert fields[0] == b"PYRO" and fields[1] == 502 and fields[10] == 0x4DC5
    msgtype, ser, flags, seq, size, ann = fields[2], fields[3], fields[4], fields[5], fields[6], fields[7]
    body = recv_exact(sock, size + ann)
    return msgtype, flags, seq, ser, body[ann:]


def parse_messages(data):
    out = []
    while data:
        fields = struct.unpack("!4sHBBHHII16sHH", data[:40])
        size, ann = fields[6], fields[7]
        out.append((fields[2], fields[4], fields[3], data[40 + ann : 40 + ann + size]))
        data = data[40 + ann + size :]
    return out


def handshaked(served):
    sock = served.connect()
    sock.sendall(connect_message())
    msgtype, _, _, ser, body = read_message(sock)
    assert msgtype == Pyro5.protocol.MSG_CONNECTOK, Pyro5.serializers.serializers_by_id[ser].loads(body)
    return sock


def connectfail_reason(data):
    [(msgtype, _, ser, body)] = parse_messages(data)
    assert msgtype == protocol.MSG_CONNECTFAIL
    return Pyro5.serializers.serializers_by_id[ser].loads(body)


def rss_bytes():
    """This process's resident memory (0 where /proc is missing: the memory check then passes)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


# -- before the handshake: refused and closed ----------------------------------------------------


def _bad_annotation_length():
    ann = b"CORR" + struct.pack("!I", 1000) + b"abcd"
    return header(data_size=0, ann_size=len(ann)) + ann


def _truncated_annotation_header():
    return header(data_size=0, ann_size=5) + b"CORR\0"


def _non_ascii_annotation_id():
    ann = b"\xff\xfe\xfd\xfc" + struct.pack("!I", 0)
    return header(data_size=2, ann_size=len(ann)) + ann + b"{}"


def _zip_bomb():
    bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)  # 64 MB out of ~64 KB
    return header(flags=protocol.FLAGS_COMPRESSED, data_size=len(bomb)) + bomb


def _not_zlib():
    return header(flags=protocol.FLAGS_COMPRESSED, data_size=12) + b"not zlib at all"[:12]


CLOSED_AT_ONCE = {
    "http request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "binary garbage": bytes(range(256)) * 4,
    "wrong tag": header(tag=b"PYRX") + b"x" * 10,
    "wrong version": header(version=501, data_size=3) + b"abc",
    "wrong magic": header(magic=0x1234, data_size=3) + b"abc",
    "declares 1 GB + 1": header(data_size=GB + 1),
    "declares 4 GB of annotations": header(data_size=0, ann_size=2**32 - 1),
    "annotation longer than its block": _bad_annotation_length(),
    "truncated annotation header": _truncated_annotation_header(),
    "non-ascii annotation id": _non_ascii_annotation_id(),
    "zip bomb": _zip_bomb(),
    "compressed flag, not zlib": _not_zlib(),
}


@pytest.mark.parametrize("case", list(CLOSED_AT_ONCE))
def test_bad_first_message_is_closed(served, case):
    config.MAX_MESSAGE_SIZE = GB if case.startswith("declares") else 1024 * 1024
    sock = served.connect()
    try:
        try:
            sock.sendall(CLOSED_AT_ONCE[case])
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed before we finished: that is the point
        served.good_call()
        assert read_until_closed(sock) == b""  # nothing sensible to answer: just closed
    finally:
        sock.close()
    served.good_call()


def test_invoke_before_handshake_gets_connectfail(served):
    sock = served.connect()
    with sock:
        call = SERPENT.dumpsCall("service", "add", (1, 2), {})
        sock.sendall(message(protocol.MSG_INVOKE, call))
        served.good_call()
        reason = connectfail_reason(read_until_closed(sock))
        assert "invalid msg type" in reason
    served.good_call()


@pytest.mark.parametrize(
    "case", ["unknown message type", "unknown serializer", "payload not a dict", "undeserializable"]
)
def test_bad_handshake_gets_connectfail(served, case):
    payload = SERPENT.dumps({"handshake": "hello", "object": "service"})
    data = {
        "unknown message type": message(99, payload),
        "unknown serializer": message(protocol.MSG_CONNECT, payload, serializer_id=77),
        "payload not a dict": message(protocol.MSG_CONNECT, SERPENT.dumps([1, 2, 3])),
        "undeserializable": message(protocol.MSG_CONNECT, b"\xff\xfe(((garbage"),
    }[case]
    sock = served.connect()
    with sock:
        sock.sendall(data)
        served.good_call()
        reason = connectfail_reason(read_until_closed(sock))
        assert isinstance(reason, str) and reason
    served.good_call()


# -- half-sent messages: they wait, nobody else does -------------------------------------------------

HALF_SENT = {
    "4 bytes of header": header()[:4],
    "39 bytes of header": header()[:39],
    "header, part of the payload": header(data_size=1000) + b"x" * 10,
    "header declaring 1 GB": header(data_size=GB - 40),
    "1 GB of annotations declared, one chunk started": header(data_size=0, ann_size=GB) + b"CORR",
}
# declared sizes beyond MAX_PREHANDSHAKE_SIZE: before its handshake such a client is dropped at once
OVER_PREHANDSHAKE_CAP = {"header declaring 1 GB", "1 GB of annotations declared, one chunk started"}


@pytest.mark.parametrize("ending", ["silence", "hang-up"])
@pytest.mark.parametrize("case", list(HALF_SENT))
def test_half_sent_message_does_not_block_others(served, case, ending):
    before = rss_bytes()
    sock = served.connect()
    try:
        sock.sendall(HALF_SENT[case])
        time.sleep(0.05)
        served.good_call()  # while the half-sent message waits
        served.good_call()
        # the declared size is not reserved up front
        assert rss_bytes() - before < 200 * 1024 * 1024
        if ending == "hang-up":
            sock.close()
            served.good_call()
        elif case in OVER_PREHANDSHAKE_CAP:
            sock.settimeout(5)
            try:
                assert sock.recv(10) == b""  # closed by the server, no reply
            except ConnectionResetError:
                pass
        else:
            sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                sock.recv(10)  # still open and waiting for the rest: no reply to half a message
    finally:
        sock.close()
    served.good_call()


def test_slow_trickle_does_not_block_others(served):
    """A message sent one byte at a time (slowloris) delays nobody else and still works."""
    sock = served.connect()
    stop = threading.Event()
    data = connect_message()

    def trickle():
        for i in range(len(data)):
            if stop.wait(0.005):
                return
            with contextlib.suppress(OSError):
                sock.sendall(data[i : i + 1])

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        for _ in range(4):
            served.good_call()
        thread.join(JOIN)
        msgtype, *_ = read_message(sock)
        assert msgtype == protocol.MSG_CONNECTOK  # the slow client is served too, in the end
    finally:
        stop.set()
        thread.join(JOIN)
        sock.close()


def test_idle_and_half_sent_connections_do_not_delay_a_call(servertype):
    config.THREADPOOL_SIZE = 4  # fewer workers than connections, on purpose
    config.THREADPOOL_SIZE_MIN = 1
    with serving(servertype) as served:
        idle = [served.connect() for _ in range(40)]
        idle_after_handshake = [handshaked(served) for _ in range(10)]
        half = served.connect()
        half.sendall(connect_message()[:-3])
        half_invoke = handshaked(served)
        half_invoke.sendall(message(protocol.MSG_INVOKE, SERPENT.dumpsCall("service", "add", (1, 2), {}))[:-5])
        try:
            time.sleep(0.2)
            for _ in range(4):
                started = time.monotonic()
                served.good_call()
                assert time.monotonic() - started < WAIT  # "not blocked", not a speed claim
        finally:
            for sock in idle + idle_after_handshake + [half, half_invoke]:
                sock.close()
        served.good_call()


# -- after the handshake -------------------------------------------------------------------------


@pytest.mark.parametrize("serializer_id", [1, 2, 3, 4, 5])
def test_undeserializable_request_gets_an_error_or_is_closed(served, serializer_id):
    sock = handshaked(served)
    with sock:
        sock.sendall(message(protocol.MSG_INVOKE, b"\xc1\xff\xfe\x00((garbage]]", serializer_id=serializer_id, seq=7))
        served.good_call()
        try:
            msgtype, flags, seq, ser, body = read_message(sock)
        except ConnectionError:
            return  # closed: also acceptable
        assert (msgtype, seq) == (protocol.MSG_RESULT, 7)
        assert flags & protocol.FLAGS_EXCEPTION
        # the connection still works afterwards
        sock.sendall(
            Pyro5.protocol.SendingMessage(
                Pyro5.protocol.MSG_INVOKE, 0, 8, 1, SERPENT.dumpsCall("service", "add", (2, 3), {})
            ).data
        )
        msgtype, flags, seq, ser, body = read_message(sock)
        assert (msgtype, seq, flags & protocol.FLAGS_EXCEPTION, SERPENT.loads(body)) == (protocol.MSG_RESULT, 8, 0, 5)
    served.good_call()


@pytest.mark.parametrize(
    "payload",
    [
        SERPENT.dumps(42),
        SERPENT.dumps(("service",)),
        SERPENT.dumps({"a": 1}),
        SERPENT.dumps(("service", 12, "not a tuple", None)),
    ],
    ids=["int", "short tuple", "dict", "wrong types"],
)
def test_wrongly_shaped_request_gets_an_error(served, payload):
    sock = handshaked(served)
    with sock:
        sock.sendall(message(protocol.MSG_INVOKE, payload, seq=3))
        served.good_call()
        try:
            msgtype, flags, seq, ser, body = read_message(sock)
        except ConnectionError:
            return  # closed: also acceptable
        assert (msgtype, seq) == (protocol.MSG_RESULT, 3) and flags & protocol.FLAGS_EXCEPTION
    served.good_call()


@pytest.mark.parametrize("case", ["zip bomb", "wrong magic", "declares 1 GB + 1", "garbage", "annotation overrun"])
def test_bad_message_after_handshake_is_closed(served, case):
    config.MAX_MESSAGE_SIZE = GB if case == "declares 1 GB + 1" else 1024 * 1024
    bomb = zlib.compress(b"\0" * (64 * 1024 * 1024), 9)
    ann = b"CORR" + struct.pack("!I", 500) + b"x" * 8
    data = {
        "zip bomb": header(protocol.MSG_INVOKE, flags=protocol.FLAGS_COMPRESSED, data_size=len(bomb)) + bomb,
        "wrong magic": header(protocol.MSG_INVOKE, magic=0, data_size=2) + b"()",
        "declares 1 GB + 1": header(protocol.MSG_INVOKE, data_size=GB + 1),
        "garbage": b"\0" * 100,
        "annotation overrun": header(protocol.MSG_INVOKE, data_size=2, ann_size=len(ann)) + ann + b"()",
    }[case]
    sock = handshaked(served)
    with sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        served.good_call()
        assert read_until_closed(sock) == b""
    served.good_call()


def test_second_connect_after_handshake(served):
    sock = handshaked(served)
    with sock:
        sock.sendall(connect_message(seq=1))
        served.good_call()
        try:
            msgtype, flags, seq, ser, body = read_message(sock)
        except ConnectionError:
            return  # closed: acceptable
        assert msgtype in (protocol.MSG_RESULT, protocol.MSG_CONNECTFAIL)
        assert flags & protocol.FLAGS_EXCEPTION or msgtype == protocol.MSG_CONNECTFAIL
    served.good_call()


# -- many at once ------------------------------------------------------------------------------


def test_hostile_crowd_while_a_client_works(served):
    """Many hostile connections at the same time; the good client's calls all succeed."""
    config.MAX_MESSAGE_SIZE = 1024 * 1024
    cases = list(CLOSED_AT_ONCE.values()) + list(HALF_SENT.values())
    stop = threading.Event()
    errors = []

    def attacker(n):
        try:
            while not stop.is_set():
                sock = served.connect()
                with sock:
                    with contextlib.suppress(OSError):
                        sock.sendall(cases[n % len(cases)])
                    stop.wait(0.02)
                n += 1
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=attacker, args=(i,), daemon=True) for i in range(6)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(10):
            served.good_call()
    finally:
        stop.set()
        for thread in threads:
            thread.join(JOIN)
    assert not errors
    served.good_call()
