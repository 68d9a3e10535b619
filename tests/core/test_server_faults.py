"""What the dispatcher guarantees on real sockets, both engines: SystemExit, KeyboardInterrupt
and GeneratorExit in user code, stream caps, SERIALIZERS_ACCEPTED, MAX_BATCH_CALLS, the BLBI
guard, ``@callback`` semantics and LOGWIRE on the server side (issues 8 and 9)."""

from __future__ import annotations

import _thread
import logging
import marshal
import socket
import threading
import time

import Pyro5.errors
import pytest
from pyrite.core import plugins
from pyrite.core.client import BatchProxy, Proxy
from pyrite.core.config import config
from pyrite.core.daemon import Daemon
from pyrite.core.errors import CommunicationError, PyroError
from pyrite.core.exposure import callback, expose, oneway
from pyrite.core.protocol import FLAGS_BATCH, FLAGS_EXCEPTION, FLAGS_KEEPSERIALIZED, MSG_CONNECTOK, MSG_RESULT
from pyrite.core.session import CLIENT, Session

from tests.daemons import LoopThread
from tests.support import pyrite_proxy, pyro5_proxy, wait_for

HOST = "127.0.0.1"
FATAL = [SystemExit, KeyboardInterrupt, GeneratorExit]


@pytest.fixture(autouse=True)
def _settings():
    config.POLLTIMEOUT = 0.1
    config.COMMTIMEOUT = 5.0


@pytest.fixture(params=["thread", "multiplex", "asyncio"])
def servertype(request):
    config.SERVERTYPE = request.param
    return request.param


@expose
class Victim:
    def __init__(self):
        self.oneway_done = threading.Event()
        self.oneway_count = 0

    def die(self, name):
        raise {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit}[name](
            "from user code"
        )

    def add(self, a, b):
        return a + b

    @oneway
    def die_oneway(self):
        raise SystemExit("oneway exit")

    @oneway
    def count_oneway(self):
        self.oneway_count += 1
        self.oneway_done.set()

    def generator(self, n):
        yield from range(n)

    def exiting_generator(self):
        yield 1
        raise SystemExit("generator exit")


@pytest.fixture
def served(servertype, start_daemon):
    daemon = Daemon(host=HOST)
    victim = Victim()
    uri = daemon.register(victim, "victim")
    start_daemon(daemon)
    return daemon, victim, uri


# -- issue 8 item 2: fatal exceptions in user code ---------------------------------------------


@pytest.mark.parametrize("fatal", FATAL, ids=lambda e: e.__name__)
def test_fatal_exceptions_in_a_method_become_error_replies(served, fatal):
    daemon, _, uri = served
    with pyrite_proxy(uri) as p:
        for _ in range(100):  # more calls than the thread engine has workers
            with pytest.raises(PyroError, match=fatal.__name__) as info:
                p.die(fatal.__name__)
            assert not isinstance(info.value, fatal)
        assert p.add(1, 2) == 3  # the same connection goes on
    with pyro5_proxy(uri) as p:
        with pytest.raises(Pyro5.errors.PyroError, match=fatal.__name__):
            p.die(fatal.__name__)
        assert p.add(2, 3) == 5
    assert daemon.workers.num_workers <= daemon.workers.size
    assert daemon.transportServer is not None and not daemon.host.shutting_down


def test_fatal_exceptions_in_oneways_and_streams(served):
    daemon, victim, uri = served
    with pyrite_proxy(uri) as p:
        for _ in range(50):
            p.die_oneway()
        p.count_oneway()
        assert victim.oneway_done.wait(5)  # later oneways still run
        items = p.exiting_generator()
        assert next(items) == 1
        with pytest.raises(PyroError, match="SystemExit"):
            next(items)
        assert p.add(1, 1) == 2


def test_fatal_exceptions_in_a_batch(served):
    _, _, uri = served
    with pyrite_proxy(uri) as p:
        batch = BatchProxy(p)
        batch.add(1, 2)
        batch.die("SystemExit")
        batch.add(3, 4)
        results = batch()
        assert next(results) == 3
        with pytest.raises(PyroError, match="SystemExit"):
            next(results)
        assert p.add(1, 1) == 2


def test_keyboard_interrupt_in_the_loop_thread_stops_the_daemon(servertype):
    daemon = Daemon(host=HOST)
    uri = daemon.register(Victim(), "victim")
    answered = []

    def client_then_interrupt():
        try:
            assert wait_for(lambda: daemon._loop_thread is not None)
            with pyrite_proxy(uri) as p:
                answered.append(p.add(20, 22))
            time.sleep(0.1)  # the loop is back in select()
        finally:
            _thread.interrupt_main()

    helper = threading.Thread(target=client_then_interrupt, daemon=True)
    helper.start()
    try:
        daemon.requestLoop()  # in the main thread: the KeyboardInterrupt lands here
    except KeyboardInterrupt:
        pytest.fail("the KeyboardInterrupt should end requestLoop(), not escape it")
    finally:
        helper.join(10)
        daemon.close()
    assert answered == [42]


# -- issue 8 item 6: stream caps -----------------------------------------------------------


@pytest.mark.parametrize("linger", [0.0, 30.0])
def test_stream_caps_and_streams_freed_with_their_connection(served, linger):
    config.ITER_STREAM_MAX_PER_CONNECTION = 5
    config.ITER_STREAM_MAX = 8
    config.ITER_STREAM_LINGER = linger
    daemon, _, uri = served
    first = pyrite_proxy(uri)
    kept = [first.generator(3) for _ in range(5)]
    with pytest.raises(PyroError, match="ITER_STREAM_MAX_PER_CONNECTION"):
        first.generator(3)
    with pyrite_proxy(uri) as second:
        more = [second.generator(3) for _ in range(3)]
        with pytest.raises(PyroError, match="ITER_STREAM_MAX=8"):
            second.generator(3)
        assert [list(it) for it in more] == [[0, 1, 2]] * 3  # finished streams are freed
        extra = second.generator(2)
        assert list(extra) == [0, 1]
    assert list(kept[0]) == [0, 1, 2]
    first._pyroRelease()
    if linger:
        # kept for a reconnecting client, then expired by housekeeping
        assert wait_for(lambda: all(e[0] is None for e in daemon.streaming_responses.values()))
        assert len(daemon.streaming_responses) == 4
    else:
        assert wait_for(lambda: not daemon.streaming_responses)


# -- issue 8 item 10: SERIALIZERS_ACCEPTED -------------------------------------------------


def test_serializers_accepted(served):
    config.SERIALIZERS_ACCEPTED = ["json", "marshal"]
    _, _, uri = served
    refused = pyrite_proxy(uri)
    refused._pyroSerializer = "serpent"
    with pytest.raises(CommunicationError, match="not accepted.*SERIALIZERS_ACCEPTED: json, marshal"):
        refused._pyroBind()
    refused._pyroRelease()
    with pyrite_proxy(uri) as ok:
        ok._pyroSerializer = "json"
        assert ok.add(1, 2) == 3


@pytest.mark.parametrize("accepted", [["marshal", "json"], "json, marshal", "json,marshal"])
def test_serializers_accepted_refusal_names_the_accepted_ones(served, accepted):
    config.SERIALIZERS_ACCEPTED = accepted  # a string (as in the environment) means the same list
    _, _, uri = served
    refused = pyrite_proxy(uri)
    refused._pyroSerializer = "serpent"
    with pytest.raises(CommunicationError) as failure:
        refused._pyroBind()
    refused._pyroRelease()
    message = str(failure.value)
    assert "'serpent' (id 1) is not accepted" in message
    assert message.endswith("(SERIALIZERS_ACCEPTED: json, marshal)"), message
    with pyro5_proxy(uri) as pyro5:  # a Pyro5 client reads the same reason
        pyro5._pyroSerializer = "serpent"
        with pytest.raises(Pyro5.errors.CommunicationError, match=r"SERIALIZERS_ACCEPTED: json, marshal\)"):
            pyro5._pyroBind()
    with pyrite_proxy(uri) as ok:
        ok._pyroSerializer = "json"
        assert ok.add(1, 2) == 3


def test_a_request_in_a_refused_serializer_costs_the_connection(served):
    _, _, uri = served
    sock, session = raw_client(uri, "json")
    config.SERIALIZERS_ACCEPTED = ["json"]
    serpent = plugins.get_serializer("serpent")
    sock.sendall(session.invoke(serpent.serializer_id, serpent.dumpsCall("victim", "add", (1, 2), {})).data)
    assert sock.recv(100) == b""  # dropped, no reply in a serializer it does not accept
    sock.close()


# -- issue 8 item 11: MAX_BATCH_CALLS -------------------------------------------------------


def test_max_batch_calls(served):
    config.MAX_BATCH_CALLS = 10
    _, _, uri = served
    with pyrite_proxy(uri) as p:
        batch = BatchProxy(p)
        for i in range(11):
            batch.add(i, 0)
        with pytest.raises(PyroError, match="MAX_BATCH_CALLS"):
            list(batch())
        batch = BatchProxy(p)
        for i in range(10):
            batch.add(i, 0)
        assert list(batch()) == list(range(10))


def test_serpent_batch_over_the_cap_is_refused_before_it_is_parsed(served):
    """The calls are counted without parsing: a batch over MAX_BATCH_CALLS whose text would not
    even parse is refused for its size (a parse would have failed with a SerializeError)."""
    config.MAX_BATCH_CALLS = 100
    _, _, uri = served
    serpent = plugins.get_serializer("serpent")
    calls = [("add", (i, 'it\'s a "(" [x', ")]},"), {"b": [1, {2: (3,)}]}) for i in range(150)]
    payload = serpent.dumpsCall("victim", "<batch>", calls, {})
    broken = payload.replace(b"{'b':", b"@@ {'b':", 1)  # outside any string: no parse gets past this
    assert broken != payload
    sock, session = raw_client(uri, "serpent")
    try:
        sock.sendall(session.invoke(serpent.serializer_id, broken, FLAGS_BATCH).data)
        [reply] = read_messages(sock, session)
        session.accept_reply(reply)
        assert reply.flags & FLAGS_EXCEPTION and b"MAX_BATCH_CALLS" in reply.data, reply.data[:300]
        # under the cap the same garbage reaches the parser, which refuses it
        small = serpent.dumpsCall("victim", "<batch>", calls[:50], {}).replace(b"{'b':", b"@@ {'b':", 1)
        assert b"@@" in small
        sock.sendall(session.invoke(serpent.serializer_id, small, FLAGS_BATCH).data)
        [reply] = read_messages(sock, session)
        session.accept_reply(reply)
        assert reply.flags & FLAGS_EXCEPTION and b"MAX_BATCH_CALLS" not in reply.data
    finally:
        sock.close()


def test_serpent_counts_batch_calls_without_parsing():
    serpent = plugins.get_serializer("serpent")
    tricky = ["it's", 'say "hi"', "(", "]", "}{", "\\", "\n", "a,b,c", "# not a comment"]
    calls = [("add", (i, tricky[i % len(tricky)], b"(bytes)"), {"k": [1, (2, [3])]}) for i in range(500)]
    payload = serpent.dumpsCall("obj", "<batch>", calls, {})
    count = serpent.batch_calls_at_least(payload, 100)
    assert 499 <= count <= 500  # a lower bound, off by one at most (the commas between calls)
    assert serpent.batch_calls_at_least(serpent.dumpsCall("obj", "<batch>", calls[:3], {}), 100) == 0  # too short
    assert serpent.batch_calls_at_least(b"(" * 20000, 100) == 0  # no batch shape: unknown


# -- issue 8 item 8: the BLBI annotation is marshal data from a peer ---------------------------


def raw_client(uri, serializer_name):
    """A connected socket past the handshake, and its client session."""
    ser = plugins.get_serializer(serializer_name)
    sock = socket.create_connection((HOST, uri.port), timeout=5)
    session = Session(CLIENT)
    sock.sendall(session.connect_request(ser.serializer_id, ser.dumps({"handshake": "hi", "object": "victim"})).data)
    [reply] = read_messages(sock, session)
    assert reply.type == MSG_CONNECTOK and session.accept_connect_reply(reply)
    return sock, session


def read_messages(sock, session):
    while True:
        messages = session.feed(sock.recv(65536))
        if messages or session.closed:
            return messages


def blob_call(sock, session, blbi):
    serpent = plugins.get_serializer("serpent")
    payload = serpent.dumpsCall("blobs", "take", [1, 2], {})  # what a proxy sends for a blob
    sock.sendall(session.invoke(serpent.serializer_id, payload, FLAGS_KEEPSERIALIZED, {"BLBI": blbi}).data)
    [reply] = read_messages(sock, session)
    session.accept_reply(reply)
    return reply, serpent.loads(reply.data)


@expose
class BlobTaker:
    def take(self, blob):
        return [blob.info, blob.deserialized()]


def test_blbi_code_object_is_refused_and_a_plain_one_works(served):
    daemon, _, uri = served
    daemon.register(BlobTaker(), "blobs")
    sock, session = raw_client(uri, "serpent")
    with sock:
        reply, value = blob_call(sock, session, marshal.dumps(("info", "blobs", "take")))
        assert reply.type == MSG_RESULT and not reply.flags & FLAGS_EXCEPTION
        assert value[0] == "info" and list(value[1]) == [1, 2]
        code = compile("print('pwned')", "<peer>", "exec")
        reply, error = blob_call(sock, session, marshal.dumps((code, "blobs", "take")))
        assert reply.flags & FLAGS_EXCEPTION
        assert "BLBI" in str(error) and "refused" in str(error)
        reply, error = blob_call(sock, session, b"(" + (2**31 - 1).to_bytes(4, "little"))
        assert reply.flags & FLAGS_EXCEPTION and "declares" in str(error)
        reply, value = blob_call(sock, session, marshal.dumps(("again", "blobs", "take")))
        assert value[0] == "again"  # the connection goes on


# -- issue 9: @callback, LOGWIRE ------------------------------------------------------------


@expose
class Listener:
    def __init__(self):
        self.seen = []

    def notify(self, i):
        self.seen.append(i)
        return i

    @callback
    def explode(self):
        raise ZeroDivisionError("in the callback")

    def plain_explode(self):
        raise ZeroDivisionError("not a callback")


@expose
class Caller:
    def call_back(self, listener, method):
        try:
            getattr(listener, method)()
        except ZeroDivisionError as exc:
            return f"caught {type(exc).__name__}: {exc}"
        return "nothing raised"


def test_callback_error_is_raised_on_the_callback_side_too(servertype, start_daemon, caplog):
    server = Daemon(host=HOST)
    caller_uri = server.register(Caller(), "caller")
    start_daemon(server)
    callback_daemon = Daemon(host=HOST)
    listener = Listener()
    listener_uri = callback_daemon.register(listener, "listener")
    start_daemon(callback_daemon)
    with caplog.at_level(logging.WARNING, logger="pyrite.core"):
        with pyrite_proxy(caller_uri) as caller:
            assert caller.call_back(listener, "plain_explode") == "caught ZeroDivisionError: not a callback"
            assert "not a callback" not in caplog.text  # an ordinary method's error stays with the caller
            assert caller.call_back(listener, "explode") == "caught ZeroDivisionError: in the callback"
    # ... and a @callback's error is raised in the callback's own daemon as well (logged with
    # its traceback, its connection closed, as Pyro5's daemon does); that daemon keeps serving
    assert wait_for(lambda: "callback method raised" in caplog.text)  # by the engine, which closed the link
    assert "in the callback" in caplog.text and "Traceback" in caplog.text
    with Proxy(listener_uri) as direct:
        direct._pyroTimeout = 5
        assert direct.notify(7) == 7


def test_hand_driven_handle_request_raises_a_callback_error(start_daemon):
    """Daemon.handleRequest, driven by hand as Pyro5 code does, raises it after the reply."""
    ours, theirs = socket.socketpair()
    daemon = Daemon(connected_socket=theirs)
    listener = Listener()
    daemon.register(listener, "listener")
    engine = daemon.transportServer
    results = []

    def call():
        with Proxy("listener", connected_socket=ours) as p:
            p._pyroTimeout = 5
            try:
                p.explode()
            except ZeroDivisionError as exc:
                results.append(exc)

    caller = LoopThread(daemon, target=call)
    try:
        with pytest.raises(ZeroDivisionError, match="in the callback"):
            while True:
                daemon.handleRequest(engine.conn)
        assert caller.join()
        assert len(results) == 1  # the caller got its error reply first
    finally:
        daemon.close()
        ours.close()
        theirs.close()


def test_logwire_logs_the_server_side(served, caplog):
    config.LOGWIRE = True
    _, _, uri = served
    with caplog.at_level(logging.DEBUG, logger="pyrite.core.dispatch"):
        with pyrite_proxy(uri) as p:
            assert p.add(1, 2) == 3
    text = caplog.text
    assert "daemon handshake received" in text
    assert "daemon wiredata received: msgtype=4" in text
    assert "daemon wiredata sending: msgtype=5" in text
    assert "corr_id=" in text and "data=" in text


# -- oneway back-pressure: a full pool holds one connection, never the others --------------


@expose
class Flooded:
    def __init__(self):
        self.gate = threading.Event()
        self.ran = []

    @oneway
    def block(self):
        self.gate.wait(10)

    @oneway
    def note(self, i):
        self.ran.append((i, threading.current_thread().name))

    def add(self, a, b):
        return a + b


def test_a_oneway_flood_holds_back_only_its_own_connection(servertype, start_daemon):
    config.ONEWAY_THREADS = 1  # one oneway at a time, 64 waiting: then the pool is "full"
    daemon = Daemon(host=HOST)
    flooded = Flooded()
    uri = daemon.register(flooded, "flooded")
    loop = start_daemon(daemon, name="the-loop-thread")
    flooder = pyrite_proxy(uri)
    try:
        flooder.block()
        for i in range(150):
            flooder.note(i)
        assert wait_for(lambda: daemon.workers.full())
        with pyrite_proxy(uri) as legit:  # another connection is served at once
            for _ in range(5):
                started = time.monotonic()
                assert legit.add(1, 2) == 3
                assert time.monotonic() - started < 1.0
        assert flooded.ran == []  # nothing ran inline: the flood waits for the one oneway thread
        flooded.gate.set()
        assert wait_for(lambda: len(flooded.ran) == 150, timeout=10)
        assert [i for i, _ in flooded.ran] == list(range(150))  # held calls keep their order
        assert not any(name == "the-loop-thread" for _, name in flooded.ran)
        assert flooder.add(2, 2) == 4  # the flooding connection is read again
    finally:
        flooded.gate.set()
        flooder._pyroRelease()
    assert loop.alive
