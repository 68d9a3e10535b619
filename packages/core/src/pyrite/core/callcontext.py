"""``current_context``: per-thread (and, under asyncio, per-task) facts about the call being made or served.

In a daemon, during a call: ``client`` (the connection), ``client_sock_addr``,
``seq``, ``msg_flags``, ``serializer_id``, ``annotations`` (received) and
``response_annotations`` (set these to send annotations back).  In a client,
set ``correlation_id`` (a ``uuid.UUID``) and every message this thread sends
carries it; a daemon copies the id of the request into its context.

Outside an event loop every value belongs to the thread, as in Pyro5.  Inside
a running asyncio loop a value that a task sets belongs to that task (it lives
in a ``contextvars.ContextVar``), so two tasks on one loop never see each
other's correlation id or annotations; a task that set nothing sees the
thread's value, and a task it starts inherits what it had set by then.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from asyncio import events as _asyncio_events
from typing import Any

from .errors import PyroError

__all__ = ["current_context"]

# Names held per thread, or per task while an asyncio loop runs in the thread.
_FIELDS = (
    "client",
    "client_sock_addr",
    "seq",
    "msg_flags",
    "serializer_id",
    "annotations",
    "response_annotations",
    "correlation_id",
)
# Values that are mutated in place (``ctx.annotations["XYZW"] = ...``): a task gets its own copy
# on first read, so such a mutation stays in the task.
_DICT_FIELDS = frozenset(["annotations", "response_annotations"])

# A task's own values.  Every write makes a new dict (copy on write), so a task started later
# keeps the snapshot it inherited and never sees its parent's later writes.
_task_values: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "pyrite_call_context", default=None
)
# The C-level check: is a loop running in this thread?  Cheap enough for every access.
_running_loop = _asyncio_events._get_running_loop


def _task_get(ctx: _CallContext, name: str) -> Any:
    # the running task's value of ``name``: its own, else (a copy of, for a dict) the thread's
    values = _task_values.get()
    if values is not None and name in values:
        return values[name]
    value = getattr(ctx, "_v_" + name)
    if name in _DICT_FIELDS:
        value = dict(value)
        _task_values.set({**(values or {}), name: value})
    return value


def _task_set(name: str, value: Any) -> None:
    _task_values.set({**(_task_values.get() or {}), name: value})


def _field(name: str) -> property:
    slot = "_v_" + name

    def get(self: _CallContext) -> Any:
        if _running_loop() is not None:
            return _task_get(self, name)
        return getattr(self, slot)

    def set_(self: _CallContext, value: Any) -> None:
        if _running_loop() is not None:
            _task_set(name, value)
        else:
            setattr(self, slot, value)

    return property(get, set_, doc=f"``{name}`` of the current thread, or of the current asyncio task")


class _CallContext(threading.local):
    client = _field("client")
    client_sock_addr = _field("client_sock_addr")
    seq = _field("seq")
    msg_flags = _field("msg_flags")
    serializer_id = _field("serializer_id")
    annotations = _field("annotations")
    response_annotations = _field("response_annotations")
    correlation_id = _field("correlation_id")

    def __init__(self) -> None:
        self._v_client: Any = None
        self._v_client_sock_addr: Any = None
        self._v_seq = 0
        self._v_msg_flags = 0
        self._v_serializer_id = 0
        self._v_annotations: dict[str, bytes] = {}
        self._v_response_annotations: dict[str, bytes] = {}
        self._v_correlation_id: uuid.UUID | None = None

    def task_get(self, name: str) -> Any:
        """``getattr(current_context, name)`` for code that runs in a task on a running loop
        (the asyncio proxy's calls): the same value, without looking for the loop first."""
        return _task_get(self, name)

    def task_set(self, name: str, value: Any) -> None:
        """``setattr(current_context, name, value)`` for code that runs in a task on a running loop."""
        if name not in _FIELDS:
            raise AttributeError(f"current_context has no field {name!r}")
        _task_set(name, value)

    def to_global(self) -> dict[str, Any]:
        """The context as a dict, to carry it to another thread (see from_global)."""
        if _running_loop() is None:
            # a daemon captures this for every call: read the thread's slots straight away
            return {
                "client": self._v_client,
                "client_sock_addr": self._v_client_sock_addr,
                "seq": self._v_seq,
                "msg_flags": self._v_msg_flags,
                "serializer_id": self._v_serializer_id,
                "annotations": self._v_annotations,
                "response_annotations": self._v_response_annotations,
                "correlation_id": self._v_correlation_id,
            }
        # in a task: its own values, else the thread's (a dict field copied into the task on
        # first read, as a single read does), with one context-variable read and at most one write
        values = _task_values.get() or {}
        out: dict[str, Any] = {}
        copied: dict[str, Any] | None = None
        for name in _FIELDS:
            if name in values:
                out[name] = values[name]
                continue
            value = getattr(self, "_v_" + name)
            if name in _DICT_FIELDS:
                value = dict(value)
                if copied is None:
                    copied = {}
                copied[name] = value
            out[name] = value
        if copied:
            _task_values.set({**values, **copied})
        return out

    def from_global(self, values: dict[str, Any]) -> None:
        """Take over a context captured with to_global in another thread."""
        if _running_loop() is None:
            self._v_client = values["client"]
            self._v_client_sock_addr = values["client_sock_addr"]
            self._v_seq = values["seq"]
            self._v_msg_flags = values["msg_flags"]
            self._v_serializer_id = values["serializer_id"]
            self._v_annotations = values["annotations"]
            self._v_response_annotations = values["response_annotations"]
            self._v_correlation_id = values["correlation_id"]
            return
        _task_values.set({**(_task_values.get() or {}), **{key: values[key] for key in _FIELDS}})

    def serve(
        self,
        client: Any,
        client_sock_addr: Any,
        annotations: dict[str, bytes],
        correlation_id: uuid.UUID | None,
        request: tuple[int, int, int] | None = None,
    ) -> None:
        """What a daemon sets before it serves a message of ``client``, in one step: the fields
        above, empty ``response_annotations`` and, for a request, its ``(seq, msg_flags,
        serializer_id)``.  The same as setting each field, at a fraction of the cost."""
        if _running_loop() is not None:
            # in a task: one new dict of the task's values (copy on write, see _field)
            values = dict(_task_values.get() or ())
            values["client"] = client
            values["client_sock_addr"] = client_sock_addr
            values["annotations"] = annotations
            values["correlation_id"] = correlation_id
            values["response_annotations"] = {}
            if request is not None:
                values["seq"], values["msg_flags"], values["serializer_id"] = request
            _task_values.set(values)
            return
        self._v_client = client
        self._v_client_sock_addr = client_sock_addr
        self._v_annotations = annotations
        self._v_correlation_id = correlation_id
        if self._v_response_annotations:
            self._v_response_annotations = {}
        if request is not None:
            self._v_seq, self._v_msg_flags, self._v_serializer_id = request

    def serving(self, client: Any, seq: int) -> bool:
        """True if this thread (or task) holds the context of ``client``'s request ``seq``."""
        if _running_loop() is None:
            return self._v_client is client and self._v_seq == seq
        values = _task_values.get() or {}
        mine = values["client"] if "client" in values else self._v_client
        return bool(mine is client and (values["seq"] if "seq" in values else self._v_seq) == seq)

    def track_resource(self, resource: Any) -> None:
        """Tie a resource to the current client connection; the daemon calls its
        ``close()`` when that client disconnects."""
        if not self.client:
            raise PyroError("track_resource() needs a client connection, and this call has none")
        self.client.tracked_resources.add(resource)

    def untrack_resource(self, resource: Any) -> None:
        """Stop tracking a resource for the current client connection."""
        if not self.client:
            raise PyroError("untrack_resource() needs a client connection, and this call has none")
        self.client.tracked_resources.discard(resource)


current_context = _CallContext()
