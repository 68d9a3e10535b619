"""``ObjectRegistry``: the objects a daemon serves, by object id.

It holds what ``Daemon.register`` registered (an object, a class, or a weak
reference), the instances of ``instance_mode="single"`` classes, and knows
how to turn a registration into the object that serves a call:

* an object serves itself (a weak registration: while it lives);
* a class gets instances per its ``@behavior``: ``"session"`` (one per client
  connection, the default), ``"single"`` (one for the daemon) or
  ``"percall"`` (a new one per call), made by the class or its
  ``instance_creator``.

``objects_by_id`` is the very dict ``Daemon.objectsById`` shows (Pyro5 code
reads and even edits it), ``single_instances`` is ``Daemon._pyroInstances``.

Example::

    registry = ObjectRegistry(owner=daemon, daemon_object=DaemonObject(daemon))
    registry.register(Greeter, "greeter")
    target = registry.target("greeter", conn)   # a Greeter instance for this connection
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from . import plugins
from .errors import DaemonError
from .uri import DAEMON_NAME, URI

__all__ = ["ObjectRegistry", "unpack", "unpack_quiet"]

log = logging.getLogger("pyrite.core.objects")

_WEAKREF = weakref.ReferenceType
INSTANCE_MODES = ("session", "single", "percall")


def unpack(registered: Any) -> Any:
    """A registered object, through its weak reference if it was registered weakly."""
    if type(registered) is _WEAKREF:
        target = registered()
        if target is None:
            raise DaemonError("weakly registered object was deleted meanwhile")
        return target
    return registered


def unpack_quiet(registered: Any) -> Any:
    """As ``unpack``, but None for a dead weak reference."""
    return registered() if type(registered) is _WEAKREF else registered


def _create_instance(clazz: type, creator: Callable[[type], Any] | None) -> Any:
    try:
        if creator is None:
            return clazz()
        obj = creator(clazz)
        if not isinstance(obj, clazz):
            raise TypeError(f"instance_creator for {clazz.__name__} returned a {type(obj).__name__}")
        return obj
    except Exception:
        log.exception("creating an instance of %s failed", clazz.__name__)
        raise


def _unregister_weak(registry_ref: weakref.ref[ObjectRegistry], object_id: str, ref: Any) -> None:
    registry = registry_ref()
    if registry is not None and registry.objects_by_id.get(object_id) is ref:
        registry.objects_by_id.pop(object_id, None)


class ObjectRegistry:
    """Object id -> registered object, class or weak reference; instance modes.

    ``owner`` is what registered objects see as ``obj._pyroDaemon`` (through a
    weak proxy) and what ``auto_proxy`` asks for a proxy; ``daemon_object`` is
    registered as ``Pyro.Daemon``.
    """

    def __init__(self, owner: Any, daemon_object: Any, auto_proxy: Callable[[Any], Any] | None = None) -> None:
        self._owner = weakref.proxy(owner)
        self._auto_proxy = auto_proxy
        daemon_object._pyroId = DAEMON_NAME
        self.objects_by_id: dict[str, Any] = {DAEMON_NAME: daemon_object}
        self.single_instances: dict[type, Any] = {}
        self.single_lock = threading.Lock()  # one instance per "single" class, even under races

    @property
    def daemon_object(self) -> Any:
        """The object registered as ``Pyro.Daemon``."""
        return self.objects_by_id[DAEMON_NAME]

    # ----- registering

    def register(self, obj_or_class: Any, object_id: str | None = None, force: bool = False, weak: bool = False) -> str:
        """Register an object or class under ``object_id`` (generated if None); returns the id.

        Refuses an id already taken, an object already registered (unless
        ``force``), replacing ``Pyro.Daemon``, and ``weak`` for a class.
        """
        if not object_id:
            object_id = f"obj_{uuid.uuid4().hex}"
        elif not isinstance(object_id, str):
            raise TypeError(f"objectId must be a str or None, not {type(object_id).__name__}")
        is_class = isinstance(obj_or_class, type)
        if is_class:
            if weak:
                raise TypeError(f"weak=True needs an instance; {obj_or_class.__name__} is a class")
            # a class without @behavior gets the default: one instance per client connection
            obj_or_class._pyroInstancing = getattr(obj_or_class, "_pyroInstancing", ("session", None))
        objects = self.objects_by_id
        if not force:
            existing = getattr(obj_or_class, "_pyroId", "")
            if existing and unpack_quiet(objects.get(existing)) is obj_or_class:
                raise DaemonError(
                    f"{obj_or_class!r} is already registered as {existing!r} (use force=True to re-register)"
                )
            if object_id in objects:
                raise DaemonError(f"the id {object_id!r} is already taken in this daemon")
        elif object_id == DAEMON_NAME:
            raise DaemonError("cannot replace the daemon object")
        obj_or_class._pyroId = object_id
        obj_or_class._pyroDaemon = self._owner
        if self._auto_proxy is not None:
            replaced = obj_or_class if is_class else type(obj_or_class)
            for serializer in plugins.all_serializers().values():
                serializer.register_type_replacement(replaced, self._auto_proxy)
        if weak:
            ref = weakref.ref(obj_or_class)
            objects[object_id] = ref
            weakref.finalize(obj_or_class, _unregister_weak, weakref.ref(self), object_id, ref)
        else:
            objects[object_id] = obj_or_class
        return object_id

    def unregister(self, object_or_id: Any) -> None:
        """Remove a registered object or class, given itself or its id (``Pyro.Daemon`` stays)."""
        if object_or_id is None:
            raise ValueError("unregister() needs an object or an object id, got None")
        object_id: str | None
        if isinstance(object_or_id, str):
            object_id = object_or_id
            obj = None
        else:
            object_id = getattr(object_or_id, "_pyroId", None)
            if object_id is None:
                raise DaemonError(f"{object_or_id!r} has no Pyro id: it was never registered")
            obj = object_or_id
        if object_id == DAEMON_NAME:
            return
        registered = self.objects_by_id.pop(object_id, None)
        if registered is not None:
            target = obj if obj is not None else unpack_quiet(registered)
            if target is not None:
                for attr in ("_pyroId", "_pyroDaemon"):
                    with contextlib.suppress(AttributeError, TypeError):
                        delattr(target, attr)
            # the serializers' type replacement stays: other objects of the type may still need it

    def object_id_of(self, object_or_id: Any) -> str:
        """The id of a registered object, or the given id string itself."""
        if isinstance(object_or_id, str):
            return object_or_id
        object_id = getattr(object_or_id, "_pyroId", None)
        if object_id is None or object_id not in self.objects_by_id:
            raise DaemonError(f"{object_or_id!r} is not registered in this daemon")
        return str(object_id)

    def uri_for(self, object_or_id: Any, location: str) -> URI:
        """The URI of a registered object (or of any object id string) at ``location``."""
        return URI(f"PYRO:{self.object_id_of(object_or_id)}@{location}")

    # ----- finding what serves a call

    def get(self, object_id: Any) -> Any:
        """The registration under ``object_id`` (object, class or weak reference), or None."""
        try:
            return self.objects_by_id.get(object_id)
        except TypeError:  # an unhashable id from a hostile peer
            return None

    def lookup(self, object_id: Any) -> Any:
        """The registered object or class (weak references followed); DaemonError if none."""
        registered = self.get(object_id)
        if registered is None:
            raise DaemonError(f"no object registered with id {object_id!r:.100}")
        return unpack(registered) if type(registered) is _WEAKREF else registered

    def target(self, object_id: Any, conn: Any) -> Any:
        """The object that serves a call to ``object_id`` from ``conn`` (a class gives an instance)."""
        obj = self.lookup(object_id)
        if isinstance(obj, type):
            return self.instance_for(obj, conn)
        return obj

    def instance_for(self, clazz: type, conn: Any) -> Any:
        """The instance of a registered class that serves a call from ``conn``, per its instance mode."""
        instance_mode, creator = getattr(clazz, "_pyroInstancing", ("session", None))
        if instance_mode == "single":
            instance = self.single_instances.get(clazz)
            if instance is None:
                with self.single_lock:
                    instance = self.single_instances.get(clazz)
                    if instance is None:
                        instance = self.single_instances[clazz] = _create_instance(clazz, creator)
            return instance
        if instance_mode == "session":
            instances = getattr(conn, "pyroInstances", None)
            if instances is None:
                raise DaemonError("session instance mode needs a client connection")
            instance = instances.get(clazz)
            if instance is None:
                instance = instances[clazz] = _create_instance(clazz, creator)
            return instance
        if instance_mode == "percall":
            return _create_instance(clazz, creator)
        raise DaemonError(f"class {clazz.__name__} has an unknown instance mode {instance_mode!r}")

    def __len__(self) -> int:
        return len(self.objects_by_id)
