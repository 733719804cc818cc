"""Core benchmarks: decisions per second of the pure core, and matcher cost by phrase count.

No broker: these figures are the ceiling the Kafka shell works under (part 3 of `python -m
bench`, and the "pure core" reference beside the worker's throughput).
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from handoff.core.engine import Engine
from handoff.core.state import AccountSettings
from handoff.core.store import MemoryStore, Table
from handoff.core.triggers import Matchers
from handoff.triggers.custom import CustomPhraseMatcher
from handoff.triggers.human_request import HumanRequestDetector
from handoff.triggers.normalize import normalize
from schemas.internal import SequencedChat
from schemas.settings import HandoffConfig

TEXTS = ["Hi, where is my order 12345?", "Do you ship to Norway?", "What does the premium plan cost",
         "Kan jeg endre leveringsadressen min?", "Ich habe eine Frage zu meiner Rechnung",
         "¿Cuándo llega mi pedido?", "The app crashes when I log in, any idea why?",
         "I want to talk to a human", "Jeg vil ha refusjon", "ok thanks, bye"]


def _messages(n: int, rng: random.Random) -> list[SequencedChat]:
    out = []
    for i in range(n):
        out.append(SequencedChat.model_validate({
            "source": "chat.messages", "account_id": "acme",
            "origin": {"topic": "chat.messages", "partition": 0, "offset": i},
            "record": {"event_id": f"m-{i}", "conversation_id": f"c-{rng.randrange(n // 4)}",
                       "account_id": "acme", "channel": rng.choice(["chat", "email", "whatsapp"]),
                       "sender": "visitor", "text": rng.choice(TEXTS),
                       "sent_at": "2026-11-26T10:00:00Z"}}))
    return out


def core_throughput(n: int = 50_000, runs: int = 3) -> dict[str, Any]:
    """Decisions per second of Engine.decide over a dict store (no Kafka): the best of `runs`
    passes over the same events, each from an empty store (on a shared machine the best pass
    is the one least slowed by others); also the process CPU per decision of that pass."""
    engine = Engine(Matchers(HumanRequestDetector.load()))
    events = _messages(n, random.Random(7))
    passes: list[tuple[float, float]] = []
    for _ in range(runs):
        store = MemoryStore()
        store.data[(Table.SETTINGS, "acme")] = AccountSettings(
            account_id="acme", version=1,
            config=HandoffConfig(custom_triggers=["refusjon", "refund"]))
        start, cpu = time.perf_counter(), time.process_time()
        for event in events:
            store.apply(engine.decide(store, event).writes)
        passes.append((time.perf_counter() - start, time.process_time() - cpu))
    elapsed, cpu_seconds = min(passes)
    return {"messages": n, "runs": runs, "seconds": round(elapsed, 3),
            "per_second": round(n / elapsed), "us_per_decision": round(elapsed / n * 1e6, 1),
            "cpu_us_per_decision": round(cpu_seconds / n * 1e6, 1),
            "all_seconds": [round(p[0], 3) for p in passes]}


def matcher_scaling(rounds: int = 20_000, repeats: int = 9) -> dict[str, Any]:
    """Microseconds per message of custom matching with 10, 1,000 and 10,000 phrases.

    The 10-phrase matcher is the baseline: the goal is 10,000 phrases within 1.5x of it. The
    matchers take turns within each repeat and the fastest repeat counts, so a burst of other
    work on a shared machine does not land on one phrase count only.
    """
    rng = random.Random(11)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 10)))
             for _ in range(20_000)]
    texts = [normalize(t) for t in TEXTS]
    contenders: dict[str, Any] = {}
    for count in (10, 1_000, 10_000):
        phrases = [" ".join(words[i:i + rng.randint(1, 3)]) for i in range(count)]
        contenders[f"custom_{count}_us"] = CustomPhraseMatcher(phrases).match
    detector = HumanRequestDetector.load()
    contenders["human_request_us"] = detector.detect
    # The same phrase files without the second stage: what the model adds per message.
    contenders["human_request_rules_us"] = detector.with_stage2(None).detect
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            for i in range(rounds):
                run(texts[i % len(texts)])
            timings[name].append((time.perf_counter() - start) / rounds * 1e6)
    result: dict[str, Any] = {name: round(min(t), 3) for name, t in timings.items()}
    result["median_us"] = {name: round(statistics.median(t), 3) for name, t in timings.items()}
    start = time.perf_counter()
    for i in range(rounds):
        normalize(TEXTS[i % len(TEXTS)])
    result["normalize_us"] = round((time.perf_counter() - start) / rounds * 1e6, 3)
    result["ratio_10000_to_10"] = round(result["custom_10000_us"] / result["custom_10_us"], 2)
    return result
