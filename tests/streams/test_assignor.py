"""Task assignment: whole tasks, balanced, sticky, and everyone learns who holds what."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from streams.assignor import TaskAssignor, balance


def test_tasks_are_balanced_and_each_worker_keeps_what_it_held() -> None:
    assert balance(4, {"a": []}) == {"a": [0, 1, 2, 3]}
    assert balance(4, {"a": [0, 1, 2, 3], "b": []}) == {"a": [0, 1], "b": [2, 3]}
    # b held 3: it keeps it, so only one task moves.
    assert balance(4, {"a": [0, 1, 2], "b": [3]}) == {"a": [0, 1], "b": [2, 3]}
    assert balance(5, {"a": [], "b": [], "c": []}) == {"a": [0, 1], "b": [2, 3], "c": [4]}
    # Tasks that no longer exist, or that two members claim, are not handed out twice.
    plan = balance(3, {"a": [0, 7], "b": [0, 1]})
    assert sorted(t for ts in plan.values() for t in ts) == [0, 1, 2]


class Cluster:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.counts[topic]))


def test_partition_p_of_every_topic_goes_to_one_worker_with_the_map_of_owners() -> None:
    a, b = TaskAssignor(url="http://a:1"), TaskAssignor(url="http://b:1", held=[1])
    topics = ["p.chat.messages", "p.handoff.account-events"]
    members = {"m-a": a.metadata(topics), "m-b": b.metadata(topics)}
    decoded = {m: ConsumerProtocolMemberMetadata.decode(meta.encode())
               for m, meta in members.items()}
    plan = a.assign(Cluster({t: 4 for t in topics}), decoded)  # type: ignore[arg-type]
    parts: dict[str, Any] = {m: dict(assignment.assignment) for m, assignment in plan.items()}
    for member in parts.values():
        chats, logs = member["p.chat.messages"], member["p.handoff.account-events"]
        assert sorted(chats) == sorted(logs)
    assert 1 in parts["m-b"]["p.chat.messages"]  # b keeps the task it held
    b.on_assignment(plan["m-b"])
    assert b.owners == {task: ("http://b:1" if task in parts["m-b"]["p.chat.messages"]
                               else "http://a:1") for task in range(4)}
    assert b.generation == 1
    info = orjson.loads(plan["m-a"].user_data)
    assert sorted(info["owners"]) == ["0", "1", "2", "3"]


def test_garbled_metadata_counts_as_holding_nothing() -> None:
    topics = ["t"]
    meta = SimpleNamespace(subscription=topics, user_data=b"\xff")
    plan = TaskAssignor(url="http://a:1").assign(Cluster({"t": 2}), {"m": meta})  # type: ignore[arg-type, dict-item]
    assert dict(plan["m"].assignment) == {"t": [0, 1]}
