"""The name server's storages: the in-memory dict and the sqlite file."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from pyrite.core.errors import NamingError
from pyrite.nameserver.storage import MemoryStorage, SqlStorage, make_storage


@pytest.fixture(params=["memory", "sql"])
def storage(request, tmp_path):
    store = MemoryStorage() if request.param == "memory" else SqlStorage(str(tmp_path / "ns.sqlite"))
    yield store
    store.close()


def test_mapping_basics(storage):
    assert len(storage) == 0
    storage["a"] = ("PYRO:a@h:1", {"x", "y"})
    storage["b"] = ("PYRO:b@h:1", None)
    assert len(storage) == 2
    assert "a" in storage and "zz" not in storage
    uri, meta = storage["a"]
    assert uri == "PYRO:a@h:1" and set(meta) == {"x", "y"}
    assert set(storage["b"][1]) == set()
    assert sorted(storage) == ["a", "b"]
    storage["a"] = ("PYRO:a2@h:1", {"z"})  # replacing drops the old metadata
    assert storage["a"][0] == "PYRO:a2@h:1" and set(storage["a"][1]) == {"z"}
    del storage["a"]
    assert "a" not in storage
    with pytest.raises(KeyError):
        storage["a"]
    with pytest.raises(KeyError):
        del storage["a"]
    storage.clear()
    assert len(storage) == 0


def test_everything_and_remove_items(storage):
    for i in range(5):
        storage[f"n{i}"] = (f"PYRO:o{i}@h:1", {f"t{i}"})
    assert storage.everything() == {f"n{i}": f"PYRO:o{i}@h:1" for i in range(5)}
    full = storage.everything(return_metadata=True)
    assert {name: (uri, set(meta)) for name, (uri, meta) in full.items()} == {
        f"n{i}": (f"PYRO:o{i}@h:1", {f"t{i}"}) for i in range(5)
    }
    storage.remove_items(["n1", "n3", "not-there"])
    assert sorted(storage) == ["n0", "n2", "n4"]


def test_prefix_list_is_literal_and_case_sensitive(storage):
    storage["test.one"] = ("PYRO:1@h:1", {"m"})
    storage["Test.two"] = ("PYRO:2@h:1", None)
    storage["test_x"] = ("PYRO:3@h:1", None)
    storage["te%t"] = ("PYRO:4@h:1", None)
    result = storage.optimized_prefix_list("test.")
    if result is None:  # memory storage leaves it to the name server
        assert isinstance(storage, MemoryStorage)
        return
    assert result == {"test.one": "PYRO:1@h:1"}
    assert storage.optimized_prefix_list("te%") == {"te%t": "PYRO:4@h:1"}
    assert storage.optimized_prefix_list("test_") == {"test_x": "PYRO:3@h:1"}
    uri, meta = storage.optimized_prefix_list("test.", return_metadata=True)["test.one"]
    assert set(meta) == {"m"}


def test_metadata_search(storage):
    storage["p1"] = ("PYRO:p1@h:1", {"printer", "color"})
    storage["p2"] = ("PYRO:p2@h:1", {"printer"})
    storage["s1"] = ("PYRO:s1@h:1", {"storage"})
    result = storage.optimized_metadata_search(metadata_all={"printer", "color"})
    if result is None:
        assert isinstance(storage, MemoryStorage)
        return
    assert result == {"p1": "PYRO:p1@h:1"}
    assert storage.optimized_metadata_search(metadata_all=["printer"]) == {"p1": "PYRO:p1@h:1", "p2": "PYRO:p2@h:1"}
    assert storage.optimized_metadata_search(metadata_any={"storage", "color"}) == {
        "p1": "PYRO:p1@h:1",
        "s1": "PYRO:s1@h:1",
    }
    assert storage.optimized_metadata_search(metadata_all={"printer", "nope"}) == {}
    with_meta = storage.optimized_metadata_search(metadata_any={"storage"}, return_metadata=True)
    assert with_meta["s1"][0] == "PYRO:s1@h:1" and set(with_meta["s1"][1]) == {"storage"}


def test_unicode_names(storage):
    storage["naam\u20ac"] = ("PYRO:obj\u20ac@h:1", {"t\u20ac"})
    assert storage["naam\u20ac"][0] == "PYRO:obj\u20ac@h:1"
    assert set(storage["naam\u20ac"][1]) == {"t\u20ac"}


def test_sql_survives_reopen(tmp_path):
    path = str(tmp_path / "keep.sqlite")
    first = SqlStorage(path)
    first["kept"] = ("PYRO:kept@h:1", {"a", "b"})
    first["gone"] = ("PYRO:gone@h:1", None)
    del first["gone"]
    first.close()
    second = SqlStorage(path)
    try:
        assert sorted(second) == ["kept"]
        assert set(second["kept"][1]) == {"a", "b"}
    finally:
        second.close()


def test_sql_file_is_interchangeable_with_pyro5(tmp_path):
    Pyro5_nameserver = pytest.importorskip("Pyro5.nameserver")
    path = str(tmp_path / "shared.sqlite")
    theirs = Pyro5_nameserver.SqlStorage(path)
    theirs["from.pyro5"] = ("PYRO:x@h:1", {"tag"})
    ours = SqlStorage(path)
    try:
        assert ours["from.pyro5"][0] == "PYRO:x@h:1" and set(ours["from.pyro5"][1]) == {"tag"}
        ours["from.pyrite"] = ("PYRO:y@h:2", {"t1", "t2"})
        uri, meta = theirs["from.pyrite"]
        assert uri == "PYRO:y@h:2" and set(meta) == {"t1", "t2"}
    finally:
        ours.close()


def test_sql_migrates_the_old_schema(tmp_path):
    path = str(tmp_path / "old.sqlite")
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE pyro_names (id integer PRIMARY KEY, name nvarchar NOT NULL UNIQUE, uri nvarchar NOT NULL)"
        )
        db.execute("INSERT INTO pyro_names(name, uri) VALUES ('old', 'PYRO:old@h:1')")
    db.close()
    store = SqlStorage(path)
    try:
        assert store["old"][0] == "PYRO:old@h:1"
        store["old"] = ("PYRO:old@h:1", {"now-with-meta"})
        assert set(store["old"][1]) == {"now-with-meta"}
    finally:
        store.close()


def test_sql_is_thread_safe(tmp_path):
    store = SqlStorage(str(tmp_path / "threads.sqlite"))
    errors = []

    def writer(n):
        try:
            for i in range(40):
                store[f"t{n}.{i}"] = (f"PYRO:o@h:{i + 1}", {f"w{n}"})
                assert store[f"t{n}.{i}"][0] == f"PYRO:o@h:{i + 1}"
                if i % 2:
                    del store[f"t{n}.{i}"]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert not errors
        assert len(store) == 6 * 20
        assert len(store.optimized_metadata_search(metadata_any={"w3"})) == 20
    finally:
        store.close()


def test_sql_closed_and_bad_files(tmp_path):
    store = SqlStorage(str(tmp_path / "c.sqlite"))
    store.close()
    store.close()  # twice is fine
    with pytest.raises(NamingError):
        len(store)
    with pytest.raises(ValueError):
        SqlStorage(":memory:")
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(NamingError):
        SqlStorage(str(garbage))


def test_make_storage(tmp_path):
    assert isinstance(make_storage(None), MemoryStorage)
    assert isinstance(make_storage("memory"), MemoryStorage)
    sql = make_storage("sql:" + str(tmp_path / "m.sqlite"))
    assert isinstance(sql, SqlStorage)
    sql.close()
    for bad in ("sql:", "dbm:file", "nonsense"):
        with pytest.raises(ValueError):
            make_storage(bad)
