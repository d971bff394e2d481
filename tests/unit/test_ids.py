"""New ids: RFC 9562 version 7 UUIDs, time-ordered, unique, fork-safe."""

from __future__ import annotations

import os
import time
import uuid

from federation.core.ids import is_uuid, new_uuid7


def test_new_ids_are_canonical_version_7_uuids() -> None:
    made = [new_uuid7() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    for text in made[:100]:
        value = uuid.UUID(text)
        assert is_uuid(text) and str(value) == text
        assert value.version == 7 and value.variant == uuid.RFC_4122


def test_ids_carry_the_current_millisecond_in_order() -> None:
    before = time.time_ns() // 1_000_000
    first = new_uuid7()
    time.sleep(0.002)
    second = new_uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= int(first.replace("-", "")[:12], 16) <= after
    assert first < second


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    new_uuid7()  # the parent now holds random bytes read ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next ids and leave at once
        os.write(write, " ".join(new_uuid7() for _ in range(20)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    parent = [new_uuid7() for _ in range(20)]
    # The random parts (after the time and version) never coincide.
    assert not {c[15:] for c in child} & {p[15:] for p in parent}
