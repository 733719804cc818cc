"""Task assignment: partition number p of every subscribed topic goes to one worker, as a task.

The loop's unit of work is a task (partition p of the co-partitioned inputs and of the account
log), so the group must hand out partition numbers, not topic partitions: a round robin over
topic partitions would split a task between workers. Assignment is sticky (a worker keeps the
tasks it had, so it keeps their stores) and balanced (task counts differ by at most one). Each
worker's metadata carries its web address, and every assignment carries the whole map, so any
worker can tell which worker holds an account (the settings API forwards there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)


def balance(tasks: int, members: Mapping[str, list[int]]) -> dict[str, list[int]]:
    """Tasks 0..tasks-1 over the members, each keeping what it had up to its fair share.

    `members` maps each member id to the tasks it held before; the answer is deterministic.
    """
    order = sorted(members)
    if not order:
        return {}
    base, extra = divmod(tasks, len(order))
    # Members that held the most get the larger shares first, so fewer tasks move.
    by_held = sorted(order, key=lambda m: (-len(members[m]), m))
    quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_held)}
    owned: dict[str, list[int]] = {m: [] for m in order}
    taken: set[int] = set()
    for m in by_held:
        for task in sorted(set(members[m])):
            if 0 <= task < tasks and task not in taken and len(owned[m]) < quota[m]:
                owned[m].append(task)
                taken.add(task)
    free = [t for t in range(tasks) if t not in taken]
    for m in order:
        while len(owned[m]) < quota[m] and free:
            owned[m].append(free.pop(0))
    return {m: sorted(ts) for m, ts in owned.items()}


@dataclass
class TaskAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """An aiokafka assignor that assigns whole tasks and shares who holds which."""

    url: str
    held: list[int] = field(default_factory=list)  # tasks held now: offered to keep
    owners: dict[int, str] = field(default_factory=dict)  # task -> worker URL, last assignment
    generation: int = 0

    @property
    def name(self) -> str:
        return "handoff-tasks"

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        data = orjson.dumps({"url": self.url, "held": self.held})
        return ConsumerProtocolMemberMetadata(0, sorted(topics), data)

    def assign(self, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata]
               ) -> dict[str, ConsumerProtocolMemberAssignment]:
        topics = sorted({t for meta in members.values() for t in meta.subscription})
        counts = [len(cluster.partitions_for_topic(t) or ()) for t in topics]
        # The worker refuses to start on unequal counts; here the smallest keeps tasks whole.
        tasks = min((c for c in counts if c), default=0)
        infos = {m: _info(meta.user_data) for m, meta in members.items()}
        plan = balance(tasks, {m: _ints(info.get("held")) for m, info in infos.items()})
        owners = {str(task): str(infos[m].get("url", "")) for m, ts in plan.items() for task in ts}
        data = orjson.dumps({"owners": owners})
        return {m: ConsumerProtocolMemberAssignment(0, [(t, list(ts)) for t in topics], data)
                for m, ts in plan.items()}

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        info = _info(assignment.user_data)
        owners = info.get("owners")
        self.owners = ({int(task): str(url) for task, url in owners.items()}
                       if isinstance(owners, dict) else {})
        self.generation += 1


def _info(raw: bytes | None) -> dict[str, object]:
    try:
        value = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _ints(value: object) -> list[int]:
    return [v for v in value if isinstance(v, int)] if isinstance(value, list) else []
