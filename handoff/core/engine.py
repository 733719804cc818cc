"""The decision core: one account event and the state it finds in, to records and new state.

No I/O, no clock, no randomness: the same state and event always give the same `Decision`.
The path of a chat message: `agents/sequencer.py` -> `agents/decisions.py` -> `Engine.decide`
-> `handoff/core/triggers.py` and `handoff/core/routing.py`.
"""

from __future__ import annotations

from datetime import datetime
from hashlib import blake2b

from pydantic import BaseModel

from handoff.core.routing import Facts, Routed, route_direct, route_workflow
from handoff.core.settings import check_config, check_permission, help_desks
from handoff.core.state import (
    RECENT_EVENT_IDS,
    AccountSettings,
    ConversationState,
    Phase,
)
from handoff.core.store import Decision, Emit, Overlay, StateReader, Table
from handoff.core.triggers import Fired, Matchers, detect
from schemas.common import Process, Sender, UnassignedChat, format_timestamp
from schemas.inputs import (
    ControlAction,
    ConversationAction,
    DirectoryInbox,
    DirectoryTeam,
    DirectoryUser,
)
from schemas.internal import (
    AccountEvent,
    SequencedChat,
    SequencedConfigRequest,
    SequencedControl,
    SequencedConversationUpdate,
    SequencedDirectory,
    SequencedPresence,
    SequencedWorkflow,
)
from schemas.outputs import (
    Assignment,
    ChatOutbound,
    ConfigChange,
    ConversationStatus,
    HandoffEvent,
    TicketCreated,
    Trigger,
)
from schemas.settings import DirectRouting
from schemas.topics import Topic

_OUTBOUND_KIND = {
    "available": "handoff_available",
    "unavailable": "handoff_unavailable",
    "unassigned": "handoff_unassigned",
}


def derive_id(kind: str, *parts: str) -> str:
    """A stable id for an output, from the input that caused it (same input, same id)."""
    digest = blake2b("\x1f".join(parts).encode(), digest_size=10).hexdigest()
    return f"{kind}-{digest}"


class Engine:
    """Decides what each account event leads to. Holds only pure, compiled matchers."""

    def __init__(self, matchers: Matchers) -> None:
        self.matchers = matchers

    def decide(self, reader: StateReader, event: AccountEvent) -> Decision:
        """Return the records to publish and the state to keep for one sequenced event."""
        decision = Decision()
        store = Overlay(reader)
        if isinstance(event, SequencedChat):
            self._chat(store, event, decision)
        elif isinstance(event, SequencedConversationUpdate):
            self._conversation_update(store, event, decision)
        elif isinstance(event, SequencedControl):
            account = store.account(event.account_id)
            paused = event.record.action is ControlAction.PAUSE
            if account.paused != paused:
                store.put(decision, Table.ACCOUNTS, event.account_id,
                          account.model_copy(update={"paused": paused}))
        elif isinstance(event, SequencedPresence):
            self._presence(store, event, decision)
        elif isinstance(event, SequencedDirectory):
            self._directory(store, event, decision)
        elif isinstance(event, SequencedWorkflow):
            account = store.account(event.account_id)
            workflows = dict(account.workflows)
            if event.record is None:
                workflows.pop(event.workflow_id, None)
            else:
                workflows[event.workflow_id] = event.record
            store.put(decision, Table.ACCOUNTS, event.account_id,
                      account.model_copy(update={"workflows": workflows}))
        elif isinstance(event, SequencedConfigRequest):
            self._config_request(store, event, decision)
        return decision

    # -- chat -------------------------------------------------------------------------------

    def _chat(self, store: Overlay, event: SequencedChat, decision: Decision) -> None:
        message = event.record
        conv = store.conversation(message.conversation_id)
        if conv is not None and message.event_id in conv.recent_event_ids:
            return  # a redelivered input: it was decided once already
        if conv is None:
            conv = ConversationState(conversation_id=message.conversation_id,
                                     account_id=message.account_id, channel=message.channel)
        changes: dict[str, object] = {
            "recent_event_ids": (*conv.recent_event_ids, message.event_id)[-RECENT_EVENT_IDS:],
            "last_message_at": message.sent_at,
            "inbox_id": message.inbox_id or conv.inbox_id,
            "language": message.language or conv.language,
            "contact_id": message.contact_id or conv.contact_id,
        }
        if message.sender is Sender.VISITOR:
            changes["last_visitor_text"] = message.text[:200]
        conv = conv.model_copy(update=changes)

        if conv.phase is Phase.CLOSED and message.sender is Sender.VISITOR:
            # A visitor writing into a closed conversation starts over with the customer agent.
            conv = self._release(store, conv, decision)
            conv = conv.model_copy(update={"phase": Phase.BOT, "view": "bot", "assignee": None,
                                           "ticket_id": None, "process": None})
            # The same message may hand off at once (a second status): its own id says which.
            self._status(decision, conv, "open", "bot", message.event_id, message.sent_at,
                         step="reopened")

        if conv.phase is Phase.BOT:
            account = store.account(message.account_id)
            settings = store.settings(message.account_id)
            fired = detect(message, account.paused, settings, self.matchers)
            if fired is not None:
                conv = self._handoff(store, conv, settings, fired, event, decision)
        store.put(decision, Table.CONVERSATIONS, conv.conversation_id, conv)

    def _handoff(self, store: Overlay, conv: ConversationState, settings: AccountSettings,
                 fired: Fired, event: SequencedChat, decision: Decision) -> ConversationState:
        message = event.record
        at = message.sent_at
        parts = (conv.account_id, conv.conversation_id, message.event_id)
        config = settings.config
        trigger = Trigger(kind=fired.kind, phrase=fired.phrase, message_event_id=message.event_id,
                          language=fired.language)
        handed_off = config.process is not Process.NONE
        handoff_id = derive_id("handoff", *parts)
        decision.emits.append(Emit(Topic.HANDOFF_EVENTS, conv.conversation_id, HandoffEvent(
            event_id=handoff_id, conversation_id=conv.conversation_id,
            account_id=conv.account_id, channel=conv.channel, trigger=trigger,
            process=config.process, handed_off=handed_off, config_version=settings.version,
            occurred_at=at)))
        conv = conv.model_copy(update={"trigger": trigger, "config_version": settings.version,
                                       "handoff_event_id": handoff_id})
        if not handed_off:
            return conv  # process "none": recorded, and the customer agent keeps answering

        account = store.account(conv.account_id)
        routing = config.routing
        facts = Facts(conv.account_id, conv.channel, conv.inbox_id, conv.language, trigger, at)
        ticket_id: str | None = None
        if isinstance(routing, DirectRouting):
            inbox_id = routing.destination or next(iter(account.inboxes), None)
            routed = route_direct(store, account, routing, config.process, facts)
        else:
            # Accepted settings always name the help desk (settings.check_config fills in the
            # account's only one); a what-if proposal of `handoff simulate` may not.
            inbox_id = routing.destination or next(iter(help_desks(account)), "")
            ticket_id = derive_id("ticket", *parts)
            decision.emits.append(Emit(Topic.TICKETS_CREATED, conv.conversation_id, TicketCreated(
                event_id=derive_id("ticket-created", *parts), ticket_id=ticket_id,
                conversation_id=conv.conversation_id, account_id=conv.account_id,
                help_desk_id=inbox_id, workflow_id=routing.workflow_id,
                channel=conv.channel, subject=_subject(conv, trigger), trigger=trigger,
                config_version=settings.version, occurred_at=at)))
            routed = route_workflow(store, account, account.workflows.get(routing.workflow_id),
                                    routing.workflow_id, facts)

        self._assign(store, conv, routed, decision)
        decision.emits.append(Emit(Topic.ASSIGNMENTS, conv.conversation_id, Assignment(
            event_id=derive_id("assignment", *parts), conversation_id=conv.conversation_id,
            ticket_id=ticket_id, account_id=conv.account_id, inbox_id=inbox_id,
            mode="live" if config.process is Process.LIVE else "async",
            assignee=routed.assignee, rule=routed.rule, config_version=settings.version,
            occurred_at=at, candidates=routed.candidates)))
        text = getattr(config.messages, routed.message)
        decision.emits.append(Emit(Topic.CHAT_OUTBOUND, conv.conversation_id, ChatOutbound(
            event_id=derive_id("outbound", *parts), conversation_id=conv.conversation_id,
            channel=conv.channel, kind=_OUTBOUND_KIND[routed.message], text=text,
            occurred_at=at)))

        closes = (routed.assignee is None and ticket_id is not None
                  and config.process is Process.LIVE
                  and config.unassigned_chat is UnassignedChat.CLOSE)
        view = "assigned" if routed.assignee is not None else "unassigned"
        self._status(decision, conv, "closed" if closes else "open", view, message.event_id, at)
        return conv.model_copy(update={
            "phase": Phase.CLOSED if closes else Phase.HANDED_OFF, "view": view,
            "process": config.process, "handoff_inbox_id": inbox_id, "ticket_id": ticket_id,
            "assignee": routed.assignee, "handoffs": conv.handoffs + 1})

    def _assign(self, store: Overlay, conv: ConversationState, routed: Routed,
                decision: Decision) -> None:
        for key, position in routed.rotations.items():
            store.put(decision, Table.ROTATIONS, key, position)
        if routed.assignee is not None and routed.assignee.type == "user":
            agent = store.agent(routed.assignee.id)
            if conv.conversation_id not in agent.open_conversations:
                store.put(decision, Table.AGENTS, agent.user_id, agent.model_copy(update={
                    "open_conversations": (*agent.open_conversations, conv.conversation_id)}))

    def _release(self, store: Overlay, conv: ConversationState,
                 decision: Decision) -> ConversationState:
        """Free the assignee's capacity held by this conversation."""
        if conv.assignee is not None and conv.assignee.type == "user":
            agent = store.agent(conv.assignee.id)
            if conv.conversation_id in agent.open_conversations:
                kept = tuple(c for c in agent.open_conversations if c != conv.conversation_id)
                store.put(decision, Table.AGENTS, agent.user_id,
                          agent.model_copy(update={"open_conversations": kept}))
        return conv

    @staticmethod
    def _status(decision: Decision, conv: ConversationState, status: str, view: str,
                cause_event_id: str, at: datetime, step: str = "") -> None:
        parts = (conv.account_id, conv.conversation_id, cause_event_id, *((step,) if step else ()))
        decision.emits.append(Emit(Topic.CONVERSATION_STATUS, conv.conversation_id,
                                   ConversationStatus(
            event_id=derive_id("status", *parts),
            conversation_id=conv.conversation_id, status=status, view=view,
            occurred_at=at, account_id=conv.account_id)))

    def _conversation_update(self, store: Overlay, event: SequencedConversationUpdate,
                             decision: Decision) -> None:
        update = event.record
        conv = store.conversation(update.conversation_id)
        if conv is None or update.event_id in conv.recent_event_ids:
            return
        seen = (*conv.recent_event_ids, update.event_id)[-RECENT_EVENT_IDS:]
        conv = self._release(store, conv, decision)
        if update.action is ConversationAction.CLOSE:
            if conv.phase is Phase.CLOSED:
                store.put(decision, Table.CONVERSATIONS, conv.conversation_id,
                          conv.model_copy(update={"recent_event_ids": seen}))
                return
            conv = conv.model_copy(update={"phase": Phase.CLOSED, "recent_event_ids": seen})
            self._status(decision, conv, "closed", conv.view, update.event_id, update.occurred_at)
        else:
            conv = conv.model_copy(update={"phase": Phase.BOT, "view": "bot", "assignee": None,
                                           "ticket_id": None, "process": None,
                                           "recent_event_ids": seen})
            self._status(decision, conv, "open", "bot", update.event_id, update.occurred_at)
        store.put(decision, Table.CONVERSATIONS, conv.conversation_id, conv)

    # -- reference data ---------------------------------------------------------------------

    def _presence(self, store: Overlay, event: SequencedPresence, decision: Decision) -> None:
        presence = event.record
        agent = store.agent(presence.user_id)
        if agent.presence_at is not None and presence.occurred_at < agent.presence_at:
            return  # an older status than the one we hold
        store.put(decision, Table.AGENTS, presence.user_id, agent.model_copy(update={
            "status": presence.status, "max_open_conversations": presence.max_open_conversations,
            "presence_at": presence.occurred_at}))

    def _directory(self, store: Overlay, event: SequencedDirectory, decision: Decision) -> None:
        account = store.account(event.account_id)
        kind, _, ident = event.key.partition(":")
        entry = event.record
        users, teams, inboxes = dict(account.users), dict(account.teams), dict(account.inboxes)
        if entry is None:
            users.pop(ident, None) if kind == "user" else None
            teams.pop(ident, None) if kind == "team" else None
            inboxes.pop(ident, None) if kind == "inbox" else None
        elif isinstance(entry, DirectoryUser):
            users[entry.id] = entry
        elif isinstance(entry, DirectoryTeam):
            teams[entry.id] = entry
        elif isinstance(entry, DirectoryInbox):
            inboxes[entry.id] = entry
        store.put(decision, Table.ACCOUNTS, event.account_id, account.model_copy(
            update={"users": users, "teams": teams, "inboxes": inboxes}))

    def _config_request(self, store: Overlay, event: SequencedConfigRequest,
                        decision: Decision) -> None:
        request = event.record
        account = store.account(request.account_id)
        current = store.settings(request.account_id)
        if request.event_id == current.event_id or request.event_id in current.recent_request_ids:
            return  # a redelivered request that was already decided
        seen = (*current.recent_request_ids, request.event_id)[-RECENT_EVENT_IDS:]
        # Refused by the HTTP API (403, 412, 422): recorded as it said, whatever the state now.
        refusal = request.refused or check_permission(request, account)
        if refusal is None and request.if_version is not None \
                and request.if_version != current.version:
            refusal = stale_reason(current, request.if_version)
        config = None
        if refusal is None:
            config, errors = check_config(request.config, account)
            if errors:
                refusal = "; ".join(str(e) for e in errors)
        version: int | None = None
        if config is not None and refusal is None:
            version = current.version + 1
            accepted = AccountSettings(account_id=request.account_id, version=version,
                                       config=config, actor=request.actor,
                                       event_id=request.event_id, occurred_at=request.occurred_at,
                                       recent_request_ids=seen)
            store.put(decision, Table.SETTINGS, request.account_id, accepted)
            store.put(decision, Table.SETTINGS_HISTORY, f"{request.account_id}#{version}", accepted)
        else:
            store.put(decision, Table.SETTINGS, request.account_id,
                      current.model_copy(update={"recent_request_ids": seen}))
        decision.emits.append(Emit(Topic.CONFIG_CHANGES, request.account_id, ConfigChange(
            event_id=derive_id("config-change", request.account_id, request.event_id),
            account_id=request.account_id, actor=request.actor, accepted=refusal is None,
            reason=refusal, version=version, occurred_at=request.occurred_at)))


STALE_PREFIX = "the settings changed since version"


def stale_reason(current: AccountSettings, based_on: int) -> str:
    """Why a change based on an older version is refused: who saved the current one, when."""
    saved = (f"version {current.version} was saved by {current.actor} at "
             f"{format_timestamp(current.occurred_at)}" if current.occurred_at is not None
             else f"version {current.version} is current")
    return (f"{STALE_PREFIX} {based_on} that this change was based on: "
            f"{saved}; load them again and redo the change")


def _subject(conv: ConversationState, trigger: Trigger) -> str:
    text = " ".join(conv.last_visitor_text.split())
    if len(text) > 80:
        text = text[:79] + "…"
    what = trigger.kind.value.replace("_", " ")
    return f"[{conv.channel.value}] {text}" if text else f"[{conv.channel.value}] {what}"


def emits_as_dicts(emits: list[Emit]) -> list[tuple[str, str, dict[str, object]]]:
    """Emits as (topic, key, JSON-ready dict), for files and comparisons."""
    return [(str(e.topic), e.key, _dump(e.value)) for e in emits]


def _dump(value: BaseModel) -> dict[str, object]:
    return value.model_dump(mode="json")
