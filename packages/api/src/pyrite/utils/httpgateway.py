"""The HTTP gateway: name-server objects over HTTP + JSON (Pyro5's ``Pyro5.utils.httpgateway``).

Run it (stdlib ``wsgiref`` server, one thread per request)::

    pyrite-httpgateway -H 127.0.0.1 -p 8080 -e "http\\." -g secret -t 5
    python -m pyrite.utils.httpgateway ...          # the same

or hand ``pyro_app`` (a WSGI application) to any WSGI server.  Requests:

* ``GET``/``POST /pyro/<name>/<method>?arg=value&...``: looks ``<name>`` up in
  the name server and calls ``<method>(arg=value, ...)`` with the JSON
  serializer; the reply body is the JSON result.  A POST body may carry the
  arguments too, as a JSON object (``Content-Type: application/json``) or a
  form (``application/x-www-form-urlencoded``).  A repeated query argument
  arrives as a list.  An exposed attribute is read with ``/<name>/<attr>``.
* ``/pyro/<name>/$meta``: ``{"methods": [...], "attributes": [...]}``.
* Header ``X-Pyro-Options: oneway``: the call is made oneway; 200, empty body.
* Header ``X-Pyro-Correlation-Id``: the call's correlation id (else a new
  one); every successful reply carries it back in the same header.
* With a gateway key (``-g``), every call needs it in the header
  ``X-Pyro-Gateway-Key`` or the ``$key`` query argument, else 403.
* ``/pyro/``: a web page listing the exposed names, where a person can call a
  method and see its JSON result.  ``/`` redirects there.

Status codes are Pyro5's: 200; 302 for ``/``; 403 for a wrong gateway key or a
name outside the expose regex (``-e``, matched at the start of the name as
Pyro5's ``re.match``; such a name is never looked up); 404 for other paths;
405 for methods other than GET/POST/OPTIONS; 500 with the exception as JSON
(``{"__class__": ..., "__exception__": true, "args": [...], "attributes":
{...}}``) when the call or the lookup fails, including a timeout (``-t``, the
per-request limit).  Hostile input gets a clear error instead (pyrite's own
additions): 400 for malformed JSON, a bad ``Content-Length``, a bad
correlation id, an object name with empty, ``.`` or ``..`` path segments or
control characters, a method name that is not an identifier, or arguments to
an attribute; 403 for private (``_``-prefixed) method names; 413 for a body
larger than ``max_body`` (1 MiB; never read); 415 for a body of another type.
The gateway keeps serving after each of them.
"""

from __future__ import annotations

import argparse
import json
import re
import socketserver
import sys
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _wsgiref_server

from pyrite.api import __version__
from pyrite.core.callcontext import current_context
from pyrite.core.client import Proxy
from pyrite.core.config import config
from pyrite.core.errors import CommunicationError, NamingError
from pyrite.core.naming import locate_ns
from pyrite.core.protocol import FLAGS_EXCEPTION
from pyrite.serializers import SerializerBase

from . import gatewaypage

__all__ = ["GatewayApp", "pyro_app", "get_nameserver", "singlyfy_parameters", "make_server", "main"]

StartResponse = Callable[..., Any]
JSON_TYPE = "application/json; charset=utf-8"
_METHOD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 1024


class _Refusal(Exception):
    """A request the gateway answers with ``status`` and a text ``message`` itself."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def singlyfy_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """Turn each one-element list of a ``parse_qs`` result into that element (in place; returned)."""
    for key, value in parameters.items():
        if isinstance(value, (list, tuple)) and len(value) == 1:
            parameters[key] = value[0]
    return parameters


class GatewayApp:
    """The WSGI application.  Settings are attributes (Pyro5's names), read on every request:

    ``ns_regex`` (names that may be reached; "" exposes all), ``gateway_key`` (str/bytes or
    None), ``cors`` (the Access-Control-Allow-Origin value; "" sends no CORS headers),
    ``comm_timeout`` (seconds per call, 0 for none), ``ns_host``/``ns_port`` (None: from
    config), ``max_body`` (bytes), ``page_limit`` (names listed on the page).
    """

    def __init__(self) -> None:
        self.ns_regex = r"http\."
        self.cors = ""
        self.gateway_key: str | bytes | None = None
        self.comm_timeout: float = config.COMMTIMEOUT
        self.ns_host: str | None = None
        self.ns_port: int | None = None
        self.max_body = 1024 * 1024
        self.page_limit = 10
        self._ns_uri: Any = None  # where the name server was found

    # -- WSGI entry ------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request (see the module docstring)."""
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "").lstrip("/")
        try:
            if not path:
                start_response("302 Found", [("Location", "/pyro/")])
                return []
            if not path.startswith("pyro/"):
                return self._text(start_response, "404 Not Found", "404 Not Found")
            if method == "OPTIONS":
                return self._text(start_response, "200 OK", "200 OK")
            if method not in ("GET", "POST"):
                return self._text(start_response, "405 Method Not Allowed", "405 Method Not Allowed")
            path = path[len("pyro/") :]
            if not path:
                return self._homepage(environ, start_response)
            return self._call(environ, path, start_response)
        except _Refusal as refusal:
            return self._text(start_response, refusal.status, refusal.message)
        except Exception as exc:  # the gateway answers and keeps serving, whatever happened
            return self._exception(environ, start_response, exc, path)

    # -- responses -------------------------------------------------------------------------

    def _headers(self, content_type: str, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
        headers = [("Content-Type", content_type), *extra]
        if self.cors:
            headers += [
                ("Access-Control-Allow-Origin", self.cors),
                ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                (
                    "Access-Control-Allow-Headers",
                    "Content-Type, X-Pyro-Options, X-Pyro-Gateway-Key, X-Pyro-Correlation-Id",
                ),
            ]
        return headers

    def _text(self, start_response: StartResponse, status: str, message: str) -> list[bytes]:
        start_response(status, self._headers("text/plain; charset=utf-8"))
        return [message.encode("utf-8")]

    def _json(self, start_response: StartResponse, status: str, body: bytes, corr: uuid.UUID | None) -> list[bytes]:
        extra = [("X-Pyro-Correlation-Id", str(corr))] if corr is not None else []
        start_response(status, self._headers(JSON_TYPE, extra))
        return [body] if body else []

    def _exception(
        self, environ: dict[str, Any], start_response: StartResponse, exc: Exception, path: str
    ) -> list[bytes]:
        errors = environ.get("wsgi.errors", sys.stderr)
        print(f"pyrite httpgateway: {path!r} failed:", file=errors)
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=errors)
        body = json.dumps(SerializerBase.class_to_dict(exc), default=repr).encode("utf-8")
        return self._json(start_response, "500 Internal Server Error", body, None)

    # -- the name server -------------------------------------------------------------------

    def nameserver(self) -> Proxy:
        """A new proxy of the name server (found with ``locate_ns`` once, then remembered)."""
        uri = self._ns_uri
        if uri is None:
            with locate_ns(self.ns_host, self.ns_port) as found:
                uri = self._ns_uri = found._pyroUri
        ns = Proxy(uri)
        ns._pyroTimeout = self.comm_timeout or None
        return ns

    def _with_nameserver(self, action: Callable[[Proxy], Any]) -> Any:
        # a proxy per request: the serving threads come and go, and a proxy belongs to one thread
        try:
            with self.nameserver() as ns:
                return action(ns)
        except CommunicationError:
            # the name server went away (or moved): locate it again, once
            self._ns_uri = None
            with self.nameserver() as ns:
                return action(ns)

    # -- the page --------------------------------------------------------------------------

    def _homepage(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        try:
            listing: dict[str, Any] = self._with_nameserver(lambda ns: ns.list(regex=self.ns_regex or None))
            location = str(self._ns_uri.location)
        except (NamingError, CommunicationError) as exc:
            return self._text(
                start_response, "500 Internal Server Error", f"cannot reach the name server ({exc}); reload to retry"
            )
        names = sorted(listing)
        objects: list[gatewaypage.ObjectInfo] = []
        for name in names[: self.page_limit]:
            try:
                with Proxy(listing[name]) as proxy:
                    proxy._pyroTimeout = self.comm_timeout or None
                    proxy._pyroBind()
                    objects.append((name, sorted(proxy._pyroMethods), sorted(proxy._pyroAttrs), ""))
            except Exception as exc:
                print(
                    f"pyrite httpgateway: no metadata for {name!r}: {exc}", file=environ.get("wsgi.errors", sys.stderr)
                )
                objects.append((name, (), (), f"{type(exc).__name__}: {exc}"))
        page = gatewaypage.render(objects, location, self.ns_regex, __version__, len(names) - len(objects))
        start_response("200 OK", self._headers("text/html; charset=utf-8"))
        return [page.encode("utf-8")]

    # -- one call --------------------------------------------------------------------------

    def _parameters(self, environ: dict[str, Any]) -> dict[str, Any]:
        params = singlyfy_parameters(urllib.parse.parse_qs(environ.get("QUERY_STRING", "")))
        if environ.get("REQUEST_METHOD") != "POST":
            return params
        text = environ.get("CONTENT_LENGTH") or "0"
        try:
            length = int(text)
        except ValueError:
            raise _Refusal("400 Bad Request", f"400 Bad Request: invalid Content-Length {text!r}") from None
        if length < 0:
            raise _Refusal("400 Bad Request", f"400 Bad Request: invalid Content-Length {text!r}")
        if length > self.max_body:
            raise _Refusal(
                "413 Payload Too Large", f"413 Payload Too Large: the body may be {self.max_body} bytes at most"
            )
        body = environ["wsgi.input"].read(length) if length else b""
        if not body.strip():
            return params
        kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if kind == "application/json":
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _Refusal("400 Bad Request", f"400 Bad Request: the body is not valid JSON: {exc}") from None
            if not isinstance(data, dict):
                raise _Refusal("400 Bad Request", "400 Bad Request: the JSON body must be an object of arguments")
            params.update(data)
        elif kind == "application/x-www-form-urlencoded":
            try:
                form = body.decode("utf-8")
            except UnicodeDecodeError:
                raise _Refusal("400 Bad Request", "400 Bad Request: the form body is not UTF-8") from None
            params.update(singlyfy_parameters(urllib.parse.parse_qs(form)))
        else:
            raise _Refusal(
                "415 Unsupported Media Type",
                "415 Unsupported Media Type: send arguments as application/json or a form",
            )
        return params

    def _check_key(self, environ: dict[str, Any], params: dict[str, Any]) -> None:
        expected = self.gateway_key
        if not expected:
            params.pop("$key", None)
            return
        if isinstance(expected, str):
            expected = expected.encode("utf-8")
        given = environ.get("HTTP_X_PYRO_GATEWAY_KEY", "") or params.get("$key", "")
        params.pop("$key", None)
        if not isinstance(given, str) or given.encode("utf-8") != expected:
            raise _Refusal("403 Forbidden", "403 Forbidden: the gateway key is missing or wrong")

    def _check_names(self, object_name: str, method: str) -> None:
        segments = object_name.split("/")
        if (
            len(object_name) > MAX_NAME_LENGTH
            or _CONTROL_RE.search(object_name)
            or any(s in ("", ".", "..") for s in segments)
        ):
            raise _Refusal("400 Bad Request", f"400 Bad Request: invalid object name {object_name[:100]!r}")
        if method != "$meta" and not _METHOD_RE.match(method):
            raise _Refusal("400 Bad Request", f"400 Bad Request: invalid method name {method[:100]!r}")
        if self.ns_regex and not re.match(self.ns_regex, object_name):
            raise _Refusal("403 Forbidden", "403 Forbidden: this name is not exposed by the gateway")
        if method.startswith("_"):
            raise _Refusal("403 Forbidden", "403 Forbidden: names starting with _ are never reachable")

    def _call(self, environ: dict[str, Any], path: str, start_response: StartResponse) -> list[bytes]:
        object_name, slash, method = path.rpartition("/")
        if not slash or not object_name or not method:
            return self._text(start_response, "404 Not Found", "404 Not Found")
        self._check_names(object_name, method)
        params = self._parameters(environ)
        self._check_key(environ, params)
        options = {o.strip() for o in environ.get("HTTP_X_PYRO_OPTIONS", "").split(",")}
        header_corr = environ.get("HTTP_X_PYRO_CORRELATION_ID", "")
        try:
            corr = uuid.UUID(header_corr) if header_corr else uuid.uuid4()
        except ValueError:
            raise _Refusal(
                "400 Bad Request", f"400 Bad Request: invalid correlation id {header_corr[:100]!r}"
            ) from None
        uri = self._with_nameserver(lambda ns: ns.lookup(object_name))
        current_context.correlation_id = corr
        try:
            with Proxy(uri) as proxy:
                proxy._pyroTimeout = self.comm_timeout or None
                proxy._pyroSerializer = "json"
                proxy._pyroGetMetadata()
                if method == "$meta":
                    meta = {"methods": sorted(proxy._pyroMethods), "attributes": sorted(proxy._pyroAttrs)}
                    return self._json(start_response, "200 OK", json.dumps(meta).encode("utf-8"), corr)
                oneway = "oneway" in options
                if oneway:
                    proxy._pyroOneway.add(method)
                proxy._pyroRawWireResponse = True  # pass the server's JSON through untouched
                if method in proxy._pyroAttrs:
                    if params:
                        raise _Refusal("400 Bad Request", f"400 Bad Request: {method!r} is an attribute: no arguments")
                    reply = getattr(proxy, method)
                else:
                    reply = getattr(proxy, method)(**params)
        finally:
            current_context.correlation_id = None
        if reply is None or oneway:
            return self._json(start_response, "200 OK", b"", corr)
        data = bytes(reply.data)
        if reply.flags & FLAGS_EXCEPTION:
            return self._json(start_response, "500 Internal Server Error", data, None)
        return self._json(start_response, "200 OK", data, corr)


pyro_app = GatewayApp()
"""The gateway's WSGI application (configure it through its attributes)."""


def get_nameserver() -> Proxy:
    """A proxy of the name server ``pyro_app`` uses (close it when done)."""
    return pyro_app.nameserver()


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    # one thread per request: a slow call must not hold up every other client
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"pyrite httpgateway {self.address_string()} - {format % args}\n")


def make_server(host: str, port: int, app: Any = pyro_app) -> WSGIServer:
    """A threading ``wsgiref`` server for ``app`` on ``host:port`` (port 0: any free port)."""
    return _wsgiref_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_Handler)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyrite-httpgateway", description="Serve name-server-registered pyrite objects over HTTP and JSON."
    )
    parser.add_argument("-H", "--host", default="localhost", help="host name or address to listen on (%(default)s)")
    parser.add_argument("-c", "--cors", default="*", help="value of Access-Control-Allow-Origin (%(default)s)")
    parser.add_argument("-p", "--port", type=int, default=8080, help="port to listen on (%(default)d; 0: any)")
    parser.add_argument("-e", "--expose", default=pyro_app.ns_regex, help="regex of names to expose (%(default)s)")
    parser.add_argument("-g", "--gatewaykey", help="the key clients must send to use the gateway")
    parser.add_argument(
        "-t", "--timeout", type=float, default=pyro_app.comm_timeout, help="seconds per call (COMMTIMEOUT; 0: none)"
    )
    parser.add_argument("--nshost", help="name server host (default: config.NS_HOST, or broadcast)")
    parser.add_argument("--nsport", type=int, help="name server port (default: config.NS_PORT)")
    parser.add_argument("--max-body", type=int, default=pyro_app.max_body, help="largest request body in bytes")
    return parser


def main(args: Sequence[str] | None = None) -> int:
    """``pyrite-httpgateway``: configure ``pyro_app`` from the options and serve it until interrupted."""
    options = _parser().parse_args(args)
    try:
        re.compile(options.expose)
    except re.error as exc:
        print(f"invalid expose regex {options.expose!r}: {exc}", file=sys.stderr)
        return 2
    pyro_app.gateway_key = (options.gatewaykey or "").encode("utf-8")
    pyro_app.ns_regex = options.expose
    pyro_app.cors = options.cors
    pyro_app.comm_timeout = config.COMMTIMEOUT = options.timeout
    pyro_app.ns_host, pyro_app.ns_port = options.nshost, options.nsport
    pyro_app.max_body = options.max_body
    if pyro_app.ns_regex:
        print(f"exposing names that match {pyro_app.ns_regex!r}", flush=True)
    else:
        print("warning: no expose regex, every registered name is reachable", flush=True)
    try:
        with get_nameserver() as ns:
            print(f"name server: {ns._pyroUri}", flush=True)
    except (NamingError, CommunicationError):
        print("no name server yet: it is looked up again on each request", flush=True)
    server = make_server(options.host, options.port)
    host, port = server.socket.getsockname()[:2]
    print(f"pyrite HTTP gateway serving on http://{host}:{port}/pyro/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
