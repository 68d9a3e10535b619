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
