"""The exceptions pyrite raises.  Class names are Pyro5's, so a remote error
crosses the wire as ``Pyro5.errors.<Name>`` and maps back to these classes.

``get_pyro_traceback()`` and ``excepthook`` show the remote traceback that
travels with an exception raised in a daemon (attribute ``_pyroTraceback``).
"""

from __future__ import annotations

import linecache
import sys
import traceback
from types import TracebackType
from typing import Any


class PyroError(Exception):
    """Generic base of all pyrite errors."""


class CommunicationError(PyroError):
    """A network communication problem."""


class ConnectionClosedError(CommunicationError):
    """The connection was closed unexpectedly."""


class TimeoutError(CommunicationError):
    """A communication timeout occurred."""


class ProtocolError(CommunicationError):
    """A malformed or unexpected wire message."""


class MessageTooLargeError(ProtocolError):
    """A message is larger than config.MAX_MESSAGE_SIZE."""


class NamingError(PyroError):
    """A problem with a name or a name server lookup."""


class DaemonError(PyroError):
    """The daemon encountered a problem."""


class SecurityError(PyroError):
    """Something was refused for security reasons (not exposed, private, not allowed)."""


class SerializeError(ProtocolError):
    """Data could not be serialized or deserialized."""


# every class above, by name: what the serializers accept as ``Pyro5.errors.<name>``.
ERROR_CLASSES: dict[str, type[PyroError]] = {
    cls.__name__: cls
    for cls in (
        PyroError,
        CommunicationError,
        ConnectionClosedError,
        TimeoutError,
        ProtocolError,
        MessageTooLargeError,
        NamingError,
        DaemonError,
        SecurityError,
        SerializeError,
    )
}


def _format_remote(lines: list[str]) -> list[str]:
    out = [" +--- This exception occurred remotely (pyrite) - Remote traceback:"]
    for chunk in lines:
        for line in chunk.rstrip("\n").split("\n"):
            out.append("\n | " + line)
    out.append("\n +--- end of the remote traceback\n")
    return out


def get_pyro_traceback(
    ex_type: Any = None, ex_value: BaseException | None = None, ex_tb: TracebackType | None = None
) -> list[str]:
    """The traceback lines of an exception, including the remote part if it came from a daemon.

    With no arguments it uses the exception being handled (``sys.exc_info()``).
    """
    from .config import config

    if ex_type is not None and ex_value is None and ex_tb is None and not isinstance(ex_type, type):
        raise TypeError("invalid argument: ex_type should be an exception type, or supply no arguments")
    if ex_type is None and ex_tb is None:
        ex_type, ex_value, ex_tb = sys.exc_info()
    local = format_traceback(ex_type, ex_value, ex_tb, config.DETAILED_TRACEBACK)
    remote = getattr(ex_value, "_pyroTraceback", None)
    return local + _format_remote(remote) if remote else local


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return "<unrepresentable>"


def format_traceback(
    ex_type: Any = None,
    ex_value: BaseException | None = None,
    ex_tb: TracebackType | None = None,
    detailed: bool = False,
) -> list[str]:
    """Format a traceback as a list of lines; ``detailed`` adds each frame's local variables."""
    if ex_type is None and ex_tb is None:
        ex_type, ex_value, ex_tb = sys.exc_info()
    if not detailed:
        return traceback.format_exception(ex_type, ex_value, ex_tb)
    rule = "-" * 52 + "\n"
    out = [rule, f" EXCEPTION {ex_type}: {ex_value}\n", " Frames with their local variables, innermost last\n"]
    first = True
    tb = ex_tb
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        where = code.co_name
        if "self" in frame.f_locals:
            where = f"{type(frame.f_locals['self']).__name__}.{where}"
        out += [
            rule,
            f'File "{code.co_filename}", line {tb.tb_lineno}, in {where}\n',
            "Line:\n",
            "    " + linecache.getline(code.co_filename, tb.tb_lineno).strip() + "\n",
        ]
        if not first:
            out.append("Locals:\n")
            for name in sorted(frame.f_locals):
                out.append(f"    {name} = {_safe_repr(frame.f_locals[name])}\n")
        first = False
        tb = tb.tb_next
    out += [rule, f" EXCEPTION {ex_type}: {ex_value}\n", rule]
    return out


def excepthook(ex_type: Any, ex_value: BaseException, ex_tb: TracebackType | None) -> None:
    """A ``sys.excepthook`` that prints remote tracebacks too."""
    sys.stderr.write("".join(get_pyro_traceback(ex_type, ex_value, ex_tb)))


class ExceptionWrapper:
    """An exception carried as a *value*: the result of one failed call inside a batch.

    On the wire it is ``Pyro5.core._ExceptionWrapper`` with key ``exception``.
    ``raiseIt()`` raises a fresh copy, keeping the remote traceback.
    """

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception

    def raiseIt(self) -> None:
        exc = self.exception
        try:
            err = type(exc)(*exc.args)
        except Exception:
            err = exc
        remote_tb = getattr(exc, "_pyroTraceback", None)
        if remote_tb is not None:
            err._pyroTraceback = remote_tb  # type: ignore[attr-defined]
        raise err
