"""The decision trail of one conversation, re-derived from the topics and checked against live.

1. The conversation's account: the first record under its key on `chat.messages` (the key is
   the conversation id, so one partition holds them all).
2. That account's records on `handoff.account-events` (one partition; other accounts' records
   are skipped without decoding) are decided again by the pure core over a fresh store. An
   account's state depends on its own records only, so these are the live decisions.
3. Every decision that concerns the conversation becomes a step: the message or update, the
   trigger and why it fired (or why none did), the settings version and who saved it, the
   ticket, the candidates and the rule that chose the assignee, the message sent and the
   status. Each output record is compared, byte for byte, with what the live worker published
   on the output topics (matched by its derived `event_id`).

This is the auditor's tool, so it prints message text; the worker's logs never do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from handoff.config import WorkerSettings
from handoff.core.routing import Facts, condition_matches
from handoff.core.state import AccountSettings, AccountState, ConversationState, Phase
from handoff.core.store import Overlay, Table
from handoff.history import (
    LogRange,
    Span,
    open_consumer,
    parse_event,
    partitions_of,
    plan,
    read_spans,
)
from handoff.replay import decide
from handoff.spill import SpillStore
from handoff.triggers.custom import normalize_phrase
from schemas.codec import dumps
from schemas.common import Sender, TriggerKind
from schemas.internal import (
    SequencedChat,
    SequencedConfigRequest,
    SequencedControl,
    SequencedConversationUpdate,
    SequencedDirectory,
    SequencedPresence,
    SequencedTick,
    SequencedWorkflow,
)
from schemas.outputs import Trigger
from schemas.settings import DirectRouting
from schemas.topics import Topic, partition_for
from steps.decide import build_engine

# The outputs keyed by conversation id: what a conversation's trail is made of.
CONVERSATION_TOPICS = (Topic.HANDOFF_EVENTS, Topic.TICKETS_CREATED, Topic.ASSIGNMENTS,
                       Topic.CHAT_OUTBOUND, Topic.CONVERSATION_STATUS)
LANGUAGES = {"en": "English", "nb": "Norwegian bokmål", "nn": "Norwegian nynorsk",
             "sv": "Swedish", "da": "Danish", "de": "German", "es": "Spanish", "fr": "French",
             "it": "Italian"}


class NotFound(Exception):
    """The conversation is not on the topics."""


@dataclass
class Output:
    """One record the decision published, and how it compares with the live topic."""

    topic: str
    value: dict[str, Any]
    raw: bytes
    live: str = "unchecked"  # same | differs | missing | duplicated
    live_value: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"topic": self.topic, "value": self.value, "live": self.live}
        if self.live_value is not None:
            out["live_value"] = self.live_value
        return out


@dataclass
class Step:
    kind: str  # message | update | moved (another event re-routed or queued it)
    at: str
    event_id: str
    origin: dict[str, Any]
    log: dict[str, int]
    detail: dict[str, Any]
    outputs: list[Output] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def first(self, topic: Topic) -> dict[str, Any] | None:
        return next((o.value for o in self.outputs if o.topic == topic.value), None)

    def all(self, topic: Topic) -> list[dict[str, Any]]:
        return [o.value for o in self.outputs if o.topic == topic.value]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "at": self.at, "event_id": self.event_id,
                "origin": self.origin, "account_log": self.log, **self.detail,
                "notes": self.notes, "outputs": [o.to_json() for o in self.outputs]}


@dataclass
class Trail:
    conversation_id: str
    account_id: str
    log_partition: int
    account_records: int = 0
    steps: list[Step] = field(default_factory=list)
    live_only: list[dict[str, Any]] = field(default_factory=list)
    live_checked: bool = False

    @property
    def outputs(self) -> list[Output]:
        return [o for s in self.steps for o in s.outputs]

    @property
    def mismatches(self) -> int:
        return (sum(1 for o in self.outputs if o.live in ("differs", "missing"))
                + len(self.live_only))

    def cross_check(self) -> dict[str, Any]:
        counts = {k: sum(1 for o in self.outputs if o.live == k)
                  for k in ("same", "duplicated", "differs", "missing")}
        return {"checked": self.live_checked, **counts, "only_live": len(self.live_only),
                "mismatches": self.mismatches}

    def to_json(self) -> list[dict[str, Any]]:
        """A list of steps for tools; the last one is the cross-check with the live topics."""
        head = {"conversation_id": self.conversation_id, "account_id": self.account_id}
        steps = [{**head, "step": i, **s.to_json()} for i, s in enumerate(self.steps, 1)]
        steps += [{**head, "step": len(steps) + i, "kind": "only_live", **r}
                  for i, r in enumerate(self.live_only, 1)]
        steps.append({**head, "step": len(steps) + 1, "kind": "cross_check",
                      "account_log_partition": self.log_partition,
                      "account_records_replayed": self.account_records, **self.cross_check()})
        return steps


# -- finding ---------------------------------------------------------------------------------


async def _find_account(settings: WorkerSettings, conversation_id: str) -> str:
    """The account of the first readable message under the conversation's key."""
    topic = settings.topic(Topic.CHAT_MESSAGES)
    async with open_consumer(settings) as consumer:
        numbers = await partitions_of(consumer, topic)
        home = partition_for(conversation_id, len(numbers))
        key = conversation_id.encode()
        # The key's own partition first; the others only if a producer partitioned otherwise.
        for only in ([home], [p for p in numbers if p != home]):
            spans = await plan(consumer, topic, LogRange(), only)
            async for record in read_spans(consumer, topic, spans, keys={key}):
                try:
                    value = orjson.loads(record.value or b"")
                except orjson.JSONDecodeError:
                    continue
                account = value.get("account_id") if isinstance(value, dict) else None
                if isinstance(account, str) and account:
                    return account
    raise NotFound(f"conversation {conversation_id}: no message under that key on {topic}")


# -- explaining ------------------------------------------------------------------------------


def _when(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else "?"


def _settings_detail(store: Overlay, account_id: str, version: int) -> dict[str, Any]:
    account = store.account(account_id)
    found = store.get(Table.SETTINGS_HISTORY, f"{account_id}#{version}")
    saved = (AccountSettings.model_validate(found) if isinstance(found, dict)
             else found if isinstance(found, AccountSettings) else None)
    config = saved.config if saved is not None else AccountSettings(account_id=account_id).config
    routing = config.routing
    if isinstance(routing, DirectRouting):
        where = routing.destination or "the account's first inbox"
        who = ", ".join(f"{a.type} {a.id}" for a in routing.assignees) or "nobody"
        route = f"direct to {where}, assignees [{who}]"
    else:
        route = f"workflow {routing.workflow_id} in help desk {routing.destination}"
    return {
        "version": version,
        "saved_by": saved.actor if saved is not None else None,
        "saved_by_name": (account.users[saved.actor].name
                          if saved is not None and saved.actor in account.users else None),
        "saved_at": _when(saved.occurred_at) if saved is not None else None,
        "config_request": saved.event_id if saved is not None else None,
        "process": config.process.value,
        "routing": route,
        "custom_triggers": list(config.custom_triggers),
        "unassigned_chat": config.unassigned_chat.value,
    }


def _why_trigger(trigger: dict[str, Any], version: int, pause: dict[str, Any] | None) -> str:
    kind, phrase = trigger["kind"], trigger.get("phrase")
    if kind == TriggerKind.NO_ANSWER:
        return "the customer agent could not answer (answered: false) while it owned the conversation"
    if kind == TriggerKind.AGENT_PAUSED:
        since = (f" since {pause['event_id']} by {pause.get('actor') or '?'} at {pause['at']}"
                 if pause else "")
        return f"the customer agent was paused{since}; every visitor message goes to a human"
    if kind == TriggerKind.CUSTOM_PHRASE:
        return (f"the message contains the custom trigger phrase '{phrase}' of settings "
                f"v{version} (custom phrases are checked before requests for a human)")
    language = trigger.get("language")
    named = LANGUAGES.get(language or "", language or "unknown language")
    return f"the visitor asks for a human ({named} phrase list)"


def _why_not(before: ConversationState | None, event: SequencedChat, custom_count: int) -> str:
    message = event.record
    if before is not None and before.phase is Phase.HANDED_OFF:
        who = (f"{before.assignee.type} {before.assignee.id}" if before.assignee is not None
               else "unassigned")
        at = before.trigger.message_event_id if before.trigger is not None else "?"
        return (f"already handed off (at {at}, to {who}); triggers are only evaluated while "
                "the customer agent owns the conversation")
    if before is not None and before.phase is Phase.CLOSED and message.sender is not Sender.VISITOR:
        return "the conversation is closed; only a visitor message reopens it"
    if message.sender is Sender.HUMAN_AGENT:
        return "a human agent's message never triggers a handoff"
    if message.sender is Sender.CUSTOMER_AGENT:
        return "the customer agent answered" if message.answered is not False else "?"
    return (f"no trigger: none of the {custom_count} custom phrases and no request for a human "
            "in the message")


def _message_step(event: SequencedChat, record: Any, store: Overlay,
                  before: ConversationState | None, emits: list[Any] | None,
                  pause: dict[str, Any] | None) -> Step:
    message = event.record
    detail: dict[str, Any] = {
        "sender": message.sender.value, "channel": message.channel.value,
        "inbox_id": message.inbox_id, "language": message.language, "text": message.text,
        "answered": message.answered, "phase_before": before.phase.value if before else "new",
        "trigger": None, "no_trigger": None, "settings": None}
    step = Step("message", _when(message.sent_at), message.event_id, event.origin.model_dump(),
                {"partition": record.partition, "offset": record.offset}, detail)
    if emits is None:
        step.notes.append("the core could not decide this record (the live worker dead-lettered it)")
        return step
    if not emits and before is not None and message.event_id in before.recent_event_ids:
        detail["no_trigger"] = "a redelivery of an event already decided here; dropped"
        return step
    _add_outputs(step, emits)
    statuses = step.all(Topic.CONVERSATION_STATUS)
    if before is not None and before.phase is Phase.CLOSED and statuses and \
            statuses[0]["view"] == "bot":
        step.notes.append("the visitor wrote into a closed conversation: it reopens to the "
                          "customer agent and the message is evaluated like any other")
    handoff = step.first(Topic.HANDOFF_EVENTS)
    if handoff is None:
        phrases = len(store.settings(message.account_id).config.custom_triggers)
        detail["no_trigger"] = _why_not(before, event, phrases)
        return step
    version = handoff["config_version"]
    trigger = handoff["trigger"]
    detail["trigger"] = {**trigger, "why": _why_trigger(trigger, version, pause)}
    detail["settings"] = _settings_detail(store, message.account_id, version)
    detail["handed_off"] = handoff["handed_off"]
    detail["process"] = handoff["process"]
    if not handoff["handed_off"]:
        step.notes.append("process none: the trigger is recorded and the customer agent keeps "
                          "the conversation")
    ticket = step.first(Topic.TICKETS_CREATED)
    if ticket is not None:
        detail["ticket"] = {k: ticket[k] for k in ("ticket_id", "help_desk_id", "workflow_id",
                                                   "subject")}
    assignment = step.first(Topic.ASSIGNMENTS)
    if assignment is not None:
        detail["assignment"] = {k: assignment[k] for k in ("assignee", "inbox_id", "mode",
                                                           "rule", "candidates", "ticket_id")}
    if ticket is not None:
        conv = store.conversation(message.conversation_id)
        if conv is not None:
            detail["workflow_rules"] = _rules_tried(store.account(message.account_id),
                                                    ticket["workflow_id"], conv,
                                                    Trigger.model_validate(trigger), message)
    return step


def _list(values: Any) -> str:
    return "[" + ", ".join(values) + "]"


def _rules_tried(account: AccountState, workflow_id: str, conv: ConversationState,
                 trigger: Trigger, message: Any) -> list[dict[str, Any]]:
    """The workflow's rules in order up to the one that matched, with why each did not."""
    workflow = account.workflows.get(workflow_id)
    if workflow is None:
        return []
    facts = Facts(conv.account_id, conv.channel, conv.inbox_id, conv.language, trigger,
                  message.sent_at)
    language = conv.language or trigger.language
    tried = []
    for number, rule in enumerate(workflow.rules, 1):
        w = rule.when
        misses = []
        if w.channel is not None and conv.channel not in w.channel:
            misses.append(f"channel {conv.channel.value} not in {_list(c.value for c in w.channel)}")
        if w.trigger is not None and trigger.kind not in w.trigger:
            misses.append(f"trigger {trigger.kind.value} not in {_list(t.value for t in w.trigger)}")
        if w.language is not None and (language or "").lower() not in {
                x.lower() for x in w.language}:
            misses.append(f"language {language or 'unknown'} not in {_list(w.language)}")
        if w.inbox_id is not None and conv.inbox_id not in w.inbox_id:
            misses.append(f"inbox {conv.inbox_id or 'none'} not in {_list(w.inbox_id)}")
        if w.phrase is not None and (trigger.phrase is None or normalize_phrase(trigger.phrase)
                                     not in {normalize_phrase(p) for p in w.phrase}):
            misses.append(f"phrase '{trigger.phrase or 'none'}' not in {_list(w.phrase)}")
        matched = condition_matches(w, facts)
        tried.append({"rule": number, "matched": matched,
                      "why": "every condition holds" if matched else "; ".join(misses)})
        if matched:
            break
    return tried


def _update_step(event: SequencedConversationUpdate, record: Any,
                 before: ConversationState | None, emits: list[Any] | None) -> Step:
    update = event.record
    detail = {"action": update.action.value, "actor": update.actor,
              "phase_before": before.phase.value if before else "unknown"}
    step = Step("update", _when(update.occurred_at), update.event_id, event.origin.model_dump(),
                {"partition": record.partition, "offset": record.offset}, detail)
    if emits is None:
        step.notes.append("the core could not decide this record (the live worker dead-lettered it)")
    elif before is None:
        step.notes.append("no such conversation was known yet: ignored")
    elif update.event_id in before.recent_event_ids:
        step.notes.append("a redelivery of an update already decided here; dropped")
    else:
        _add_outputs(step, emits)
        if not emits and update.action.value == "accept":
            step.notes.append("the assigned user picked it up: no pickup timeout from here on")
        elif not emits and update.action.value == "release":
            step.notes.append("not held by that user: nothing changes")
        elif not emits:
            step.notes.append("already closed: nothing changes")
    return step


def _moved_step(event: Any, record: Any, emits: list[Any]) -> Step:
    """A step for an event of the account that moved this conversation: the clock (a pickup
    timeout, the queue), a user's presence, a close elsewhere that freed capacity, ..."""
    if isinstance(event, SequencedTick):
        at, ident, cause = event.at, event.event_id, "the clock (a tick of the account's log)"
        origin = {"topic": "clock", "partition": record.partition, "offset": record.offset}
    else:
        origin = event.origin.model_dump()
        if isinstance(event, SequencedPresence):
            p = event.record
            at, ident = p.occurred_at, p.event_id
            cause = f"user {p.user_id} is now {p.status.value}"
        elif isinstance(event, SequencedConversationUpdate):
            u = event.record
            at, ident = u.occurred_at, u.event_id
            cause = f"{u.action.value} of conversation {u.conversation_id} freed capacity"
        elif isinstance(event, SequencedConfigRequest):
            at, ident, cause = (event.record.occurred_at, event.record.event_id,
                                "a settings change")
        elif isinstance(event, SequencedDirectory | SequencedWorkflow):
            at, ident, cause = event.occurred_at, f"{origin['topic']}@{origin['offset']}", \
                f"a change of {event.source}"
        else:
            at, ident, cause = None, "?", event.source
    step = Step("moved", _when(at), ident, origin,
                {"partition": record.partition, "offset": record.offset}, {"cause": cause})
    _add_outputs(step, emits)
    return step


def _concerning(emits: list[Any] | None, conversation_id: str) -> list[Any] | None:
    """The records of a decision that belong to this conversation's trail."""
    if emits is None:
        return None
    topics = {t.value for t in CONVERSATION_TOPICS}
    return [e for e in emits if e.key == conversation_id and e.topic.value in topics]


def _add_outputs(step: Step, emits: list[Any]) -> None:
    for emit in emits:
        raw = dumps(emit.value)
        step.outputs.append(Output(emit.topic.value, orjson.loads(raw), raw))


# -- the run ---------------------------------------------------------------------------------


async def run_audit(settings: WorkerSettings, conversation_id: str,
                    check_live: bool = True) -> Trail:
    """Re-derive the conversation's decisions and compare them with the live topics."""
    account_id = await _find_account(settings, conversation_id)
    engine = build_engine(settings.human_request_dirs)
    source = settings.topic(Topic.ACCOUNT_EVENTS)
    key = account_id.encode()
    async with open_consumer(settings) as consumer:
        with SpillStore() as store:
            numbers = await partitions_of(consumer, source)
            home = partition_for(account_id, len(numbers))
            trail = Trail(conversation_id, account_id, home)
            pause: dict[str, Any] | None = None
            for only in ([home], [p for p in numbers if p != home]):
                spans: list[Span] = await plan(consumer, source, LogRange(), only)
                async for record in read_spans(consumer, source, spans, keys={key}):
                    trail.account_records += 1
                    trail.log_partition = record.partition
                    event = parse_event(record.value)
                    if event is None or event.account_id != account_id:
                        continue
                    view = Overlay(store)
                    if isinstance(event, SequencedControl):
                        pause = ({"event_id": event.record.event_id, "actor": event.record.actor,
                                  "at": _when(event.record.occurred_at)}
                                 if event.record.action.value == "pause" else None)
                    concerns = (isinstance(event, SequencedChat | SequencedConversationUpdate)
                                and event.record.conversation_id == conversation_id)
                    before = view.conversation(conversation_id) if concerns else None
                    decision = decide(engine, store, event)
                    emits = _concerning(decision.emits if decision is not None else None,
                                        conversation_id)
                    if not concerns:
                        if emits:
                            trail.steps.append(_moved_step(event, record, emits))
                        continue
                    if isinstance(event, SequencedChat):
                        trail.steps.append(_message_step(event, record, Overlay(store), before,
                                                         emits, pause))
                    else:
                        trail.steps.append(_update_step(event, record, before, emits))
                if trail.account_records:
                    break  # found on its own partition: the others hold other accounts
    if check_live:
        await _check_live(settings, trail)
    return trail


async def _check_live(settings: WorkerSettings, trail: Trail) -> None:
    """Compare each re-derived record with the live one of the same event id, byte for byte."""
    live: dict[tuple[str, str], list[bytes]] = {}
    key = trail.conversation_id.encode()
    async with open_consumer(settings) as consumer:
        for topic in CONVERSATION_TOPICS:
            name = settings.topic(topic)
            try:
                numbers = await partitions_of(consumer, name)
            except LookupError:
                continue
            home = partition_for(trail.conversation_id, len(numbers))
            spans = await plan(consumer, name, LogRange(), [home])
            async for record in read_spans(consumer, name, spans, keys={key}):
                try:
                    event_id = str(orjson.loads(record.value or b"{}").get("event_id"))
                except (orjson.JSONDecodeError, AttributeError):
                    event_id = "?"
                live.setdefault((topic.value, event_id), []).append(record.value or b"")
    trail.live_checked = True
    for output in trail.outputs:
        found = live.pop((output.topic, str(output.value.get("event_id"))), None)
        if not found:
            output.live = "missing"
        elif any(raw != output.raw for raw in found):
            output.live = "differs"
            output.live_value = orjson.loads(next(r for r in found if r != output.raw))
        else:
            # At least once: a crash may publish a record twice, with the same bytes.
            output.live = "same" if len(found) == 1 else "duplicated"
    for (name, _), raws in sorted(live.items()):
        for raw in raws:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                value = raw.decode("utf-8", "replace")
            trail.live_only.append({"topic": name, "value": value})


# -- text ------------------------------------------------------------------------------------


def _assignee(value: dict[str, Any] | None) -> str:
    return f"{value['type']} {value['id']}" if value else "nobody (unassigned)"


def format_trail(trail: Trail) -> str:
    lines = [f"Conversation {trail.conversation_id} · account {trail.account_id} · "
             f"{trail.account_records} records of the account re-decided from "
             f"handoff.account-events partition {trail.log_partition}", ""]
    for number, step in enumerate(trail.steps, 1):
        d = step.detail
        log = f"account log {step.log['partition']}@{step.log['offset']}"
        origin = f"{step.origin['topic']} {step.origin['partition']}@{step.origin['offset']}"
        if step.kind == "message":
            lines.append(f"[{number}] {step.at}  {d['sender']} message {step.event_id} on "
                         f"{d['channel']}  ({origin}; {log})")
            lines.append(f"    \"{d['text']}\"")
        elif step.kind == "moved":
            lines.append(f"[{number}] {step.at}  {d['cause']} ({step.event_id}; {origin}; {log})")
        else:
            lines.append(f"[{number}] {step.at}  {d['action']} by {d['actor'] or '?'} "
                         f"({step.event_id}; {origin}; {log})")
        for note in step.notes:
            lines.append(f"    note: {note}")
        if d.get("trigger"):
            t = d["trigger"]
            phrase = f" '{t['phrase']}'" if t.get("phrase") else ""
            language = f" ({t['language']})" if t.get("language") else ""
            lines.append(f"    trigger: {t['kind']}{phrase}{language}: {t['why']}")
        elif d.get("no_trigger"):
            lines.append(f"    no handoff: {d['no_trigger']}")
        s = d.get("settings")
        if s:
            saved = (f"saved by {s['saved_by']}"
                     + (f" ({s['saved_by_name']})" if s["saved_by_name"] else "")
                     + f" at {s['saved_at']} ({s['config_request']})"
                     if s["saved_by"] else "the defaults, never saved")
            lines.append(f"    settings: v{s['version']}, {saved}; process {s['process']}, "
                         f"{s['routing']}, {len(s['custom_triggers'])} custom phrases")
        if d.get("ticket"):
            t = d["ticket"]
            lines.append(f"    ticket: {t['ticket_id']} in {t['help_desk_id']} (workflow "
                         f"{t['workflow_id']}): \"{t['subject']}\"")
        if d.get("workflow_rules"):
            tried = "; ".join(f"{r['rule']} " + ("matches" if r["matched"] else f"no ({r['why']})")
                              for r in d["workflow_rules"])
            lines.append(f"    workflow rules tried: {tried}")
        for a in step.all(Topic.ASSIGNMENTS):
            reason = a.get("reason", "handoff")
            how = "" if reason == "handoff" else f", {reason.replace('_', ' ')}"
            waited = (f", after {a['waited_s']:g} s in the queue"
                      if a.get("waited_s") is not None else "")
            lines.append(f"    assigned to: {_assignee(a['assignee'])} in {a['inbox_id']} "
                         f"({a['mode']}{how}{waited})")
            lines.append(f"      why: {a['rule']}")
            if a["candidates"]:
                lines.append(f"      candidates: {'; '.join(a['candidates'])}")
        for sent in step.all(Topic.CHAT_OUTBOUND):
            lines.append(f"    sent to the visitor ({sent['kind']}): \"{sent['text']}\"")
        for status in step.all(Topic.CONVERSATION_STATUS):
            lines.append(f"    status: {status['status']}, view {status['view']}")
        if step.outputs and trail.live_checked:
            same = sum(1 for o in step.outputs if o.live in ("same", "duplicated"))
            verdict = f"{same} of {len(step.outputs)} output records identical on the live topics"
            for o in step.outputs:
                if o.live in ("differs", "missing"):
                    verdict += f"; {o.topic} {o.value.get('event_id')} {o.live.upper()}"
            lines.append(f"    live: {verdict}")
        lines.append("")
    for extra in trail.live_only:
        lines.append(f"ONLY LIVE: {extra['topic']}: {orjson.dumps(extra['value']).decode()}")
    c = trail.cross_check()
    if c["checked"]:
        lines.append(f"Cross-check with the live output topics: {c['same'] + c['duplicated']} "
                     f"records identical, {c['differs']} differ, {c['missing']} missing live, "
                     f"{c['only_live']} only live"
                     + (" — MISMATCH" if c["mismatches"] else "."))
    return "\n".join(lines)
