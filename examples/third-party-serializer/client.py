"""Lists the installed serializer plugins, then calls the server with the example one."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import pyrite.api as api
from pyrite.core import plugins

PLUGIN = "example-repr"


def list_serializers() -> None:
    print("installed serializers:")
    for ep in sorted(entry_points(group=plugins.SERIALIZER_GROUP), key=lambda ep: ep.name):
        try:
            serializer_id = plugins.get_serializer(ep.name).serializer_id
        except plugins.PluginError as exc:  # e.g. an optional library that is not installed
            print(f"  {ep.name:14} unusable: {exc}")
            continue
        print(f"  {ep.name:14} id {serializer_id:<3} from {ep.dist.name if ep.dist else '?'}")


def run(uri: str) -> None:
    list_serializers()
    api.config.SERIALIZER = PLUGIN  # every proxy made from now on speaks it
    with api.Proxy(uri) as inspector:
        print("the client speaks:", inspector._pyroSerializer or api.config.SERIALIZER)
        seen = inspector.serializer_id()
        print(f"the server saw serializer id {seen}, which is {plugins.get_serializer_by_id(seen).name}")
        print("result:", inspector.roundtrip({"answer": 42, "items": (1, 2, 3)}))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python client.py PYRO:example.plugin@host:port")
    run(sys.argv[1])


if __name__ == "__main__":
    main()
