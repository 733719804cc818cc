"""Scenarios of the contract, end to end: inputs on the contract topics, exact records out.

Every test owns an account (and ids prefixed with it), so the tests of this module share one
worker and one topic prefix without seeing each other's records.

How the order of inputs is made deterministic
---------------------------------------------
The worker sequences every input of an account into one ordered log,
`handoff.account-events` (keyed by account), and decides in that log's order. Records sent
in order on *different* input topics, or on one topic under different keys (two
conversations, two directory entries), sit on different partitions and may reach that log in
any order. Presence takes one hop more (`agent.presence` is joined with the
directory's user records on `handoff.user-accounts` to find the account) and has no output of
its own, so no contract topic can show that it has been taken into account.

The worker reads all input topics with one consumer, but that does not order records of
different partitions: in a probe that sent directory user, presence, config request and
chat message one after the other, each acknowledged before the next, the config request was
decided before the directory entry for 78 of 100 accounts when sent in a burst, and 1 of 30
at 20 ms apart; presence came last, after the chat message, in most burst cases.

So `Account.send` waits, after each call, until every record it sent appears on the account's
log. Everything sent afterwards reaches the log afterwards, so the log's order is the order of
the `send` calls. The test reads the internal log only as that barrier; what it asserts is
read from the contract's output topics. Records within one `send` call keep their order only
when they share topic and key (one conversation); calls that need an order between records
of different keys make one `send` per record.

To assert that something produced *nothing*, `Account.settle` sends a probe config request
from an actor who is not in the directory, after everything else is on the log, and waits
for its (refused) change record: when it is out, every earlier decision of the account has
been made and handed to the worker's producer before it. `outputs` then reads every output
topic up to its end offsets (not "until a predicate holds"), so records of other partitions
published earlier are included. The probe's change records are left out of what it returns.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any
from unittest.mock import ANY

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from handoff.kafka_clients import client_kwargs
from schemas.settings import DEFAULT_MESSAGES
from schemas.topics import Topic
from tests.builders import message
from tests.kafka_support import Deployment

pytestmark = pytest.mark.kafka

T = "2026-11-26T10:00:00Z"  # a Thursday: 11:00 in Oslo
EDIT = "customer_agent.edit"
OUTPUTS = (Topic.HANDOFF_EVENTS, Topic.TICKETS_CREATED, Topic.ASSIGNMENTS, Topic.CHAT_OUTBOUND,
           Topic.CONVERSATION_STATUS, Topic.CONFIG_CHANGES)
MESSAGES = {"available": "Connecting you with our team now.",
            "unavailable": "Our team is away; we will follow up by email.",
            "unassigned": "Thanks! Your ticket is in our queue."}
WORKFLOW_NAME = "Reassign tickets for customer agent handoff"
HUMAN = "I want to talk to a human"  # an English request for a human: "talk to a human"


# -- reading ---------------------------------------------------------------------------------


async def _read_to_end(dep: Deployment, topics: tuple[Topic, ...]) -> list[tuple[str, Any]]:
    """Every record on the topics up to their end offsets as of now, in partition order."""
    names = {dep.settings.topic(t): t.value for t in topics}
    consumer = AIOKafkaConsumer(*names, **client_kwargs(dep.settings),
                                enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    deadline = time.monotonic() + 30
    try:
        # Without a group, every partition of the subscribed topics is assigned once known.
        while {tp.topic for tp in consumer.assignment()} != set(names):
            assert time.monotonic() < deadline, "no partitions assigned"
            await asyncio.sleep(0.05)
        parts = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        seen: list[tuple[str, Any]] = []
        behind = set(parts)
        while behind:
            assert time.monotonic() < deadline, "could not read the topics to their end"
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                seen += [(names[tp.topic], orjson.loads(r.value))
                         for r in records if r.offset < end[tp]]
            behind = {tp for tp in behind if await consumer.position(tp) < end[tp]}
    finally:
        await consumer.stop()
    return seen


def _log_identity(entry: dict[str, Any]) -> tuple[str, str, str]:
    """(account, source topic, id) of a record on the account log."""
    source, record = entry["source"], entry.get("record") or {}
    if source == "directory":
        ident = entry["key"]
    elif source == "workflows":
        ident = entry["workflow_id"]
    elif source == "clock":
        ident = entry["event_id"]
    else:
        ident = record["event_id"]
    return entry["account_id"], source, ident


class Account:
    """One account's inputs, sent in a deterministic order, and its outputs."""

    def __init__(self, dep: Deployment, account_id: str) -> None:
        self.dep = dep
        self.id = account_id
        self.sent: Counter[tuple[str, str, str]] = Counter()
        self.user_accounts: dict[str, str] = {}
        self.probes = 0

    def __call__(self, name: str) -> str:
        """An id of this account's own (users, teams, inboxes, conversations...)."""
        return f"{self.id}-{name}"

    @property
    def probe_actor(self) -> str:
        return self("settle-probe")

    # inputs

    def _identity(self, topic: Topic, value: dict[str, Any]) -> tuple[str, str, str]:
        if topic is Topic.DIRECTORY:
            if value["kind"] == "user":
                self.user_accounts[value["id"]] = value["account_id"]
            return value["account_id"], topic.value, f"{value['kind']}:{value['id']}"
        if topic is Topic.WORKFLOWS:
            return value["account_id"], topic.value, value["workflow_id"]
        if topic is Topic.AGENT_PRESENCE:
            return self.user_accounts[value["user_id"]], topic.value, value["event_id"]
        return value["account_id"], topic.value, value["event_id"]

    def send(self, topic: Topic, *values: dict[str, Any]) -> None:
        """Send in order, then wait until the account log holds every one of them."""
        for value in values:
            self.sent[self._identity(topic, value)] += 1
        self.dep.send(topic, *values)
        want = dict(self.sent)

        def sequenced(records: list[tuple[str, Any]]) -> bool:
            have = Counter(_log_identity(v) for _, v in records)
            return all(have[k] >= n for k, n in want.items())

        log = self.dep.read([Topic.ACCOUNT_EVENTS], until=sequenced, timeout=30)
        assert sequenced(log), f"not all of {values} reached the account log"

    def chat(self, *values: dict[str, Any]) -> None:
        self.send(Topic.CHAT_MESSAGES, *values)

    def msg(self, event: str, text: str, conversation: str, **kw: Any) -> dict[str, Any]:
        return message(self(event), text, account=self.id, conversation=self(conversation), **kw)

    def directory(self, *entries: dict[str, Any]) -> None:
        self.send(Topic.DIRECTORY, *entries)

    def inbox(self, name: str, kind: str = "inbox") -> dict[str, Any]:
        return {"kind": "inbox", "id": self(name), "account_id": self.id, "type": kind}

    def user(self, name: str, display: str, teams: tuple[str, ...] = (),
             permissions: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"kind": "user", "id": self(name), "account_id": self.id, "name": display,
                "teams": [self(t) for t in teams], "permissions": list(permissions)}

    def presence(self, *states: tuple[str, str, int | None]) -> None:
        self.send(Topic.AGENT_PRESENCE, *[
            {"event_id": self(f"p-{name}-{status}-{self.sent.total()}"), "user_id": self(name),
             "status": status, "occurred_at": T, "max_open_conversations": limit}
            for name, status, limit in states])

    def configure(self, event: str, actor: str, config: dict[str, Any],
                  at: str = T) -> None:
        self.send(Topic.CONFIG_REQUESTS, {"event_id": self(event), "account_id": self.id,
                                          "actor": actor, "occurred_at": at, "config": config})

    def settle(self) -> None:
        """Wait until every decision on what was sent so far is published (see the top)."""
        self.probes += 1
        actor = self.probe_actor
        self.configure(f"settle-{self.probes}", actor, {})
        got = self.dep.read([Topic.CONFIG_CHANGES], timeout=30, until=lambda r: sum(
            1 for t, v in r if v["account_id"] == self.id and v["actor"] == actor) >= self.probes)
        assert sum(1 for _, v in got if v.get("actor") == actor) >= self.probes

    # outputs

    def outputs(self) -> dict[str, list[dict[str, Any]]]:
        """This account's output records by topic, in each conversation's order."""
        self.settle()
        records = asyncio.run(_read_to_end(self.dep, OUTPUTS))
        out: dict[str, list[dict[str, Any]]] = {t.value: [] for t in OUTPUTS}
        for topic, value in records:
            mine = (value.get("account_id") == self.id
                    or str(value.get("conversation_id", "")).startswith(self.id + "-"))
            if mine and value.get("actor") != self.probe_actor:
                out[topic].append(value)
        for values in out.values():
            # One conversation is one partition, so a stable sort keeps its records' order.
            values.sort(key=lambda v: v.get("conversation_id") or "")
        return out


def stripped(out: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The records without their event ids (hashes), after checking those are sound."""
    ids = [v["event_id"] for values in out.values() for v in values]
    assert all(isinstance(i, str) and i for i in ids), ids
    assert len(ids) == len(set(ids)), f"output event ids repeat: {ids}"
    return {t: [{k: v for k, v in r.items() if k != "event_id"} for r in values]
            for t, values in out.items()}


def nothing_but(**topics: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The expected outputs: the given topics (by `Topic` member name), nothing elsewhere."""
    expected: dict[str, list[dict[str, Any]]] = {t.value: [] for t in OUTPUTS}
    for name, values in topics.items():
        expected[Topic[name.upper()].value] = values
    return expected


def expect(out: dict[str, list[dict[str, Any]]], **topics: list[dict[str, Any]]) -> None:
    assert stripped(out) == nothing_but(**topics)


# -- expected records ------------------------------------------------------------------------


def handoff(a: Account, conv: str, event: str, kind: str, *, phrase: str | None = None,
            language: str | None = None, process: str = "live", version: int = 0,
            channel: str = "chat", at: str = T) -> dict[str, Any]:
    return {"conversation_id": a(conv), "account_id": a.id, "channel": channel,
            "trigger": trigger(a, event, kind, phrase, language), "process": process,
            "handed_off": process != "none", "config_version": version, "occurred_at": at}


def trigger(a: Account, event: str, kind: str, phrase: str | None = None,
            language: str | None = None) -> dict[str, Any]:
    return {"kind": kind, "phrase": phrase, "message_event_id": a(event), "language": language}


def assignment(a: Account, conv: str, *, inbox: str | None, assignee: str | None, rule: str,
               candidates: list[str], mode: str = "live", version: int = 0,
               ticket: Any = None, assignee_type: str = "user", at: str = T,
               reason: str = "handoff", waited_s: float | None = None) -> dict[str, Any]:
    return {"conversation_id": a(conv), "ticket_id": ticket, "account_id": a.id,
            "inbox_id": a(inbox) if inbox else None, "mode": mode,
            "assignee": {"type": assignee_type, "id": a(assignee)} if assignee else None,
            "rule": rule, "config_version": version, "occurred_at": at,
            "candidates": candidates, "reason": reason, "waited_s": waited_s}


def outbound(a: Account, conv: str, kind: str, text: str, channel: str = "chat",
             at: str = T) -> dict[str, Any]:
    return {"conversation_id": a(conv), "channel": channel, "kind": f"handoff_{kind}",
            "text": text, "occurred_at": at}


def status(a: Account, conv: str, state: str, view: str, at: str = T) -> dict[str, Any]:
    return {"conversation_id": a(conv), "status": state, "view": view, "occurred_at": at,
            "account_id": a.id}


def change(a: Account, actor: str, version: int | None, reason: str | None = None,
           at: str = T) -> dict[str, Any]:
    return {"account_id": a.id, "actor": actor, "accepted": reason is None, "reason": reason,
            "version": version, "occurred_at": at}


def ticket(a: Account, conv: str, event: str, kind: str, subject: str, *, help_desk: str,
           workflow: str, phrase: str | None = None, language: str | None = None,
           channel: str = "chat", version: int = 1, at: str = T) -> dict[str, Any]:
    return {"ticket_id": ANY, "conversation_id": a(conv), "account_id": a.id,
            "help_desk_id": a(help_desk), "workflow_id": a(workflow), "channel": channel,
            "subject": subject, "trigger": trigger(a, event, kind, phrase, language),
            "config_version": version, "occurred_at": at}


def tickets_match_assignments(out: dict[str, list[dict[str, Any]]]) -> None:
    """Each ticket's id is a derived id, and the assignment of its conversation names it."""
    tickets = {v["conversation_id"]: v["ticket_id"] for v in out["tickets.created"]}
    assigned = {v["conversation_id"]: v["ticket_id"] for v in out["assignments"]}
    assert tickets == assigned
    assert all(isinstance(t, str) and t for t in tickets.values())
    assert len(set(tickets.values())) == len(tickets)


def editor(a: Account) -> dict[str, Any]:
    return a.user("editor", "Editor", permissions=(EDIT,))


# -- 1. the default triggers -----------------------------------------------------------------


def test_no_answer_hands_off_with_the_defaults(deployment: Deployment) -> None:
    a = Account(deployment, "noanswer")
    a.directory(a.inbox("support"))
    a.chat(a.msg("m1", "Where is my parcel?", "c1"),
           a.msg("m2", "It ships tomorrow.", "c1", sender="customer_agent", answered=True),
           a.msg("m3", "Anything else?", "c1", sender="customer_agent"),
           a.msg("m4", "Hi, I am Kim from support.", "c1", sender="human_agent"),
           a.msg("m5", "Sorry, I cannot answer that.", "c1", sender="customer_agent",
                 answered=False, at="2026-11-26T10:00:30Z"))
    at = "2026-11-26T10:00:30Z"
    # No accepted config: live, unassigned in the account's first inbox, generic message.
    expect(a.outputs(),
           handoff_events=[handoff(a, "c1", "m5", "no_answer", at=at)],
           assignments=[assignment(a, "c1", inbox="support", assignee=None, candidates=[], at=at,
                                   rule="Live handoff: no assignees are configured among []; "
                                        "left unassigned.")],
           chat_outbound=[outbound(a, "c1", "unavailable", DEFAULT_MESSAGES["unavailable"],
                                   at=at)],
           conversation_status=[status(a, "c1", "open", "unassigned", at=at)])


HUMAN_REQUESTS = {
    "en": ("Can I speak to a real person please?", "speak to a real person"),
    # The earliest match is reported: since the ninth session an open line ("kan jeg snakke med"
    # + any role) starts before the closed one.
    "nb": ("Kan jeg snakke med et menneske?", "kan jeg snakke med"),
    "de": ("Ich möchte mit einem echten Mitarbeiter sprechen",
           "mochte mit einem echten mitarbeiter sprechen"),
    "es": ("Quiero hablar con un agente", "hablar con un agente"),
    "fr": ("Je veux parler à un conseiller", "parler a un conseiller"),
}


@pytest.mark.parametrize("language", list(HUMAN_REQUESTS))
def test_visitor_asks_for_a_human(deployment: Deployment, language: str) -> None:
    a = Account(deployment, f"human-{language}")
    text, phrase = HUMAN_REQUESTS[language]
    # m2 (the customer agent could not answer) only proves that m1 was decided: it hands off
    # when m1 did not, and raises nothing when m1 already did.
    a.chat(a.msg("m1", text, "c1", language=language),
           a.msg("m2", "Sorry, I do not know.", "c1", sender="customer_agent", answered=False))
    out = a.outputs()
    assert stripped(out)["handoff.events"] == [
        handoff(a, "c1", "m1", "human_requested", phrase=phrase, language=language)]


def test_paused_agent_hands_off_until_resumed(deployment: Deployment) -> None:
    a = Account(deployment, "paused")
    control = {"account_id": a.id, "occurred_at": T, "actor": "ops"}
    a.send(Topic.AGENT_CONTROL, {"event_id": a("ctl-1"), "action": "pause", **control})
    a.chat(a.msg("m1", "Hello there", "c1"))
    a.send(Topic.AGENT_CONTROL, {"event_id": a("ctl-2"), "action": "resume", **control})
    # After resume a neutral message raises nothing; the request after it proves it was seen.
    a.chat(a.msg("m2", "Hello there", "c2"), a.msg("m3", HUMAN, "c2"))
    unassigned = "Live handoff: no assignees are configured among []; left unassigned."
    expect(a.outputs(),
           handoff_events=[handoff(a, "c1", "m1", "agent_paused"),
                           handoff(a, "c2", "m3", "human_requested", phrase="talk to a human",
                                   language="en")],
           assignments=[assignment(a, c, inbox=None, assignee=None, rule=unassigned,
                                   candidates=[]) for c in ("c1", "c2")],
           chat_outbound=[outbound(a, c, "unavailable", DEFAULT_MESSAGES["unavailable"])
                          for c in ("c1", "c2")],
           conversation_status=[status(a, c, "open", "unassigned") for c in ("c1", "c2")])


# -- 2. custom phrases and config versions ---------------------------------------------------


def test_custom_phrases_in_several_languages_apply_from_the_next_message(
        deployment: Deployment) -> None:
    a = Account(deployment, "phrases")
    a.directory(a.inbox("support"), editor(a))
    a.chat(a.msg("m0", "I want a refund", "c0"))  # before any config: no custom triggers
    t1, t2 = "2026-11-26T10:01:00Z", "2026-11-26T10:05:00Z"
    a.configure("cfg-1", a("editor"), {
        "custom_triggers": ["refund", "Oppsigelse", "Kündigung", "reembolso", "résiliation"],
        "process": "live"}, at=t1)
    a.chat(a.msg("m1", "I want a REFUND!", "c1", language="en"),
           a.msg("m2", "Jeg ønsker oppsigelse av avtalen", "c2", channel="whatsapp",
                 language="nb"),
           a.msg("m3", "Ich möchte die KUNDIGUNG einreichen", "c3", channel="email",
                 language="de"),
           a.msg("m4", "Quiero un reembolso, por favor", "c4", language="es"),
           a.msg("m5", "Je demande la resiliation du contrat", "c5", language="fr"),
           a.msg("m6", "I was refunded already, thanks", "c6"),  # whole words only
           a.msg("m7", "What about a cancellation?", "c7"))  # not a phrase yet
    a.configure("cfg-2", a("editor"), {"custom_triggers": ["cancellation"], "process": "live"},
                at=t2)
    a.chat(a.msg("m8", "I want a refund", "c8"),  # no longer a phrase
           a.msg("m9", "Cancellation, please", "c9"))
    out = a.outputs()
    got = stripped(out)
    assert got["handoff.config.changes"] == [change(a, a("editor"), 1, at=t1),
                                             change(a, a("editor"), 2, at=t2)]
    assert got["handoff.events"] == [
        handoff(a, "c1", "m1", "custom_phrase", phrase="refund", version=1),
        handoff(a, "c2", "m2", "custom_phrase", phrase="Oppsigelse", version=1,
                channel="whatsapp"),
        handoff(a, "c3", "m3", "custom_phrase", phrase="Kündigung", version=1, channel="email"),
        handoff(a, "c4", "m4", "custom_phrase", phrase="reembolso", version=1),
        handoff(a, "c5", "m5", "custom_phrase", phrase="résiliation", version=1),
        handoff(a, "c9", "m9", "custom_phrase", phrase="cancellation", version=2)]
    # The version that decided is stamped on every record of the handoff.
    assert [(v["conversation_id"], v["config_version"]) for v in got["assignments"]] == [
        (a(c), 1) for c in ("c1", "c2", "c3", "c4", "c5")] + [(a("c9"), 2)]
    assert [v["conversation_id"] for v in got["chat.outbound"]] == [
        a(c) for c in ("c1", "c2", "c3", "c4", "c5", "c9")]
    assert got["tickets.created"] == []


# -- 3. the three processes ------------------------------------------------------------------


def test_process_none_records_the_trigger_and_nothing_else(deployment: Deployment) -> None:
    a = Account(deployment, "none")
    a.directory(a.inbox("support"), editor(a))
    a.configure("cfg-1", a("editor"), {"custom_triggers": ["refund"], "process": "none"})
    first = a.msg("m1", "refund please", "c1")
    # The customer agent keeps the conversation, so each trigger is recorded, once.
    a.chat(first, first,
           a.msg("m2", HUMAN, "c1"),
           a.msg("m3", "Sorry, I do not know.", "c1", sender="customer_agent", answered=False))
    expect(a.outputs(),
           handoff_events=[
               handoff(a, "c1", "m1", "custom_phrase", phrase="refund", process="none",
                       version=1),
               handoff(a, "c1", "m2", "human_requested", phrase="talk to a human",
                       language="en", process="none", version=1),
               handoff(a, "c1", "m3", "no_answer", process="none", version=1)],
           config_changes=[change(a, a("editor"), 1)])


def test_process_async_rotates_regardless_of_presence(deployment: Deployment) -> None:
    a = Account(deployment, "async")
    a.directory(a.inbox("support"), a.user("u1", "Ada"), a.user("u2", "Bo"), editor(a))
    a.presence(("u2", "available", None))  # u1 has no presence at all
    a.configure("cfg-1", a("editor"), {
        "process": "async", "messages": MESSAGES,
        "routing": {"mode": "direct", "destination": a("support"),
                    "assignees": [{"type": "user", "id": a("u1")},
                                  {"type": "user", "id": a("u2")}]}})
    for conv in ("c1", "c2", "c3"):
        a.chat(a.msg(f"m-{conv}", HUMAN, conv))
    a.presence(("u2", "away", None))
    a.chat(a.msg("m-c4", HUMAN, "c4"))
    over = f"[user Ada ({a('u1')}), user Bo ({a('u2')})]"

    def rule(name: str, user: str) -> str:
        return (f"Asynchronous handoff: user {name} ({a(user)}) is next in the rotation over "
                f"{over} (presence is not considered for follow-up).")

    who = {"c1": ("Ada", "u1"), "c2": ("Bo", "u2"), "c3": ("Ada", "u1"), "c4": ("Bo", "u2")}
    expect(a.outputs(),
           handoff_events=[handoff(a, c, f"m-{c}", "human_requested", phrase="talk to a human",
                                   language="en", process="async", version=1) for c in who],
           assignments=[assignment(a, c, inbox="support", assignee=u, mode="async", version=1,
                                   rule=rule(name, u), candidates=[f"{a(u)}: chosen"])
                        for c, (name, u) in who.items()],
           # The message says whether anyone is there now: u2 until they go away.
           chat_outbound=[outbound(a, c, "available" if c != "c4" else "unavailable",
                                   MESSAGES["available" if c != "c4" else "unavailable"])
                          for c in who],
           conversation_status=[status(a, c, "open", "assigned") for c in who],
           config_changes=[change(a, a("editor"), 1)])


# -- 4. handoff messages, keep open or close -------------------------------------------------


def test_live_direct_messages_available_then_unavailable(deployment: Deployment) -> None:
    a = Account(deployment, "messages")
    a.directory(a.inbox("support"), a.user("u1", "Ada"), editor(a))
    a.presence(("u1", "available", 1))
    a.configure("cfg-1", a("editor"), {
        "process": "live", "messages": MESSAGES,
        "routing": {"mode": "direct", "destination": a("support"),
                    "assignees": [{"type": "user", "id": a("u1")}]}})
    a.chat(a.msg("m1", HUMAN, "c1"))
    a.chat(a.msg("m2", HUMAN, "c2"))  # Ada is at her limit of one open conversation
    over = f"[user Ada ({a('u1')})]"
    expect(a.outputs(),
           handoff_events=[handoff(a, c, m, "human_requested", phrase="talk to a human",
                                   language="en", version=1)
                           for c, m in (("c1", "m1"), ("c2", "m2"))],
           assignments=[
               assignment(a, "c1", inbox="support", assignee="u1", version=1,
                          candidates=[f"{a('u1')}: chosen"],
                          rule=f"Live handoff: Ada ({a('u1')}) is the next available agent in "
                               f"the rotation over {over}."),
               assignment(a, "c2", inbox="support", assignee=None, version=1,
                          candidates=[f"{a('u1')}: at capacity 1/1"],
                          rule=f"Live handoff: nobody is available among {over}; left "
                               "unassigned.")],
           chat_outbound=[outbound(a, "c1", "available", MESSAGES["available"]),
                          outbound(a, "c2", "unavailable", MESSAGES["unavailable"])],
           conversation_status=[status(a, "c1", "open", "assigned"),
                                status(a, "c2", "open", "unassigned")],
           config_changes=[change(a, a("editor"), 1)])


def test_workflow_unassigned_keep_open_versus_close(deployment: Deployment) -> None:
    a = Account(deployment, "unassigned")
    a.directory(a.inbox("desk", "help_desk"), editor(a))
    a.send(Topic.WORKFLOWS, {"workflow_id": a("wf"), "account_id": a.id, "name": WORKFLOW_NAME,
                             "rules": [{"when": {"channel": ["email"]},
                                        "assign": {"user": a("nobody")}}]})

    def config(process: str, choice: str) -> dict[str, Any]:
        return {"process": process, "messages": MESSAGES, "unassigned_chat": choice,
                "routing": {"mode": "workflow", "workflow_id": a("wf"),
                            "destination": a("desk")}}

    a.configure("cfg-1", a("editor"), config("live", "keep_open"))
    a.chat(a.msg("m1", "talk to a human please", "c1"))
    a.configure("cfg-2", a("editor"), config("live", "close"))
    a.chat(a.msg("m2", "talk to a human please", "c2"))
    a.configure("cfg-3", a("editor"), config("async", "close"))  # close is for live only
    a.chat(a.msg("m3", "talk to a human please", "c3"))
    out = a.outputs()
    tickets_match_assignments(out)
    rule = f"Workflow '{WORKFLOW_NAME}': no rule matched; the ticket is unassigned."
    cases = (("c1", "m1", "live", 1), ("c2", "m2", "live", 2), ("c3", "m3", "async", 3))
    expect(out,
           handoff_events=[handoff(a, c, m, "human_requested", phrase="talk to a human please",
                                   language="en", process=p, version=v)
                           for c, m, p, v in cases],
           tickets_created=[ticket(a, c, m, "human_requested", "[chat] talk to a human please",
                                   phrase="talk to a human please", language="en",
                                   help_desk="desk", workflow="wf", version=v)
                            for c, m, _, v in cases],
           assignments=[assignment(a, c, inbox="desk", assignee=None, rule=rule, candidates=[],
                                   mode=p, version=v, ticket=ANY) for c, _, p, v in cases],
           chat_outbound=[outbound(a, c, "unassigned", MESSAGES["unassigned"])
                          for c, _, _, _ in cases],
           conversation_status=[status(a, "c1", "open", "unassigned"),
                                status(a, "c2", "closed", "unassigned"),
                                status(a, "c3", "open", "unassigned")],
           config_changes=[change(a, a("editor"), v) for v in (1, 2, 3)])


# -- 5. at most one handoff, duplicates dropped ----------------------------------------------


def test_second_trigger_and_duplicate_input_raise_nothing(deployment: Deployment) -> None:
    a = Account(deployment, "once")
    a.directory(a.inbox("support"))
    first = a.msg("m1", HUMAN, "c1")
    a.chat(first)
    before = a.outputs()
    unassigned = "Live handoff: no assignees are configured among []; left unassigned."
    expect(before,
           handoff_events=[handoff(a, "c1", "m1", "human_requested", phrase="talk to a human",
                                   language="en")],
           assignments=[assignment(a, "c1", inbox="support", assignee=None, rule=unassigned,
                                   candidates=[])],
           chat_outbound=[outbound(a, "c1", "unavailable", DEFAULT_MESSAGES["unavailable"])],
           conversation_status=[status(a, "c1", "open", "unassigned")])
    a.chat(a.msg("m2", "Let me talk to a person, I want a refund", "c1"),
           a.msg("m3", "Sorry, I do not know.", "c1", sender="customer_agent", answered=False),
           first)  # the same input again, as a retrying connector sends it
    # Identical records, event ids included: nothing new was published.
    assert a.outputs() == before


# -- 6. routing ------------------------------------------------------------------------------


def test_live_direct_rotation_skips_away_and_full_agents(deployment: Deployment) -> None:
    a = Account(deployment, "rotation")
    a.directory(a.inbox("support"), a.user("u1", "Ada"), a.user("u2", "Bo"),
                a.user("u3", "Cy"), editor(a))
    a.presence(("u1", "available", None), ("u2", "away", None), ("u3", "available", 1))
    a.configure("cfg-1", a("editor"), {
        "process": "live", "messages": MESSAGES,
        "routing": {"mode": "direct", "destination": a("support"),
                    "assignees": [{"type": "user", "id": a(u)} for u in ("u1", "u2", "u3")]}})
    convs = ("c1", "c2", "c3", "c4")
    for conv in convs:  # one at a time: the rotation depends on their order
        a.chat(a.msg(f"m-{conv}", HUMAN, conv))
    over = f"[user Ada ({a('u1')}), user Bo ({a('u2')}), user Cy ({a('u3')})]"

    def rule(name: str, user: str, passed: str = "") -> str:
        text = (f"Live handoff: {name} ({a(user)}) is the next available agent in the rotation "
                f"over {over}")
        return text + (f"; passed over {passed}." if passed else ".")

    away, full = f"{a('u2')}: away", f"{a('u3')}: at capacity 1/1"
    expect(a.outputs(),
           handoff_events=[handoff(a, c, f"m-{c}", "human_requested", phrase="talk to a human",
                                   language="en", version=1) for c in convs],
           assignments=[
               assignment(a, "c1", inbox="support", assignee="u1", version=1,
                          rule=rule("Ada", "u1"), candidates=[f"{a('u1')}: chosen"]),
               assignment(a, "c2", inbox="support", assignee="u3", version=1,
                          rule=rule("Cy", "u3", away), candidates=[away, f"{a('u3')}: chosen"]),
               assignment(a, "c3", inbox="support", assignee="u1", version=1,
                          rule=rule("Ada", "u1"), candidates=[f"{a('u1')}: chosen"]),
               assignment(a, "c4", inbox="support", assignee="u1", version=1,
                          rule=rule("Ada", "u1", f"{away}, {full}"),
                          candidates=[away, full, f"{a('u1')}: chosen"])],
           chat_outbound=[outbound(a, c, "available", MESSAGES["available"]) for c in convs],
           conversation_status=[status(a, c, "open", "assigned") for c in convs],
           config_changes=[change(a, a("editor"), 1)])


def test_team_outside_business_hours_is_unavailable(deployment: Deployment) -> None:
    a = Account(deployment, "hours")
    a.directory(a.inbox("support"), editor(a),
                {"kind": "team", "id": a("t1"), "account_id": a.id, "name": "Support",
                 "timezone": "Europe/Oslo",
                 "business_hours": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                                     "start": "08:00", "end": "16:00"}]})
    # Members rotate in directory order, so they are sent one at a time.
    a.directory(a.user("u1", "Ada", teams=("t1",)))
    a.directory(a.user("u2", "Bo", teams=("t1",)))
    a.presence(("u1", "available", None), ("u2", "available", None))
    a.configure("cfg-1", a("editor"), {
        "process": "live", "messages": MESSAGES,
        "routing": {"mode": "direct", "destination": a("support"),
                    "assignees": [{"type": "team", "id": a("t1")}]}})
    times = {"c1": T,                       # Thursday 11:00 in Oslo: open
             "c2": "2026-11-26T15:30:00Z",  # Thursday 16:30 in Oslo: closed
             "c3": "2026-11-28T10:00:00Z",  # Saturday: closed
             "c4": "2026-11-27T07:30:00Z"}  # Friday 08:30 in Oslo: open
    for conv, at in times.items():
        a.chat(a.msg(f"m-{conv}", HUMAN, conv, at=at))
    team = f"team Support ({a('t1')})"
    closed = [f"{a('u2')}: {team} outside business hours",
              f"{a('u1')}: {team} outside business hours"]
    nobody = f"Live handoff: nobody is available among [{team}]; left unassigned."

    def chosen(name: str, user: str) -> str:
        return (f"Live handoff: {name} ({a(user)}) of {team} is the next available agent in "
                f"the rotation over [{team}].")

    expect(a.outputs(),
           handoff_events=[handoff(a, c, f"m-{c}", "human_requested", phrase="talk to a human",
                                   language="en", version=1, at=at)
                           for c, at in times.items()],
           assignments=[
               assignment(a, "c1", inbox="support", assignee="u1", version=1, at=times["c1"],
                          rule=chosen("Ada", "u1"), candidates=[f"{a('u1')}: chosen"]),
               assignment(a, "c2", inbox="support", assignee=None, version=1, at=times["c2"],
                          rule=nobody, candidates=closed),
               assignment(a, "c3", inbox="support", assignee=None, version=1, at=times["c3"],
                          rule=nobody, candidates=closed),
               assignment(a, "c4", inbox="support", assignee="u2", version=1, at=times["c4"],
                          rule=chosen("Bo", "u2"), candidates=[f"{a('u2')}: chosen"])],
           chat_outbound=[outbound(a, c, "available" if c in ("c1", "c4") else "unavailable",
                                   MESSAGES["available" if c in ("c1", "c4") else "unavailable"],
                                   at=at) for c, at in times.items()],
           conversation_status=[
               status(a, c, "open", "assigned" if c in ("c1", "c4") else "unassigned", at=at)
               for c, at in times.items()],
           config_changes=[change(a, a("editor"), 1)])


def test_workflow_rules_rotate_team_user_or_leave_unassigned(deployment: Deployment) -> None:
    a = Account(deployment, "workflow")
    a.directory(a.inbox("desk", "help_desk"), a.inbox("plain"), editor(a),
                {"kind": "team", "id": a("tb"), "account_id": a.id, "name": "Billing",
                 "timezone": "UTC", "business_hours": None},
                a.user("u1", "Ada"), a.user("u2", "Bo"), a.user("u3", "Cy", teams=("tb",)),
                a.user("u4", "Di"))
    a.presence(("u3", "available", None))
    a.send(Topic.WORKFLOWS, {"workflow_id": a("wf"), "account_id": a.id, "name": WORKFLOW_NAME,
                             "rules": [
        {"when": {"channel": ["email"]}, "assign": {"rotate": [a("u1"), a("u2")]}},
        {"when": {"channel": ["chat", "whatsapp"], "trigger": ["custom_phrase"]},
         "assign": {"team": a("tb")}},
        {"when": {"trigger": ["no_answer"]}, "assign": {"user": a("u4")}}]})
    routing = {"mode": "workflow", "workflow_id": a("wf"), "destination": a("desk")}
    a.configure("cfg-1", a("editor"), {"process": "live", "custom_triggers": ["refund"],
                                       "messages": MESSAGES, "routing": routing})
    # Workflows need a help desk: the same routing to a plain inbox is refused.
    a.configure("cfg-2", a("editor"), {"process": "live", "custom_triggers": ["refund"],
                                       "routing": routing | {"destination": a("plain")}})
    for conv in ("c1", "c2", "c3"):  # one at a time: rule 1 rotates
        a.chat(a.msg(f"m-{conv}", "I need a refund", conv, channel="email"))
    a.chat(a.msg("m-c4", "I need a refund", "c4", channel="whatsapp"),
           a.msg("m-c5", "Where is my order?", "c5"),
           a.msg("m-c5b", "Sorry, I do not know.", "c5", sender="customer_agent",
                 answered=False),
           a.msg("m-c6", HUMAN, "c6"))
    out = a.outputs()
    tickets_match_assignments(out)
    title = f"Workflow '{WORKFLOW_NAME}'"
    rotate = f"{title}, rule 1: rotates the owner over [{a('u1')}, {a('u2')}]; "
    refund: dict[str, Any] = {"kind": "custom_phrase", "phrase": "refund"}
    human: dict[str, Any] = {"kind": "human_requested", "phrase": "talk to a human", "language": "en"}
    cases = [  # conversation, message, channel, trigger, subject, assignee, rule, candidates
        ("c1", "m-c1", "email", refund, "I need a refund", "u1", rotate + f"Ada ({a('u1')}) is next.",
         [f"{a('u1')}: chosen"]),
        ("c2", "m-c2", "email", refund, "I need a refund", "u2", rotate + f"Bo ({a('u2')}) is next.",
         [f"{a('u2')}: chosen"]),
        ("c3", "m-c3", "email", refund, "I need a refund", "u1", rotate + f"Ada ({a('u1')}) is next.",
         [f"{a('u1')}: chosen"]),
        ("c4", "m-c4", "whatsapp", refund, "I need a refund", "u3",
         f"{title}, rule 2: Cy ({a('u3')}) is the next available member of team Billing "
         f"({a('tb')}).", [f"{a('u3')}: chosen"]),
        ("c5", "m-c5b", "chat", {"kind": "no_answer"}, "Where is my order?", "u4",
         f"{title}, rule 3: assigns Di ({a('u4')}).", [f"{a('u4')}: chosen"]),
        ("c6", "m-c6", "chat", human, HUMAN, None,
         f"{title}: no rule matched; the ticket is unassigned.", []),
    ]
    expect(out,
           handoff_events=[handoff(a, c, m, version=1, channel=ch, **trig)
                           for c, m, ch, trig, *_ in cases],
           tickets_created=[ticket(a, c, m, subject=f"[{ch}] {subj}", help_desk="desk",
                                   workflow="wf", channel=ch, **trig)
                            for c, m, ch, trig, subj, *_ in cases],
           assignments=[assignment(a, c, inbox="desk", assignee=u, rule=r, candidates=cand,
                                   version=1, ticket=ANY)
                        for c, _, _, _, _, u, r, cand in cases],
           chat_outbound=[outbound(a, c, "available" if u else "unassigned",
                                   MESSAGES["available" if u else "unassigned"], channel=ch)
                          for c, _, ch, _, _, u, _, _ in cases],
           conversation_status=[status(a, c, "open", "assigned" if u else "unassigned")
                                for c, _, _, _, _, u, _, _ in cases],
           config_changes=[
               change(a, a("editor"), 1),
               change(a, a("editor"), None,
                      reason=f"routing.destination: {a('plain')} is an inbox; ticket-based "
                             "workflows need a help desk")])


# -- 7. who may change the settings ----------------------------------------------------------


def test_config_refusals_leave_the_settings_unchanged(deployment: Deployment) -> None:
    a = Account(deployment, "refusals")
    other = Account(deployment, "outsider")
    a.directory(a.inbox("support"), editor(a),
                a.user("viewer", "Viewer", permissions=("inbox.read",)))
    other.directory(other.user("editor", "Other editor", permissions=(EDIT,)))
    a.configure("cfg-1", a("editor"), {"process": "live", "custom_triggers": ["refund"]})
    wanted = {"process": "none", "custom_triggers": ["refund", "cancellation"]}
    for event, actor in (("cfg-2", a("viewer")), ("cfg-3", other("editor")),
                         ("cfg-4", a("ghost"))):
        a.configure(event, actor, wanted)
    a.chat(a.msg("m1", "refund please", "c1"),
           a.msg("m2", "cancellation please", "c2"))
    unassigned = "Live handoff: no assignees are configured among []; left unassigned."
    expect(a.outputs(),
           handoff_events=[handoff(a, "c1", "m1", "custom_phrase", phrase="refund", version=1)],
           assignments=[assignment(a, "c1", inbox="support", assignee=None, rule=unassigned,
                                   candidates=[], version=1)],
           chat_outbound=[outbound(a, "c1", "unavailable", DEFAULT_MESSAGES["unavailable"])],
           conversation_status=[status(a, "c1", "open", "unassigned")],
           config_changes=[
               change(a, a("editor"), 1),
               change(a, a("viewer"), None,
                      reason=f"user {a('viewer')} lacks the customer_agent.edit permission"),
               change(a, other("editor"), None,
                      reason=f"user {other('editor')} is not a user of account {a.id}"),
               change(a, a("ghost"), None,
                      reason=f"user {a('ghost')} is not a user of account {a.id}")])
