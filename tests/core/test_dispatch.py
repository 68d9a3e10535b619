"""dispatch.py: one request in, one reply out, driven message by message.

The daemon here serves a socketpair end (no engine, no thread); each test
feeds ReceivingMessages to its ``Dispatcher`` (``daemon.host``) with a
recording connection, sends the reply there as an engine would, and reads
back the reply bytes.
"""

from __future__ import annotations

import marshal
import socket
import threading
import time
import uuid

import pytest
from pyrite.core import plugins
from pyrite.core.callcontext import current_context
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.connection import ClientConnection
from pyrite.core.daemon import Daemon
from pyrite.core.errors import CommunicationError, DaemonError, ExceptionWrapper, ProtocolError, SecurityError
from pyrite.core.exposure import behavior, callback, expose, oneway
from pyrite.core.protocol import (
    FLAGS_BATCH,
    FLAGS_CORR_ID,
    FLAGS_EXCEPTION,
    FLAGS_ITEMSTREAMRESULT,
    FLAGS_KEEPSERIALIZED,
    FLAGS_ONEWAY,
    MSG_CONNECT,
    MSG_CONNECTFAIL,
    MSG_CONNECTOK,
    MSG_INVOKE,
    MSG_PING,
    MSG_RESULT,
    ReceivingMessage,
    SendingMessage,
    send_message,
)
from pyrite.core.uri import DAEMON_NAME

from tests.support import running, wait_for

SERIALIZER_NAMES = ["serpent", "json", "marshal", "msgpack", "cbor2"]


def _serializer(name):
    try:
        return plugins.get_serializer(name)
    except plugins.PluginError as exc:
        pytest.skip(f"serializer {name} is not installed: {exc}")


@pytest.fixture(params=SERIALIZER_NAMES)
def ser(request):
    return _serializer(request.param)


@pytest.fixture
def serpent():
    return _serializer("serpent")


class Recorder:
    """A transport connection that records what is sent to it."""

    def __init__(self):
        self.sent = []
        self.closed = False
        self.peer_address = ("127.0.0.1", 50505)
        self.local_address = ("127.0.0.1", 9999)
        self.timeout = None

    def send(self, data):
        self.sent.append(bytes(data))

    def recv(self, n):
        raise CommunicationError("recorder cannot receive")

    def fileno(self):
        return -1

    def close(self):
        self.closed = True

    def getpeercert(self):
        return None


@pytest.fixture(autouse=True)
def _clean_context():
    current_context.correlation_id = None
    current_context.annotations = {}
    current_context.response_annotations = {}
    yield
    current_context.correlation_id = None
    current_context.annotations = {}
    current_context.response_annotations = {}


@pytest.fixture
def daemon():
    s1, s2 = socket.socketpair()
    d = Daemon(connected_socket=s1)
    yield d
    d.close()
    s1.close()
    s2.close()


@pytest.fixture
def conn():
    return ClientConnection(Recorder())


def handle_message(daemon, conn, msg):
    """What an engine does with a request: serve it, send the reply (if any)."""
    reply = daemon.host.serve_request(conn, None, msg)
    if reply is not None:
        send_message(conn, reply)


def handshake(daemon, conn, msg, denied_reason=None):
    """What an engine does with a connection's first message; True if the client may go on."""
    return daemon._handshake(conn, msg, denied_reason=denied_reason)


def make_msg(msgtype, flags, seq, serializer_id, payload, annotations=None, corr_id=None):
    current_context.correlation_id = None  # a dispatch in this thread left its request's id there
    sending = SendingMessage(msgtype, flags, seq, serializer_id, payload, annotations, compress=False, corr_id=corr_id)
    return ReceivingMessage(sending.data[:40], sending.data[40:])


def call(ser, obj_id, method, vargs=(), kwargs=None, flags=0, seq=7, annotations=None, corr_id=None):
    return make_msg(
        MSG_INVOKE,
        flags,
        seq,
        ser.serializer_id,
        ser.dumpsCall(obj_id, method, vargs, kwargs or {}),
        annotations,
        corr_id,
    )


def last_reply(conn):
    raw = conn.conn.sent[-1]
    return ReceivingMessage(raw[:40], raw[40:])


def result(conn, ser):
    msg = last_reply(conn)
    assert msg.type == MSG_RESULT
    return msg, ser.loads(msg.data)


@expose
class Thing:
    def __init__(self):
        self.value = 5
        self.calls = []

    def add(self, a, b=0):
        return a + b

    def fail(self):
        raise ValueError("it failed")

    def generator(self):
        yield from ("one", "two", "three")

    def iterator(self):
        return iter([1, 2, 3])

    def dict_view(self):
        return iter({"a": 1}.keys())

    def unserializable(self):
        return threading.Lock()

    def blob(self, blob):
        return [blob.info, blob.deserialized()]

    def context(self):
        ctx = current_context
        return {
            "seq": ctx.seq,
            "flags": ctx.msg_flags,
            "ser": ctx.serializer_id,
            "corr": str(ctx.correlation_id),
            "addr": list(ctx.client_sock_addr),
            "ann": sorted(ctx.annotations),
            "client": ctx.client is not None,
        }

    def respond_annotated(self):
        current_context.response_annotations["XRES"] = b"response"
        return "ok"

    @oneway
    def slow_oneway(self, seconds, event):
        time.sleep(seconds)

    @property
    def prop(self):
        return self.value

    @prop.setter
    def prop(self, value):
        self.value = value

    @property
    def stream_prop(self):
        return iter("ab")

    def _private(self):
        return "private"

    def __len__(self):
        return 42


class HalfExposed:
    @expose
    def visible(self):
        return "seen"

    def hidden(self):
        return "hidden"

    @property
    def plain_prop(self):
        return 1


# -- ping, basic calls, result metadata ------------------------------------------------------


def test_ping_is_answered_without_deserializing(daemon, conn):
    handle_message(daemon, conn, make_msg(MSG_PING, 0, 99, 42, b"not a valid payload"))
    reply = last_reply(conn)
    assert (reply.type, reply.seq, reply.serializer_id, bytes(reply.data)) == (MSG_PING, 99, 42, b"pong")


def test_simple_call_reply_uses_request_serializer_and_seq(daemon, conn, ser):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(ser, "thing", "add", (3,), {"b": 4}, seq=1234))
    msg, data = result(conn, ser)
    assert data == 7
    assert (msg.seq, msg.serializer_id, msg.flags & FLAGS_EXCEPTION) == (1234, ser.serializer_id, 0)


def test_dunder_method_can_be_exposed(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "__len__"))
    assert result(conn, serpent)[1] == 42


def test_correlation_id_and_context(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    corr = uuid.uuid4()
    handle_message(daemon, conn, call(serpent, "thing", "context", seq=77, annotations={"XABC": b"1"}, corr_id=corr))
    msg, data = result(conn, serpent)
    assert msg.flags & FLAGS_CORR_ID and msg.correlation_id == corr
    assert data == {
        "seq": 77,
        "flags": FLAGS_CORR_ID,
        "ser": serpent.serializer_id,
        "corr": str(corr),
        "addr": ["127.0.0.1", 50505],
        "ann": ["XABC"],
        "client": True,
    }
    # without one, the call gets a fresh one (as in Pyro5) and the reply carries it
    handle_message(daemon, conn, call(serpent, "thing", "context", seq=78))
    msg, data = result(conn, serpent)
    assert msg.flags & FLAGS_CORR_ID and msg.correlation_id not in (None, corr)
    assert data["corr"] == str(msg.correlation_id)
    assert data["flags"] == 0  # the context shows the request's own flags


def test_response_annotations_from_call_and_daemon(serpent, conn):
    class AnnotatingDaemon(Daemon):
        def annotations(self):
            return {"XDAE": b"daemon"}

    s1, s2 = socket.socketpair()
    with AnnotatingDaemon(connected_socket=s1) as d:
        d.register(Thing(), "thing")
        handle_message(d, conn, call(serpent, "thing", "respond_annotated"))
        msg = last_reply(conn)
        assert msg.annotations == {"XRES": b"response", "XDAE": b"daemon"}
        # response annotations of one call do not leak into the next
        handle_message(d, conn, call(serpent, "thing", "add", (1,)))
        assert last_reply(conn).annotations == {"XDAE": b"daemon"}
    s1.close()
    s2.close()


# -- errors --------------------------------------------------------------------------------


def error_of(conn, ser):
    msg = last_reply(conn)
    assert msg.type == MSG_RESULT
    assert msg.flags & FLAGS_EXCEPTION
    return ser.loads(msg.data)


def test_unknown_object(daemon, conn, ser):
    handle_message(daemon, conn, call(ser, "nope", "add", (1,)))
    exc = error_of(conn, ser)
    assert isinstance(exc, DaemonError) and "no object registered with id" in str(exc)


@pytest.mark.parametrize(
    "method",
    ["hidden", "_private", "__init__", "__class__", "__dict__", "nonexisting", "__getattribute__", "__reduce__"],
)
def test_unreachable_methods_are_security_errors(daemon, conn, serpent, method):
    obj = HalfExposed()
    daemon.register(obj, "half")
    handle_message(daemon, conn, call(serpent, "half", method))
    exc = error_of(conn, serpent)
    assert isinstance(exc, SecurityError)
    handle_message(daemon, conn, call(serpent, "half", "visible"))
    assert result(conn, serpent)[1] == "seen"  # the connection goes on


def test_user_exception_with_remote_traceback(daemon, conn, ser):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(ser, "thing", "fail", seq=5))
    exc = error_of(conn, ser)
    assert isinstance(exc, ValueError) and str(exc) == "it failed"
    tb = "".join(exc._pyroTraceback)
    assert "ValueError: it failed" in tb and "in fail" in tb
    assert last_reply(conn).seq == 5


def test_detailed_traceback(daemon, conn, serpent):
    config.DETAILED_TRACEBACK = True
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "fail"))
    tb = "".join(error_of(conn, serpent)._pyroTraceback)
    assert "Locals:" in tb and "EXCEPTION" in tb


def test_methodcall_error_handler_sees_user_errors(daemon, conn, serpent):
    seen = []
    daemon.methodcall_error_handler = lambda d, client, method, vargs, kwargs, exc: seen.append((method.__name__, exc))
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "fail"))
    assert seen and seen[0][0] == "fail" and isinstance(seen[0][1], ValueError)


def test_unserializable_result_becomes_error_reply(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "unserializable"))
    assert isinstance(error_of(conn, serpent), Exception)
    handle_message(daemon, conn, call(serpent, "thing", "add", (2, 2)))
    assert result(conn, serpent)[1] == 4


def test_too_large_result_becomes_error_reply(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    request = call(serpent, "thing", "add", ("x" * 4000, "y" * 4000))
    config.MAX_MESSAGE_SIZE = 7000  # the request fits, the 8000-character result does not
    handle_message(daemon, conn, request)
    exc = error_of(conn, serpent)
    assert "too large" in str(exc)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"garbage",
        b"\x00\xff" * 50,
        b"(1,2",
        b"{'a': 1}",
        b"[1, 2, 3, 4, 5]",
        b"('thing', 'add', 5, {})",
        b"('thing', 'add', (1,), [1])",
        b"(['unhashable'], 'add', (), {})",
        b"('thing', ['x'], (), {})",
    ],
)
def test_malformed_request_gets_error_reply(daemon, conn, serpent, payload):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, make_msg(MSG_INVOKE, 0, 3, serpent.serializer_id, payload))
    assert isinstance(error_of(conn, serpent), Exception)
    assert last_reply(conn).seq == 3
    handle_message(daemon, conn, call(serpent, "thing", "add", (1, 2)))
    assert result(conn, serpent)[1] == 3


@pytest.mark.parametrize("name", ["json", "marshal", "msgpack", "cbor2"])
def test_garbage_for_every_serializer(daemon, conn, name):
    ser = _serializer(name)
    for payload in (b"", b"\xff\xfe\xfd", b"\x93\x01", b'{"a": '):
        handle_message(daemon, conn, make_msg(MSG_INVOKE, 0, 1, ser.serializer_id, payload))
        assert last_reply(conn).flags & FLAGS_EXCEPTION


def test_unknown_serializer_id_drops_connection(daemon, conn):
    with pytest.raises(CommunicationError):
        handle_message(daemon, conn, make_msg(MSG_INVOKE, 0, 1, 250, b"whatever"))
    assert conn.conn.sent == []


def test_unexpected_message_type_drops_connection(daemon, conn, serpent):
    for msgtype in (MSG_RESULT, MSG_CONNECTOK, 99):
        with pytest.raises(ProtocolError):
            handle_message(daemon, conn, make_msg(msgtype, 0, 1, serpent.serializer_id, b"x"))


# -- attributes ---------------------------------------------------------------------------


def test_property_get_and_set(daemon, conn, ser):
    obj = Thing()
    daemon.register(obj, "thing")
    handle_message(daemon, conn, call(ser, "thing", "__getattr__", ("prop",)))
    assert result(conn, ser)[1] == 5
    handle_message(daemon, conn, call(ser, "thing", "__setattr__", ("prop", 99)))
    assert result(conn, ser)[1] is None
    assert obj.value == 99
    for attr in ("value", "calls", "_private", "__dict__", "add"):
        handle_message(daemon, conn, call(ser, "thing", "__getattr__", (attr,)))
        assert isinstance(error_of(conn, ser), AttributeError)
    handle_message(daemon, conn, call(ser, "thing", "__setattr__", ("value", 1)))
    assert isinstance(error_of(conn, ser), AttributeError)
    assert obj.value == 99


def test_unexposed_property_not_reachable(daemon, conn, serpent):
    daemon.register(HalfExposed(), "half")
    handle_message(daemon, conn, call(serpent, "half", "__getattr__", ("plain_prop",)))
    assert isinstance(error_of(conn, serpent), AttributeError)


# -- oneway ---------------------------------------------------------------------------------


def test_oneway_call_sends_nothing_and_runs_on_executor(daemon, conn, serpent):
    done = threading.Event()
    threads = []

    @expose
    class Target:
        @oneway
        def fire(self, x):
            threads.append((threading.current_thread().name, current_context.seq))
            done.set()

    daemon.register(Target(), "target")
    handle_message(daemon, conn, call(serpent, "target", "fire", (1,), flags=FLAGS_ONEWAY, seq=31))
    assert done.wait(5)
    assert conn.conn.sent == []
    assert threads[0][0].startswith("pyrite-oneway") and threads[0][1] == 31


def test_oneway_failure_sends_nothing(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "fail", flags=FLAGS_ONEWAY))
    handle_message(daemon, conn, call(serpent, "nope", "fail", flags=FLAGS_ONEWAY))
    handle_message(daemon, conn, make_msg(MSG_INVOKE, FLAGS_ONEWAY, 1, serpent.serializer_id, b"junk"))
    time.sleep(0.1)
    assert conn.conn.sent == []


def test_oneway_calls_are_held_back_when_the_pool_is_full(daemon, conn, serpent):
    """A full worker pool never runs a oneway call in the dispatching thread: the call is held
    on the connection (the engine stops reading it) and runs once resume() finds room."""
    release = threading.Event()
    ran = []
    main = threading.current_thread()

    @expose
    class Slow:
        @oneway
        def block(self):
            release.wait(10)

        @oneway
        def note(self, i):
            ran.append((i, threading.current_thread() is main))

    daemon.register(Slow(), "slow")
    pool = daemon.workers
    try:
        calls = 0
        while not pool.full():
            handle_message(daemon, conn, call(serpent, "slow", "block", flags=FLAGS_ONEWAY))
            calls += 1
            assert calls <= pool.size + pool.backlog_limit
        assert pool.num_workers == pool.size  # never more threads than allowed
        assert not conn.held_oneways
        for i in range(3):
            handle_message(daemon, conn, call(serpent, "slow", "note", (i,), flags=FLAGS_ONEWAY))
        assert len(conn.held_oneways) == 3 and ran == []
        assert not daemon.host.resume(conn)  # still full
        release.set()
        assert wait_for(lambda: daemon.host.resume(conn))
        assert wait_for(lambda: len(ran) == 3)
        assert sorted(ran) == [(0, False), (1, False), (2, False)]  # on workers, never inline
    finally:
        release.set()
    assert conn.conn.sent == []  # oneway: no reply, ever


def test_oneway_runs_with_the_callers_context_and_restores_the_workers(daemon, conn, serpent):
    seen = []

    @expose
    class Ctx:
        @oneway
        def look(self):
            seen.append((current_context.seq, current_context.client is conn))

    daemon.register(Ctx(), "ctx")
    handle_message(daemon, conn, call(serpent, "ctx", "look", flags=FLAGS_ONEWAY, seq=4321))
    assert wait_for(lambda: seen == [(4321, True)])


# -- batch --------------------------------------------------------------------------------


def test_batch_results_and_stop_at_first_error(daemon, conn, ser):
    daemon.register(Thing(), "thing")
    calls = [("add", (1, 2), {}), ("add", (3,), {"b": 4}), ("fail", (), {}), ("add", (5, 6), {})]
    handle_message(daemon, conn, call(ser, "thing", "<batch>", calls, flags=FLAGS_BATCH))
    msg, data = result(conn, ser)
    assert msg.flags & FLAGS_BATCH and not msg.flags & FLAGS_EXCEPTION
    assert data[:2] == [3, 7]
    assert len(data) == 3
    assert isinstance(data[2], ExceptionWrapper)
    assert isinstance(data[2].exception, ValueError)
    assert data[2].exception._pyroTraceback


def test_batch_with_unexposed_method(daemon, conn, serpent):
    daemon.register(HalfExposed(), "half")
    calls = [("visible", (), {}), ("hidden", (), {})]
    handle_message(daemon, conn, call(serpent, "half", "<batch>", calls, flags=FLAGS_BATCH))
    _, data = result(conn, serpent)
    assert data[0] == "seen" and isinstance(data[1].exception, SecurityError)


def test_oneway_batch_runs_without_reply(daemon, conn, serpent):
    obj = Thing()
    daemon.register(obj, "thing")
    calls = [("__len__", (), {}), ("add", (1, 1), {})]
    handle_message(daemon, conn, call(serpent, "thing", "<batch>", calls, flags=FLAGS_BATCH | FLAGS_ONEWAY))
    assert conn.conn.sent == []


# -- streaming ----------------------------------------------------------------------------


def test_generator_result_is_streamed(daemon, conn, ser):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(ser, "thing", "generator"))
    msg = last_reply(conn)
    assert msg.flags & FLAGS_ITEMSTREAMRESULT and msg.flags & FLAGS_EXCEPTION
    stream_id = msg.annotations["STRM"].decode()
    assert stream_id in daemon.streaming_responses
    assert daemon.streaming_responses[stream_id][0] is conn
    items = []
    while True:
        handle_message(daemon, conn, call(ser, DAEMON_NAME, "get_next_stream_item", (stream_id,)))
        reply = last_reply(conn)
        value = ser.loads(reply.data)
        if reply.flags & FLAGS_EXCEPTION:
            assert isinstance(value, StopIteration)
            break
        items.append(value)
    assert items == ["one", "two", "three"]
    assert stream_id not in daemon.streaming_responses
    handle_message(daemon, conn, call(ser, DAEMON_NAME, "get_next_stream_item", (stream_id,)))
    assert "no open item stream" in str(error_of(conn, ser))


def test_iterator_property_and_close_stream(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "__getattr__", ("stream_prop",)))
    stream_id = last_reply(conn).annotations["STRM"].decode()
    handle_message(daemon, conn, call(serpent, DAEMON_NAME, "close_stream", (stream_id,)))
    assert stream_id not in daemon.streaming_responses


def test_streaming_disabled(daemon, conn, serpent):
    config.ITER_STREAMING = False
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "iterator"))
    msg = last_reply(conn)
    assert msg.flags & FLAGS_ITEMSTREAMRESULT and "STRM" not in msg.annotations
    assert not daemon.streaming_responses


def test_dict_view_iterators_are_refused(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "dict_view"))
    assert "lazy view of a dict" in str(error_of(conn, serpent))


# -- serialized blobs -----------------------------------------------------------------------


def test_keepserialized_blob(daemon, conn, ser):
    daemon.register(Thing(), "thing")
    payload = ser.dumpsCall("thing", "blob", {"nested": [1, 2]}, {})
    blbi = marshal.dumps(("the info", "thing", "blob"))
    msg = make_msg(MSG_INVOKE, FLAGS_KEEPSERIALIZED, 9, ser.serializer_id, payload, {"BLBI": blbi})
    handle_message(daemon, conn, msg)
    _, data = result(conn, ser)
    assert data == ["the info", {"nested": [1, 2]}]


def test_keepserialized_without_or_with_bad_blbi(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    payload = serpent.dumpsCall("thing", "blob", "x", {})
    for extra in (None, {"BLBI": b"\x00garbage"}, {"BLBI": marshal.dumps(("only two", "x"))}):
        handle_message(
            daemon, conn, make_msg(MSG_INVOKE, FLAGS_KEEPSERIALIZED, 1, serpent.serializer_id, payload, extra)
        )
        assert last_reply(conn).flags & FLAGS_EXCEPTION


# -- instance modes ----------------------------------------------------------------------------


def test_instance_modes(daemon, serpent):
    created = []

    @expose
    @behavior(instance_mode="session")
    class Session:
        def __init__(self):
            created.append("session")

        def ident(self):
            return id(self)

    @expose
    @behavior(instance_mode="single")
    class Single(Session):
        pass

    @expose
    @behavior(instance_mode="percall", instance_creator=lambda cls: cls())
    class PerCall(Session):
        pass

    daemon.register(Session, "session")
    daemon.register(Single, "single")
    daemon.register(PerCall, "percall")
    c1, c2 = ClientConnection(Recorder()), ClientConnection(Recorder())

    def ident(conn, obj_id):
        handle_message(daemon, conn, call(serpent, obj_id, "ident"))
        return result(conn, serpent)[1]

    assert ident(c1, "session") == ident(c1, "session") != ident(c2, "session")
    assert ident(c1, "single") == ident(c2, "single")
    assert len(c1.pyroInstances) == 1 and Session in c1.pyroInstances
    before = len(created)
    ident(c1, "percall")
    ident(c1, "percall")
    assert len(created) == before + 2


def test_instance_creator_wrong_type(daemon, conn, serpent):
    @expose
    @behavior(instance_creator=lambda cls: "not an instance")
    class Wrong:
        def m(self):
            pass

    daemon.register(Wrong, "wrong")
    handle_message(daemon, conn, call(serpent, "wrong", "m"))
    assert isinstance(error_of(conn, serpent), TypeError)


def test_weakly_registered_dead_object(daemon, conn, serpent):
    obj = Thing()
    daemon.register(obj, "weak", weak=True)
    handle_message(daemon, conn, call(serpent, "weak", "add", (1, 1)))
    assert result(conn, serpent)[1] == 2
    del obj
    handle_message(daemon, conn, call(serpent, "weak", "add", (1, 1)))
    assert isinstance(error_of(conn, serpent), DaemonError)


# -- callback ---------------------------------------------------------------------------------


def test_callback_errors_are_logged_locally(daemon, conn, serpent, caplog):
    @expose
    class Callbacks:
        @callback
        def notify(self):
            raise RuntimeError("callback broke")

    daemon.register(Callbacks(), "cb")
    with caplog.at_level("WARNING", logger="pyrite.core.dispatch"):
        handle_message(daemon, conn, call(serpent, "cb", "notify"))
    assert isinstance(error_of(conn, serpent), RuntimeError)
    assert "callback broke" in caplog.text


# -- handshake --------------------------------------------------------------------------------


def connect_msg(ser, obj_id=DAEMON_NAME, handshake="hello", seq=99, corr_id=None):
    return make_msg(
        MSG_CONNECT, 0, seq, ser.serializer_id, ser.dumps({"handshake": handshake, "object": obj_id}), corr_id=corr_id
    )


def test_handshake_ok_with_metadata(daemon, conn, ser):
    daemon.register(Thing(), "thing")
    corr = uuid.uuid4()
    assert handshake(daemon, conn, connect_msg(ser, "thing", corr_id=corr))
    msg = last_reply(conn)
    assert (msg.type, msg.seq, msg.serializer_id) == (MSG_CONNECTOK, 99, ser.serializer_id)
    assert msg.correlation_id == corr
    data = ser.loads(msg.data)
    assert data["handshake"] == "hello"
    assert set(data["meta"]["methods"]) >= {"add", "fail", "generator", "__len__"}
    assert set(data["meta"]["attrs"]) == {"prop", "stream_prop"}
    assert set(data["meta"]["oneway"]) == {"slow_oneway"}
    assert conn.handshaked


def test_handshake_custom_validation_and_annotations(ser):
    class Custom(Daemon):
        def validateHandshake(self, conn, data):
            if data != "secret":
                raise ValueError("wrong secret")
            return ["welcome", 1]

        def annotations(self):
            return {"XYZZ": b"daemon annotation"}

    s1, s2 = socket.socketpair()
    with Custom(connected_socket=s1) as d:
        conn = ClientConnection(Recorder())
        assert handshake(d, conn, connect_msg(ser, handshake="secret"))
        msg = last_reply(conn)
        assert msg.annotations == {"XYZZ": b"daemon annotation"}
        assert ser.loads(msg.data)["handshake"] == ["welcome", 1]
        assert not handshake(d, conn, connect_msg(ser, handshake="guess"))
        msg = last_reply(conn)
        assert msg.type == MSG_CONNECTFAIL and ser.loads(msg.data) == "wrong secret"
    s1.close()
    s2.close()


def test_handshake_refusals(daemon, conn, serpent):
    assert not handshake(daemon, conn, connect_msg(serpent, "no-such-object"))
    msg = last_reply(conn)
    assert msg.type == MSG_CONNECTFAIL and "no object registered with id" in serpent.loads(msg.data)
    assert not handshake(daemon, conn, connect_msg(serpent), denied_reason="go away")
    assert serpent.loads(last_reply(conn).data) == "go away"
    assert not daemon._handshake(conn, connect_msg(serpent), denied_reason="full")
    assert serpent.loads(last_reply(conn).data) == "full"
    # not a dict, missing keys, garbage, wrong message type
    for payload in (serpent.dumps([1, 2]), serpent.dumps({"handshake": 1}), b"\x00\x01garbage"):
        assert not handshake(daemon, conn, make_msg(MSG_CONNECT, 0, 1, serpent.serializer_id, payload))
        assert last_reply(conn).type == MSG_CONNECTFAIL
    assert not handshake(daemon, conn, call(serpent, DAEMON_NAME, "ping"))
    assert last_reply(conn).type == MSG_CONNECTFAIL
    assert not conn.handshaked


def test_handshake_unknown_serializer_answers_with_marshal(daemon, conn):
    _serializer("marshal")
    assert not handshake(daemon, conn, make_msg(MSG_CONNECT, 0, 4, 200, b"whatever"))
    msg = last_reply(conn)
    assert (msg.type, msg.serializer_id, msg.seq) == (MSG_CONNECTFAIL, 2, 4)


def test_handshake_to_a_closed_connection_returns_false(daemon, serpent):
    class Broken(Recorder):
        def send(self, data):
            from pyrite.core.errors import ConnectionClosedError

            raise ConnectionClosedError("gone")

    assert not handshake(daemon, ClientConnection(Broken()), connect_msg(serpent))


def test_reply_to_a_closed_connection_raises_communication_error(daemon, serpent):
    class Broken(Recorder):
        def send(self, data):
            from pyrite.core.errors import ConnectionClosedError

            raise ConnectionClosedError("gone")

    daemon.register(Thing(), "thing")
    with pytest.raises(CommunicationError):
        handle_message(daemon, ClientConnection(Broken()), call(serpent, "thing", "add", (1,)))


def test_user_code_communication_error_is_reported_not_fatal(daemon, conn, serpent):
    @expose
    class Relay:
        def forward(self):
            raise CommunicationError("nested proxy failed")

    daemon.register(Relay(), "relay")
    handle_message(daemon, conn, call(serpent, "relay", "forward"))
    assert isinstance(error_of(conn, serpent), CommunicationError)


def test_daemon_object_methods_via_dispatch(daemon, conn, serpent):
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, DAEMON_NAME, "registered"))
    assert sorted(result(conn, serpent)[1]) == sorted([DAEMON_NAME, "thing"])
    handle_message(daemon, conn, call(serpent, DAEMON_NAME, "ping"))
    assert result(conn, serpent)[1] is None
    handle_message(daemon, conn, call(serpent, DAEMON_NAME, "info"))
    assert DAEMON_NAME in result(conn, serpent)[1]
    handle_message(daemon, conn, call(serpent, DAEMON_NAME, "get_metadata", ("thing",)))
    assert "add" in result(conn, serpent)[1]["methods"]
    # the daemon object's own internals are not reachable
    handle_message(daemon, conn, call(serpent, DAEMON_NAME, "daemon"))
    assert isinstance(error_of(conn, serpent), SecurityError)


# -- the Dispatcher as the engines' DaemonHost --------------------------------------------------


def test_the_dispatcher_is_a_daemon_host(daemon):
    from pyrite.core.interfaces import DaemonHost

    assert isinstance(daemon.host, DaemonHost)
    assert daemon.host.workers is daemon.workers
    assert daemon.host.objects is daemon.objects and daemon.host.streams is daemon.streams


def test_serve_handshake_lifts_the_session_cap_and_refuse_builds_connectfail(daemon, ser):
    from pyrite.core.session import SERVER, Session

    session = Session(SERVER)
    conn = ClientConnection(Recorder())
    reply = daemon.host.serve_handshake(conn, session, connect_msg(ser, DAEMON_NAME, seq=12))
    assert reply.type == MSG_CONNECTOK and reply.seq == 12 and reply.serializer_id == ser.serializer_id
    assert session.handshake_done and conn.handshaked
    fresh = Session(SERVER)
    refusal = daemon.host.refuse(conn, fresh, connect_msg(ser, seq=13), "too many connections")
    assert refusal.type == MSG_CONNECTFAIL and refusal.seq == 13 and not fresh.handshake_done
    assert ser.loads(ReceivingMessage(refusal.data[:40], refusal.data[40:]).data) == "too many connections"


def test_refusal_of_an_unknown_serializer_is_in_marshal(daemon):
    reply = daemon.host.refuse(conn_for_test(), None, make_msg(MSG_CONNECT, 0, 3, 201, b"?"), "no")
    assert reply.type == MSG_CONNECTFAIL and reply.serializer_id == 2


def conn_for_test():
    return ClientConnection(Recorder())


def test_default_annotations_hook_is_not_called():
    class Counting(Daemon):
        calls = 0

    s1, s2 = socket.socketpair()
    with Counting(connected_socket=s1) as d:
        assert d.host._custom_annotations is False  # the do-nothing default is skipped on the hot path

    class Annotating(Daemon):
        def annotations(self):
            return {"XANN": b"1"}

    with Annotating(connected_socket=s1) as d:
        conn = conn_for_test()
        handle_message(d, conn, make_msg(MSG_PING, 0, 1, 1, b""))
        assert last_reply(conn).annotations == {"XANN": b"1"}
    s1.close()
    s2.close()


def test_housekeeping_and_shutdown_hooks(daemon):
    ran = []
    daemon.housekeeping_hooks.append(lambda: ran.append("housekeeping"))
    daemon.shutdown_hooks.append(lambda: ran.append("shutdown"))
    daemon.housekeeping_hooks.append(lambda: 1 / 0)  # a broken hook costs only itself
    daemon._housekeeping()
    assert ran == ["housekeeping"]
    daemon.close()
    daemon.close()
    assert ran == ["housekeeping", "shutdown"]  # once
    daemon.host.housekeeping()  # shut down: nothing runs
    assert ran == ["housekeeping", "shutdown"]


def test_client_disconnected_frees_what_the_client_had(daemon, conn, serpent):
    config.ITER_STREAM_LINGER = 0
    closed = []

    class Resource:
        def close(self):
            closed.append(True)

    resource = Resource()
    conn.tracked_resources.add(resource)
    daemon.register(Thing(), "thing")
    handle_message(daemon, conn, call(serpent, "thing", "generator"))
    assert daemon.streams.count_for(conn) == 1
    conn.pyroInstances[Thing] = Thing()
    daemon.host.client_disconnected(conn)
    assert daemon.streams.count_for(conn) == 0 and not daemon.streaming_responses
    assert closed == [True] and not conn.pyroInstances


def test_handshake_reply_payloads_are_kept_by_value():
    """The handshake reply payload is serialized once per (serializer, answer, metadata) and
    reused; another answer, another serializer or changed metadata gets its own payload."""
    from pyrite.core.handshakes import KEPT, HandshakeReplies

    class Counting:
        serializer_id = 99

        def __init__(self):
            self.dumped = 0

        def dumps(self, data):
            self.dumped += 1
            return (
                repr(sorted((k, sorted(v) if isinstance(v, set) else v) for k, v in data["meta"].items())).encode()
                + repr(data["handshake"]).encode()
            )

    replies = HandshakeReplies()
    ser = Counting()
    meta = {"methods": {"a", "b"}, "oneway": set(), "attrs": {"x"}}
    first = replies.payload(ser, "hello", meta)
    assert replies.payload(ser, "hello", {"methods": {"b", "a"}, "oneway": set(), "attrs": {"x"}}) is first
    assert ser.dumped == 1
    assert replies.payload(ser, "other", meta) != first
    assert replies.payload(ser, True, meta) != replies.payload(ser, 1, meta)  # equal, not the same answer
    assert replies.payload(ser, "hello", {**meta, "attrs": set()}) != first
    assert ser.dumped == 5
    # answers that are not plain values, and odd metadata, are serialized every time
    replies.payload(ser, {"token": 1}, meta)
    replies.payload(ser, {"token": 1}, meta)
    replies.payload(ser, 0.0, meta)
    replies.payload(ser, 0.0, meta)
    assert ser.dumped == 9
    for n in range(KEPT + 5):  # bounded: a flood of different answers does not pile up
        replies.payload(ser, f"answer {n}", meta)
    assert len(replies._kept) <= KEPT


@expose
class Answer:
    def value(self):
        return 42


def test_handshake_answers_reach_each_client():
    """With kept payloads, each client still gets its own validateHandshake answer."""
    config.SERVERTYPE = "thread"

    class Answering(Daemon):
        def validateHandshake(self, conn, data):
            return data

    daemon = Answering(host="127.0.0.1")
    uri = daemon.register(Answer(), "answer")
    seen = []

    class Checking(Proxy):
        def _pyroValidateHandshake(self, response):
            seen.append(response)

    with running(daemon):
        for data in ("one", "two", "one", None, 3):
            with Checking(uri) as proxy:
                proxy._pyroHandshake = data
                assert proxy.value() == 42
    assert seen == ["one", "two", "one", None, 3]
