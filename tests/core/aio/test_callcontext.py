"""current_context: per thread as before, and per asyncio task while a loop runs."""

from __future__ import annotations

import asyncio
import threading
import uuid

from pyrite.core.callcontext import current_context


def test_threads_keep_their_own_values() -> None:
    current_context.correlation_id = main_id = uuid.uuid4()
    seen: list[object] = []

    def other() -> None:
        seen.append(current_context.correlation_id)
        current_context.correlation_id = uuid.uuid4()
        current_context.annotations["ABCD"] = b"x"
        seen.append(dict(current_context.annotations))

    t = threading.Thread(target=other)
    t.start()
    t.join(5)
    assert seen == [None, {"ABCD": b"x"}]
    assert current_context.correlation_id == main_id and current_context.annotations == {}
    current_context.correlation_id = None


def test_to_global_and_from_global_round_trip() -> None:
    current_context.seq = 7
    current_context.annotations = {"WXYZ": b"1"}
    values = current_context.to_global()
    assert values["seq"] == 7 and values["annotations"] == {"WXYZ": b"1"}
    current_context.seq = 0
    current_context.from_global(values)
    assert current_context.seq == 7
    current_context.seq, current_context.annotations = 0, {}


def test_tasks_are_isolated_and_inherit_a_snapshot() -> None:
    current_context.correlation_id = thread_id = uuid.uuid4()

    async def child(expected: object) -> object:
        await asyncio.sleep(0)
        return current_context.correlation_id if current_context.correlation_id == expected else "wrong"

    async def task(n: int) -> tuple[object, object, dict[str, bytes]]:
        inherited = current_context.correlation_id
        mine = uuid.UUID(int=n + 1)
        current_context.correlation_id = mine
        current_context.annotations["TASK"] = str(n).encode()  # in place: stays in this task
        await asyncio.sleep(0)
        spawned = await asyncio.ensure_future(child(mine))
        current_context.correlation_id = uuid.UUID(int=999)  # after the spawn: the child kept its snapshot
        return inherited, spawned, dict(current_context.annotations)

    async def main() -> list[tuple[object, object, dict[str, bytes]]]:
        return list(await asyncio.gather(*(task(n) for n in range(5))))

    results = asyncio.run(main())
    for n, (inherited, spawned, task_annotations) in enumerate(results):
        assert inherited == thread_id  # a task that set nothing sees the thread's value
        assert spawned == uuid.UUID(int=n + 1)
        assert task_annotations == {"TASK": str(n).encode()}
    # nothing a task did leaked into the thread
    assert current_context.correlation_id == thread_id and current_context.annotations == {}
    current_context.correlation_id = None


def test_serve_to_global_from_global_and_serving_inside_tasks() -> None:
    """The one-step forms (serve, to_global, from_global, serving) inside a task touch only that
    task's values, read the thread's where the task set nothing, and agree with field access."""
    current_context.seq = 41
    current_context.annotations = {"THRD": b"t"}

    conns = {n: f"conn{n}" for n in range(1, 4)}  # serving() compares the client by identity

    async def serving_task(n: int) -> tuple[dict, bool, bool, dict]:
        untouched = current_context.to_global()  # nothing set yet: the thread's values (dicts copied)
        untouched["annotations"]["MINE"] = b"x"  # the task's copy, not the thread's dict
        current_context.serve(conns[n], ("127.0.0.1", n), {"ANNO": bytes([n])}, uuid.UUID(int=n), (n, 0x10, 4))
        current_context.response_annotations["RESP"] = b"r"
        await asyncio.sleep(0)
        captured = current_context.to_global()
        fields = {name: getattr(current_context, name) for name in captured}
        return (
            untouched,
            current_context.serving(conns[n], n),
            current_context.serving(conns[n], n + 1),
            {
                "captured": captured,
                "fields": fields,
            },
        )

    async def adopting_task(values: dict) -> tuple[str, int, bool]:
        current_context.from_global(values)
        await asyncio.sleep(0)
        return current_context.client, current_context.seq, current_context.serving(values["client"], values["seq"])

    async def main() -> tuple[list, list]:
        served = await asyncio.gather(*(serving_task(n) for n in range(1, 4)))
        adopted = await asyncio.gather(*(adopting_task(result[3]["captured"]) for result in served))
        return served, adopted

    served, adopted = asyncio.run(main())
    for n, (untouched, yes, no, seen) in enumerate(served, start=1):
        assert untouched["seq"] == 41 and untouched["annotations"] == {"THRD": b"t", "MINE": b"x"}
        assert yes and not no
        assert seen["captured"] == seen["fields"]
        assert seen["captured"]["client"] == f"conn{n}" and seen["captured"]["seq"] == n
        assert seen["captured"]["annotations"] == {"ANNO": bytes([n])}
        assert seen["captured"]["response_annotations"] == {"RESP": b"r"}
        assert seen["captured"]["correlation_id"] == uuid.UUID(int=n)
    assert adopted == [(f"conn{n}", n, True) for n in range(1, 4)]
    # the thread's own values are as they were
    assert current_context.seq == 41 and current_context.annotations == {"THRD": b"t"}
    assert current_context.response_annotations == {}
    current_context.seq, current_context.annotations = 0, {}


def test_task_get_and_task_set_are_the_attributes_of_the_task() -> None:
    """The asyncio proxy's shortcut reads and writes exactly what the attributes would."""
    current_context.correlation_id = thread_id = uuid.uuid4()
    current_context.annotations = {"THRD": b"t"}

    async def task() -> list[object]:
        seen: list[object] = [current_context.task_get("correlation_id"), dict(current_context.task_get("annotations"))]
        current_context.task_get("annotations")["MINE"] = b"m"  # a task's own copy, as for the attribute
        current_context.task_set("correlation_id", task_id)
        current_context.task_set("response_annotations", {"RESP": b"r"})
        seen += [current_context.correlation_id, current_context.annotations, current_context.response_annotations]
        try:
            current_context.task_set("no_such_field", 1)
        except AttributeError as exc:
            seen.append(str(exc))
        return seen

    task_id = uuid.uuid4()
    try:
        seen = asyncio.run(task())
        assert seen[:2] == [thread_id, {"THRD": b"t"}]
        assert seen[2:5] == [task_id, {"THRD": b"t", "MINE": b"m"}, {"RESP": b"r"}]
        assert "no_such_field" in str(seen[5])
        # nothing the task did reached the thread's values
        assert current_context.correlation_id == thread_id
        assert current_context.annotations == {"THRD": b"t"} and current_context.response_annotations == {}
    finally:
        current_context.correlation_id, current_context.annotations = None, {}
