"""pyrite.utils.httpgateway: the same HTTP requests to Pyro5 5.17's gateway and to pyrite's (same
status codes, same JSON shapes), then pyrite's handling of hostile input, its options and CLI."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from pyrite.utils import httpgateway

from tests.api.gateway_fixtures import KEY, WAIT, Gateway, body_json, make_app
from tests.api.processes import Process, free_port, script


def shape(value):
    """The structure of a JSON value: keys and types, not the contents of tracebacks."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return ["..."] if value and all(isinstance(v, str) for v in value) else [shape(v) for v in value]
    return type(value).__name__


CORR = str(uuid.uuid4())

# (id, method, path, extra headers, expected status): sent to both gateways with the key
SAME = [
    ("echo", "GET", "/pyro/http.service/echo?message=hello", {}, 200),
    ("echo-post-query", "POST", "/pyro/http.service/echo?message=hello", {}, 200),
    ("echo-list", "GET", "/pyro/http.service/echo?message=a&message=b", {}, 200),
    ("add", "GET", "/pyro/http.service/add?a=1&b=2", {}, 200),
    ("meta", "GET", "/pyro/http.service/$meta", {}, 200),
    ("attribute", "GET", "/pyro/http.service/answer", {}, 200),
    ("remote-error", "GET", "/pyro/http.service/error", {}, 500),
    ("no-such-method", "GET", "/pyro/http.service/nosuchmethod", {}, 500),
    ("unknown-name", "GET", "/pyro/http.nosuchname/echo?message=x", {}, 500),
    ("not-exposed", "GET", "/pyro/private.service/echo?message=x", {}, 403),
    ("oneway", "GET", "/pyro/http.service/fire?value=v", {"X-Pyro-Options": "oneway"}, 200),
    ("correlation", "GET", "/pyro/http.service/echo?message=c", {"X-Pyro-Correlation-Id": CORR}, 200),
    ("timeout", "GET", "/pyro/http.service/slow?seconds=4", {}, 500),
    ("key-as-param", "GET", f"/pyro/http.service/echo?message=k&$key={KEY}", {"X-Pyro-Gateway-Key": ""}, 200),
    ("wrong-key", "GET", "/pyro/http.service/echo?message=x", {"X-Pyro-Gateway-Key": "wrong"}, 403),
    ("no-method", "GET", "/pyro/http.service", {}, 404),
    ("options", "OPTIONS", "/pyro/http.service/echo", {}, 200),
    ("put", "PUT", "/pyro/http.service/echo", {}, 405),
    ("root", "GET", "/", {}, 302),
    ("elsewhere", "GET", "/favicon.ico", {}, 404),
    ("page", "GET", "/pyro/", {}, 200),
]


@pytest.mark.parametrize("method, path, headers, status", [c[1:] for c in SAME], ids=[c[0] for c in SAME])
def test_same_answers_as_pyro5_gateway(pyrite_gateway, pyro5_gateway, method, path, headers, status):
    ours = pyrite_gateway.call(path, method, headers=headers)
    theirs = pyro5_gateway.call(path, method, headers=headers)
    assert theirs[0] == status, theirs  # the table says what Pyro5 answers
    assert ours[0] == theirs[0], (ours, theirs)
    our_type = ours[1].get("content-type", "").split(";")[0]
    assert our_type == theirs[1].get("content-type", "").split(";")[0]
    if our_type == "application/json" and theirs[2]:
        mine, pyro5 = body_json(ours[2]), body_json(theirs[2])
        assert shape(mine) == shape(pyro5)
        if isinstance(pyro5, dict) and pyro5.get("__exception__"):
            assert mine["__class__"] == pyro5["__class__"]
        elif isinstance(pyro5, dict) and "methods" in pyro5:
            assert sorted(mine["methods"]) == sorted(pyro5["methods"])
            assert sorted(mine["attributes"]) == sorted(pyro5["attributes"])
        else:
            assert mine == pyro5
    else:
        assert bool(ours[2]) == bool(theirs[2])  # both empty (oneway, redirect) or both not
    if status == 200 and our_type == "application/json":
        assert ("x-pyro-correlation-id" in ours[1]) == ("x-pyro-correlation-id" in theirs[1])
    if "X-Pyro-Correlation-Id" in headers:
        assert ours[1]["x-pyro-correlation-id"] == theirs[1]["x-pyro-correlation-id"] == CORR
    if status == 302:
        assert ours[1]["location"].endswith("/pyro/") and theirs[1]["location"].endswith("/pyro/")


def test_results_and_errors(pyrite_gateway, backend):
    status, headers, body = pyrite_gateway.call("/pyro/http.service/echo?message=hello")
    assert (status, body_json(body)) == (200, "hello")
    uuid.UUID(headers["x-pyro-correlation-id"])
    assert headers["access-control-allow-origin"] == "*"
    status, _, body = pyrite_gateway.call("/pyro/http.service/error")
    error = body_json(body)
    assert status == 500 and error["__class__"] == "builtins.ValueError" and error["__exception__"] is True
    assert "on purpose" in error["args"][0]
    status, _, body = pyrite_gateway.call("/pyro/http.nosuchname/echo")
    assert status == 500 and body_json(body)["__class__"] == "Pyro5.errors.NamingError"
    status, _, body = pyrite_gateway.call("/pyro/http.service/slow?seconds=4")
    assert status == 500 and body_json(body)["__class__"] == "Pyro5.errors.TimeoutError"
    before = len(backend.service.fired)
    status, _, body = pyrite_gateway.call("/pyro/http.service/fire?value=1", headers={"X-Pyro-Options": "oneway"})
    assert (status, body) == (200, b"")
    deadline = time.monotonic() + WAIT
    while len(backend.service.fired) == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.service.fired[-1] == "1"


def test_post_body_arguments(pyrite_gateway):
    json_type = {"Content-Type": "application/json"}
    status, _, body = pyrite_gateway.call(
        "/pyro/http.service/add", "POST", body=json.dumps({"a": 20, "b": 22}).encode(), headers=json_type
    )
    assert (status, body_json(body)) == (200, 42)
    status, _, body = pyrite_gateway.call(
        "/pyro/http.service/echo",
        "POST",
        body=b"message=from+a+form",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body_json(body)) == (200, "from a form")
    status, _, body = pyrite_gateway.call(
        "/pyro/http.service/echo", "POST", body=json.dumps({"message": [1, {"x": None}]}).encode(), headers=json_type
    )
    assert (status, body_json(body)) == (200, [1, {"x": None}])


HOSTILE = [
    ("bad-json", "POST", "/pyro/http.service/echo", b"{not json", {"Content-Type": "application/json"}, 400),
    ("json-array", "POST", "/pyro/http.service/echo", b"[1, 2]", {"Content-Type": "application/json"}, 400),
    ("bad-utf8", "POST", "/pyro/http.service/echo", b'{"message": "\xff"}', {"Content-Type": "application/json"}, 400),
    ("other-type", "POST", "/pyro/http.service/echo", b"message", {"Content-Type": "text/plain"}, 415),
    ("dotdot", "GET", "/pyro/http.service/../echo", None, {}, 400),
    ("encoded-dotdot", "GET", "/pyro/http.service%2F..%2F..%2Fetc/echo", None, {}, 400),
    ("empty-segment", "GET", "/pyro/http.service//echo", None, {}, 400),
    ("nul-in-name", "GET", "/pyro/http.ser%00vice/echo", None, {}, 400),
    ("long-name", "GET", "/pyro/http." + "x" * 3000 + "/echo", None, {}, 400),
    ("bad-method", "GET", "/pyro/http.service/echo;rm", None, {}, 400),
    ("private-method", "GET", "/pyro/http.service/_secret", None, {}, 403),
    ("dunder-method", "GET", "/pyro/http.service/__class__", None, {}, 403),
    ("unexposed-name", "GET", "/pyro/Pyro.NameServer/list", None, {}, 403),
    ("bad-correlation", "GET", "/pyro/http.service/echo?message=x", None, {"X-Pyro-Correlation-Id": "nope"}, 400),
    ("attribute-args", "GET", "/pyro/http.service/answer?x=1", None, {}, 400),
    ("no-key", "GET", "/pyro/http.service/echo?message=x", None, {"X-Pyro-Gateway-Key": ""}, 403),
]


@pytest.mark.parametrize("method, path, body, headers, status", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_input_gets_a_clear_error_and_the_gateway_keeps_serving(
    pyrite_gateway, method, path, body, headers, status
):
    got, got_headers, text = pyrite_gateway.call(path, method, body=body, headers=headers)
    assert got == status, text
    assert got_headers["content-type"].startswith("text/plain") and text.startswith(str(status).encode())
    assert pyrite_gateway.call("/pyro/http.service/echo?message=still")[0] == 200


def test_huge_body_is_refused_unread(pyrite_gateway):
    import socket

    with socket.create_connection(("127.0.0.1", pyrite_gateway.port), timeout=WAIT) as sock:
        # announce a gigabyte and send none of it: the answer must come without reading the body
        sock.sendall(
            b"POST /pyro/http.service/echo HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Pyro-Gateway-Key: " + KEY.encode() + b"\r\nContent-Length: 1000000000\r\n\r\n"
        )
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 413")
    status, _, _ = pyrite_gateway.call("/pyro/http.service/echo", "POST", headers={"Content-Length": "-5"})
    assert status == 400
    assert pyrite_gateway.call("/pyro/http.service/echo?message=still")[0] == 200


def test_unexposed_names_are_never_looked_up():
    # no name server listens at this port: a lookup would fail with 500, the regex answers first
    dead = make_app(free_port())
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/pyro/private.thing/echo", "QUERY_STRING": ""}
    environ["HTTP_X_PYRO_GATEWAY_KEY"] = KEY
    statuses: list[str] = []
    dead(environ, lambda status, headers: statuses.append(status))
    assert statuses == ["403 Forbidden"]
    environ["PATH_INFO"] = "/pyro/http.thing/echo"
    dead(environ, lambda status, headers: statuses.append(status))
    assert statuses[-1].startswith("500")


def test_empty_regex_exposes_everything_and_no_key_needed(backend):
    app = make_app(backend.ns_port, ns_regex="", gateway_key=None, cors="")
    server = httpgateway.make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        gw = Gateway(server.server_address[1])
        status, headers, body = gw.request("GET", "/pyro/private.service/echo?message=open")
        assert (status, body_json(body)) == (200, "open")
        assert "access-control-allow-origin" not in headers
        status, _, body = gw.request("GET", "/pyro/Pyro.NameServer/lookup?name=http.service")
        assert status == 200 and "svc" in json.dumps(body_json(body))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)
    assert not thread.is_alive()


def test_slow_call_does_not_block_other_requests(pyrite_gateway):
    results: list = []
    slow = threading.Thread(target=lambda: results.append(pyrite_gateway.call("/pyro/http.service/slow?seconds=1.5")))
    slow.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert pyrite_gateway.call("/pyro/http.service/echo?message=quick")[0] == 200
    assert time.monotonic() - started < 1.0
    slow.join(WAIT)
    assert results[0][0] == 200 and body_json(results[0][2]) == "done"


def test_page_lists_exposed_names_escaped(pyrite_gateway, backend):
    status, headers, body = pyrite_gateway.call("/pyro/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "http.service" in page and "http.other" in page and "private.service" not in page
    assert 'data-method="echo"' in page and 'data-method="answer"' in page
    assert "<script src" not in page and "http://" not in page.replace("http://127.0.0.1", "")


def test_console_script(backend):
    ns = ["--nshost", "127.0.0.1", "--nsport", str(backend.ns_port)]
    proc = Process([script("pyrite-httpgateway"), "-H", "127.0.0.1", "-p", "0", "-g", KEY, "-t", "3", *ns])
    try:
        port = int(proc.wait_for(r"serving on http://127\.0\.0\.1:(\d+)/pyro/").group(1))
        gw = Gateway(port)
        status, _, body = gw.call("/pyro/http.service/echo?message=cli")
        assert (status, body_json(body)) == (200, "cli")
        assert gw.request("GET", "/pyro/http.service/echo?message=x")[0] == 403  # -g: key required
        assert gw.call("/pyro/private.service/echo")[0] == 403  # default -e http\.
    finally:
        proc.stop()
    bad = Process([script("pyrite-httpgateway"), "-e", "(unclosed"])
    try:
        assert bad.wait_exit(WAIT * 2) == 2
    finally:
        bad.stop()


def test_options_match_pyro5(monkeypatch):
    import argparse

    import Pyro5.utils.httpgateway

    captured: dict = {}

    def capture(self, args=None, namespace=None):
        captured.update({a.dest: a.option_strings for a in self._actions})
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        Pyro5.utils.httpgateway.main([])
    monkeypatch.undo()
    ours = {a.dest: a.option_strings for a in httpgateway._parser()._actions}
    assert {k: v for k, v in ours.items() if k in captured} == captured
    assert set(ours) - set(captured) == {"nshost", "nsport", "max_body"}


def test_runs_as_python_module(backend):
    import sys

    ns = ["--nshost", "127.0.0.1", "--nsport", str(backend.ns_port), "-e", ""]
    proc = Process([sys.executable, "-m", "pyrite.utils.httpgateway", "-H", "127.0.0.1", "-p", "0", *ns])
    try:
        proc.wait_for("no expose regex")
        port = int(proc.wait_for(r"serving on http://127\.0\.0\.1:(\d+)/pyro/").group(1))
        status, _, body = Gateway(port).request("GET", "/pyro/private.service/echo?message=all")
        assert (status, body_json(body)) == (200, "all")  # -e "": everything exposed, no key set
    finally:
        proc.stop()
