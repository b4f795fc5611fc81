"""The ids the engine makes: in the shapes the contracts declare, unique, and unique across the
worker processes of ``serve --workers`` (each forked worker draws its own seed)."""

from __future__ import annotations

import os
import re
import uuid

from timbrix_sandbox.engine.clock import new_object_id, new_request_id, new_uuid

UUID_V4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_uuids_are_version_4_and_unique():
    made = [new_uuid() for _ in range(10_000)]
    assert all(UUID_V4.fullmatch(u) and uuid.UUID(u).version == 4 for u in made)
    assert len(set(made)) == len(made)


def test_request_ids_and_object_ids_keep_their_shapes():
    assert re.fullmatch(r"[0-9a-f]{32}", new_request_id())
    assert re.fullmatch(r"[0-9a-f]{24}", new_object_id())


def _in_a_fork() -> list[str]:
    """What a forked worker's first ids are (read back through a pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once, running nothing else of the test process
        os.close(read)
        os.write(write, " ".join([new_uuid(), new_request_id(), new_object_id()]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read().decode().split()
    os.waitpid(pid, 0)
    return answer


def test_two_forked_workers_never_draw_the_same_ids():
    first, second = _in_a_fork(), _in_a_fork()
    mine = [new_uuid(), new_request_id(), new_object_id()]
    for a, b, c in zip(first, second, mine, strict=True):
        assert len({a, b, c}) == 3, (a, b, c)
