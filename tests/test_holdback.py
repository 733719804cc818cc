"""The hold-back merge: timestamp order across sources, arrival order within one."""

from __future__ import annotations

from steps.holdback import Held, HoldBack


def values(held: list[Held]) -> list[bytes]:
    return [h.value for h in held]


def test_records_from_different_partitions_come_out_in_timestamp_order() -> None:
    hb = HoldBack(window_ms=1_000)
    hb.push("chat-0", Held(1_030, value=b"chat"))
    hb.push("presence-1", Held(1_020, value=b"presence"))
    hb.push("directory-0", Held(1_010, value=b"directory"))
    # Every partition read up to its end: release at once, oldest first.
    assert values(hb.due(now_ms=1_040)) == [b"directory", b"presence", b"chat"]
    assert len(hb) == 0


def test_a_lagging_partition_with_nothing_queued_holds_younger_heads_back() -> None:
    hb = HoldBack(window_ms=1_000)
    hb.push("chat-0", Held(1_030, value=b"chat"))
    assert hb.due(now_ms=1_040, lagging=["directory-0"]) == []
    hb.push("directory-0", Held(1_010, value=b"directory"))
    # The lagging partition delivered: its older record goes first, then the message.
    assert values(hb.due(now_ms=1_050, lagging=["directory-0"])) == [b"directory"]
    assert hb.due(now_ms=1_050, lagging=["directory-0"]) == []
    assert values(hb.due(now_ms=1_050)) == [b"chat"]


def test_a_partition_behind_for_longer_than_the_maximum_wait_is_not_waited_for() -> None:
    hb = HoldBack(window_ms=100)
    hb.push("chat-0", Held(1_000, value=b"chat"))
    assert hb.due(now_ms=1_050, lagging=["stuck-3"]) == []
    assert values(hb.due(now_ms=1_100, lagging=["stuck-3"])) == [b"chat"]


def test_a_partition_keeps_its_own_order_even_when_timestamps_go_backwards() -> None:
    hb = HoldBack(window_ms=0)
    hb.push("chat-0", Held(2_000, value=b"first"))
    hb.push("chat-0", Held(1_000, value=b"second"))
    hb.push("other", Held(1_500, value=b"other"))
    # The older "second" may not overtake "first" in its own partition.
    assert values(hb.due(now_ms=5_000)) == [b"other", b"first", b"second"]


def test_equal_timestamps_keep_arrival_order_and_drop_forgets_a_source() -> None:
    hb = HoldBack(window_ms=0)
    hb.push("a", Held(1, value=b"a1"))
    hb.push("b", Held(1, value=b"b1"))
    hb.push("c", Held(1, value=b"c1"))
    assert values(hb.drop("b")) == [b"b1"]
    assert values(hb.due(now_ms=1)) == [b"a1", b"c1"]


def test_a_minimum_hold_lets_a_late_appended_older_record_go_first() -> None:
    hb = HoldBack(window_ms=1_000, min_hold_ms=20)
    hb.push("config-0", Held(1_005, value=b"config"))
    assert hb.due(now_ms=1_010) == []
    hb.push("directory-0", Held(1_001, value=b"directory"))
    assert values(hb.due(now_ms=1_030)) == [b"directory", b"config"]


def test_head_is_the_oldest_record_still_held_for_a_source() -> None:
    hb = HoldBack(window_ms=1_000, min_hold_ms=0)
    assert hb.head("a") is None
    first, second = Held(100, value=b"1"), Held(200, value=b"2")
    hb.push("a", first)
    hb.push("a", second)
    assert hb.head("a") is first
    assert hb.due(now_ms=150, lagging=["b"]) == []  # b may still send something older
    assert hb.due(now_ms=5_000) == [first, second]
    assert hb.head("a") is None


def test_a_backlog_read_at_start_still_waits_for_partitions_not_fetched_yet() -> None:
    hb = HoldBack(window_ms=1_000)
    # Stamped a minute ago, read now: the config's partition was fetched first.
    hb.push("config-0", Held(1_000, value=b"config", read_ms=61_000))
    assert hb.due(now_ms=61_010, lagging=["directory-1"]) == []
    hb.push("directory-1", Held(900, value=b"directory", read_ms=61_020))
    assert values(hb.due(now_ms=61_030, lagging=["directory-1"])) == [b"directory"]
    assert values(hb.due(now_ms=61_030)) == [b"config"]
    # The maximum wait still bounds it, counted from the read.
    hb.push("config-0", Held(1_100, value=b"late", read_ms=61_100))
    assert hb.due(now_ms=62_000, lagging=["stuck-2"]) == []
    assert values(hb.due(now_ms=62_100, lagging=["stuck-2"])) == [b"late"]


def _reference_due(queues: dict[str, list[Held]], now_ms: int, window_ms: int, min_hold_ms: int,
                   lagging: list[str]) -> list[Held]:
    """The merge spelled out: scan every queue's head for the oldest, each time."""
    out: list[Held] = []
    while True:
        heads = [(q[0], name) for name, q in queues.items() if q]
        if not heads:
            return out
        head, name = min(heads, key=lambda pair: (pair[0].timestamp_ms, pair[0].seq))
        if max(head.timestamp_ms, head.read_ms) > now_ms - window_ms and (
                head.timestamp_ms > now_ms - min_hold_ms
                or any(not queues.get(s) for s in lagging)):
            return out
        out.append(queues[name].pop(0))


def test_the_merge_releases_what_a_scan_of_every_head_would_in_random_traffic() -> None:
    import random

    rng = random.Random(13)
    for _ in range(200):
        hb = HoldBack(window_ms=50, min_hold_ms=20)
        reference: dict[str, list[Held]] = {}
        sources = [f"s-{n}" for n in range(rng.randint(1, 6))]
        now = 1_000
        for _ in range(rng.randint(1, 60)):
            now += rng.randint(0, 15)
            action = rng.random()
            if action < 0.6:
                source = rng.choice(sources)
                held = Held(now - rng.randint(0, 80), value=b"x", read_ms=now - rng.randint(0, 5))
                hb.push(source, held)
                reference.setdefault(source, []).append(held)
            elif action < 0.68:
                source = rng.choice(sources)
                assert hb.drop(source) == reference.pop(source, [])
            else:
                lagging = rng.sample(sources, rng.randint(0, len(sources)))
                assert hb.due(now, lagging) == _reference_due(reference, now, 50, 20, lagging)
            assert len(hb) == sum(len(q) for q in reference.values())
            for source in sources:
                queued = reference.get(source)
                assert hb.head(source) is (queued[0] if queued else None)
