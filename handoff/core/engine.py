"""The decision core: one account event and the state it finds in, to records and new state.

No I/O, no clock, no randomness: the same state and event always give the same `Decision`.
The path of a chat message: `steps/intake.py` -> `steps/decide.py` -> `Engine.decide`
-> `handoff/core/triggers.py` and `handoff/core/routing.py`. Time passing (pickup timeouts,
the queue, business hours opening) enters as `SequencedTick` records of the account's log.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from hashlib import blake2b
from typing import Literal

from pydantic import BaseModel

from handoff.core.queues import RECENT_PICKUPS, queue_message, wait_minutes
from handoff.core.routing import (
    Choice,
    Facts,
    Routed,
    label,
    language_code,
    route_direct,
    route_workflow,
)
from handoff.core.settings import check_config, check_permission, help_desks
from handoff.core.state import (
    RECENT_EVENT_IDS,
    AccountSettings,
    ConversationState,
    Phase,
    WaitingState,
    build,
)
from handoff.core.store import Decision, Emit, Overlay, StateReader, Table, queue_key
from handoff.core.triggers import Fired, Matchers, detect
from schemas.common import Process, Sender, UnassignedChat, format_timestamp
from schemas.inputs import (
    ControlAction,
    ConversationAction,
    DirectoryInbox,
    DirectoryTeam,
    DirectoryUser,
    PresenceStatus,
)
from schemas.internal import (
    AccountEvent,
    SequencedChat,
    SequencedConfigRequest,
    SequencedControl,
    SequencedConversationUpdate,
    SequencedDirectory,
    SequencedPresence,
    SequencedTick,
    SequencedWorkflow,
)
from schemas.outputs import (
    Assignment,
    AssignmentReason,
    ChatOutbound,
    ConfigChange,
    ConversationStatus,
    HandoffEvent,
    TicketCreated,
    Trigger,
)
from schemas.settings import DirectRouting, HandoffConfig
from schemas.topics import Topic

_OUTBOUND_KIND = {
    "available": "handoff_available",
    "unavailable": "handoff_unavailable",
    "unassigned": "handoff_unassigned",
}


_SEPARATOR = "\x1f"


def derive_id(kind: str, *parts: str) -> str:
    """A stable id for an output, from the input that caused it (same input, same id)."""
    return f"{kind}-{_digest(_SEPARATOR.join(parts))}"


@lru_cache(maxsize=256)
def _digest(joined: str) -> str:
    # A handoff's records (event, ticket, assignment, message, status) hash the same parts and
    # differ only in their kind: the digest is computed once for them all.
    return blake2b(joined.encode(), digest_size=10).hexdigest()


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
                          account.evolve({"paused": paused}))
        elif isinstance(event, SequencedPresence):
            self._presence(store, event, decision)
        elif isinstance(event, SequencedTick):
            self._tick(store, event, decision)
        elif isinstance(event, SequencedDirectory):
            self._directory(store, event, decision)
            # A new user or team, or changed hours, may take someone waiting.
            self._drain(store, event.account_id, _origin_id(event), event.occurred_at, decision)
        elif isinstance(event, SequencedWorkflow):
            account = store.account(event.account_id)
            workflows = dict(account.workflows)
            if event.record is None:
                workflows.pop(event.workflow_id, None)
            else:
                workflows[event.workflow_id] = event.record
            store.put(decision, Table.ACCOUNTS, event.account_id,
                      account.evolve({"workflows": workflows}))
            self._drain(store, event.account_id, _origin_id(event), event.occurred_at, decision)
        elif isinstance(event, SequencedConfigRequest):
            self._config_request(store, event, decision)
            self._drain(store, event.account_id, event.record.event_id, event.record.occurred_at,
                        decision)
        return decision

    # -- chat -------------------------------------------------------------------------------

    def _chat(self, store: Overlay, event: SequencedChat, decision: Decision) -> None:
        message = event.record
        conv = store.conversation(message.conversation_id)
        if conv is not None and message.event_id in conv.recent_event_ids:
            return  # a redelivered input: it was decided once already
        if conv is None:
            # A new conversation is built with this message's facts at once: one model, not two.
            changes: dict[str, object] = {
                "conversation_id": message.conversation_id, "account_id": message.account_id,
                "channel": message.channel, "recent_event_ids": (message.event_id,),
                "last_message_at": message.sent_at, "inbox_id": message.inbox_id or None,
                "language": message.language or None, "contact_id": message.contact_id or None}
        else:
            changes = {
                "recent_event_ids": (*conv.recent_event_ids,
                                     message.event_id)[-RECENT_EVENT_IDS:],
                "last_message_at": message.sent_at,
                "inbox_id": message.inbox_id or conv.inbox_id,
                "language": message.language or conv.language,
                "contact_id": message.contact_id or conv.contact_id,
            }
        if message.sender is Sender.VISITOR:
            changes["last_visitor_text"] = message.text[:200]
        conv = build(ConversationState, changes) if conv is None else conv.evolve(changes)

        if conv.phase is Phase.CLOSED and message.sender is Sender.VISITOR:
            # A visitor writing into a closed conversation starts over with the customer agent.
            conv = self._release(store, conv, decision)
            conv = conv.evolve({"phase": Phase.BOT, "view": "bot", **_BACK_TO_BOT})
            # The same message may hand off at once (a second status): its own id says which.
            self._status(decision, conv, "open", "bot", message.event_id, message.sent_at,
                         step="reopened")

        if conv.phase is not Phase.BOT:
            store.put(decision, Table.CONVERSATIONS, conv.conversation_id, conv)
            return
        account = store.account(message.account_id)
        settings = store.settings(message.account_id)
        fired = detect(message, account.paused, settings, self.matchers)
        if fired is not None:
            conv = self._handoff(store, conv, settings, fired, event, decision)
        store.put(decision, Table.CONVERSATIONS, conv.conversation_id, conv)
        if conv.phase is Phase.HANDED_OFF and conv.process is Process.LIVE:
            self._wait(store, conv, settings, message.event_id, message.sent_at, decision)

    def _handoff(self, store: Overlay, conv: ConversationState, settings: AccountSettings,
                 fired: Fired, event: SequencedChat, decision: Decision) -> ConversationState:
        message = event.record
        at = message.sent_at
        parts = (conv.account_id, conv.conversation_id, message.event_id)
        config = settings.config
        trigger = build(Trigger, {"kind": fired.kind, "phrase": fired.phrase,
                                  "message_event_id": message.event_id,
                                  "language": fired.language})
        handed_off = config.process is not Process.NONE
        handoff_id = derive_id("handoff", *parts)
        decision.emits.append(Emit(Topic.HANDOFF_EVENTS, conv.conversation_id, build(HandoffEvent, {
            "event_id": handoff_id, "conversation_id": conv.conversation_id,
            "account_id": conv.account_id, "channel": conv.channel, "trigger": trigger,
            "process": config.process, "handed_off": handed_off,
            "config_version": settings.version, "occurred_at": at})))
        recorded = {"trigger": trigger, "config_version": settings.version,
                    "handoff_event_id": handoff_id}
        if not handed_off:
            # Process "none": recorded, and the customer agent keeps answering.
            return conv.evolve(recorded)

        account = store.account(conv.account_id)
        routing = config.routing
        # The state is evolved once, at the end: routing reads the handoff's facts from here
        # (handed off now, nobody declined yet).
        choice = _choice_of(config, conv.language, trigger, at, (), at)
        facts = Facts(conv.account_id, conv.channel, conv.inbox_id, conv.language, trigger, at)
        ticket_id: str | None = None
        if isinstance(routing, DirectRouting):
            inbox_id = routing.destination or next(iter(account.inboxes), None)
            routed = route_direct(store, account, routing, config.process, facts, choice)
        else:
            # Accepted settings always name the help desk (settings.check_config fills in the
            # account's only one); a what-if proposal of `handoff simulate` may not.
            inbox_id = routing.destination or next(iter(help_desks(account)), "")
            ticket_id = derive_id("ticket", *parts)
            decision.emits.append(Emit(Topic.TICKETS_CREATED, conv.conversation_id, build(
                TicketCreated, {
                    "event_id": derive_id("ticket-created", *parts), "ticket_id": ticket_id,
                    "conversation_id": conv.conversation_id, "account_id": conv.account_id,
                    "help_desk_id": inbox_id, "workflow_id": routing.workflow_id,
                    "channel": conv.channel, "subject": _subject(conv, trigger),
                    "trigger": trigger, "config_version": settings.version,
                    "occurred_at": at})))
            routed = route_workflow(store, account, account.workflows.get(routing.workflow_id),
                                    routing.workflow_id, facts, choice)

        self._assign(store, conv, routed, decision)
        decision.emits.append(Emit(Topic.ASSIGNMENTS, conv.conversation_id, build(Assignment, {
            "event_id": derive_id("assignment", *parts), "conversation_id": conv.conversation_id,
            "ticket_id": ticket_id, "account_id": conv.account_id, "inbox_id": inbox_id,
            "mode": "live" if config.process is Process.LIVE else "async",
            "assignee": routed.assignee, "rule": routed.rule, "config_version": settings.version,
            "occurred_at": at, "candidates": routed.candidates, "reason": "handoff"})))
        text = getattr(config.messages, routed.message)
        decision.emits.append(Emit(Topic.CHAT_OUTBOUND, conv.conversation_id, build(ChatOutbound, {
            "event_id": derive_id("outbound", *parts), "conversation_id": conv.conversation_id,
            "channel": conv.channel, "kind": _OUTBOUND_KIND[routed.message], "text": text,
            "occurred_at": at})))

        closes = (routed.assignee is None and ticket_id is not None
                  and config.process is Process.LIVE
                  and config.unassigned_chat is UnassignedChat.CLOSE)
        view = "assigned" if routed.assignee is not None else "unassigned"
        self._status(decision, conv, "closed" if closes else "open", view, message.event_id, at)
        return conv.evolve({
            **recorded, "handed_off_at": at, "declined": (),
            "phase": Phase.CLOSED if closes else Phase.HANDED_OFF, "view": view,
            "process": config.process, "handoff_inbox_id": inbox_id, "ticket_id": ticket_id,
            "assignee": routed.assignee, "handoffs": conv.handoffs + 1,
            "assigned_at": at if routed.assignee is not None else None, "accepted": False,
            "assignments": 1})

    def _assign(self, store: Overlay, conv: ConversationState, routed: Routed,
                decision: Decision) -> None:
        for key, position in routed.rotations.items():
            store.put(decision, Table.ROTATIONS, key, position)
        if routed.assignee is not None and routed.assignee.type == "user":
            agent = store.agent(routed.assignee.id)
            if conv.conversation_id not in agent.open_conversations:
                store.put(decision, Table.AGENTS, agent.user_id, agent.evolve({
                    "open_conversations": (*agent.open_conversations, conv.conversation_id)}))

    def _release(self, store: Overlay, conv: ConversationState,
                 decision: Decision) -> ConversationState:
        """Free the assignee's capacity held by this conversation."""
        if conv.assignee is not None and conv.assignee.type == "user":
            agent = store.agent(conv.assignee.id)
            if conv.conversation_id in agent.open_conversations:
                kept = tuple(c for c in agent.open_conversations if c != conv.conversation_id)
                store.put(decision, Table.AGENTS, agent.user_id,
                          agent.evolve({"open_conversations": kept}))
        return conv

    @staticmethod
    def _status(decision: Decision, conv: ConversationState, status: str, view: str,
                cause_event_id: str, at: datetime, step: str = "") -> None:
        parts = (conv.account_id, conv.conversation_id, cause_event_id, *((step,) if step else ()))
        decision.emits.append(Emit(Topic.CONVERSATION_STATUS, conv.conversation_id, build(
            ConversationStatus, {
                "event_id": derive_id("status", *parts), "conversation_id": conv.conversation_id,
                "status": status, "view": view, "occurred_at": at,
                "account_id": conv.account_id})))

    def _conversation_update(self, store: Overlay, event: SequencedConversationUpdate,
                             decision: Decision) -> None:
        update = event.record
        conv = store.conversation(update.conversation_id)
        if conv is None or update.event_id in conv.recent_event_ids:
            return
        seen: dict[str, object] = {
            "recent_event_ids": (*conv.recent_event_ids, update.event_id)[-RECENT_EVENT_IDS:]}
        at, cause = update.occurred_at, update.event_id
        action = update.action
        if action in (ConversationAction.ACCEPT, ConversationAction.RELEASE):
            conv = conv.evolve(seen)
            # Only the conversation's current user can accept or release it: an accept that
            # arrives after a re-route must not stop the new user's timer.
            mine = (conv.phase is Phase.HANDED_OFF and conv.assignee is not None
                    and (update.actor is None or update.actor == conv.assignee.id))
            if mine and action is ConversationAction.RELEASE:
                self._reroute(store, conv, store.settings(conv.account_id), "released", cause,
                              at, decision)
                self._drain(store, conv.account_id, cause, at, decision)
                return
            if mine and not conv.accepted:
                conv = self._stop_timer(store, conv, decision).evolve({"accepted": True})
            store.put(decision, Table.CONVERSATIONS, conv.conversation_id, conv)
            return
        conv = self._release(store, conv, decision)
        conv = self._stop_timer(store, conv, decision)
        conv = self._leave_queue(store, conv, decision)
        # One copy of the state for the ids seen and the new phase together.
        if action is ConversationAction.CLOSE:
            if conv.phase is not Phase.CLOSED:
                seen["phase"] = Phase.CLOSED
                self._status(decision, conv, "closed", conv.view, cause, at)
        else:
            seen.update({"phase": Phase.BOT, "view": "bot", **_BACK_TO_BOT})
            self._status(decision, conv, "open", "bot", cause, at)
        conv = conv.evolve(seen)
        store.put(decision, Table.CONVERSATIONS, conv.conversation_id, conv)
        self._drain(store, conv.account_id, cause, at, decision)  # capacity was freed

    # -- queues and timers (contract v1.1) ----------------------------------------------------

    def _tick(self, store: Overlay, event: SequencedTick, decision: Decision) -> None:
        """The clock moved on: pickup timeouts fire, the queue is offered to whoever is free
        now (business hours may have opened, a language fallback may have expired), and the
        waiting hear their new place in line."""
        settings = store.settings(event.account_id)
        timeout = settings.config.pickup_timeout_s
        at = event.at
        for conversation_id in store.waiting(event.account_id).pickups:
            conv = store.conversation(conversation_id)
            if (conv is None or conv.phase is not Phase.HANDED_OFF or conv.accepted
                    or conv.assignee is None or conv.assigned_at is None or timeout is None):
                if conv is not None:
                    self._stop_timer(store, conv, decision)
                else:
                    self._drop_waiting(store, decision, event.account_id, conversation_id)
                continue
            if (at - conv.assigned_at).total_seconds() >= timeout:
                self._reroute(store, conv, settings, "pickup_timeout", event.event_id, at,
                              decision)
        self._drain(store, event.account_id, event.event_id, at, decision)

    def _wait(self, store: Overlay, conv: ConversationState, settings: AccountSettings,
              cause: str, at: datetime, decision: Decision) -> None:
        """After a live (re-)routing: start the pickup timer, or queue the unassigned."""
        config = settings.config
        if conv.assignee is not None:
            if config.pickup_timeout_s is not None and conv.assignee.type == "user":
                waiting = store.waiting(conv.account_id)
                if conv.conversation_id not in waiting.pickups:
                    self._put_waiting(store, decision, waiting.evolve({
                        "pickups": (*waiting.pickups, conv.conversation_id)}))
        elif config.assign_when_available:
            self._enqueue(store, conv, settings, cause, at, decision)

    def _reroute(self, store: Overlay, conv: ConversationState, settings: AccountSettings,
                 reason: AssignmentReason, cause: str, at: datetime, decision: Decision) -> None:
        """Take the conversation from its user (timed out, went away, released it) and route
        it again; the user's capacity is freed."""
        previous = conv.assignee
        conv = self._release(store, conv, decision)
        conv = self._stop_timer(store, conv, decision)
        declined = conv.declined
        if (previous is not None and reason in ("pickup_timeout", "released")
                and previous.id not in declined):
            declined = (*declined, previous.id)
        who = previous.id if previous is not None else "nobody"
        if previous is not None and previous.type == "user":
            who = label(store.account(conv.account_id), "user", previous.id)
        why = {
            "pickup_timeout": f"Re-routed: {who} did not accept it within "
                              f"{settings.config.pickup_timeout_s} s",
            "agent_unavailable": f"Re-routed: {who} went "
                                 f"{store.agent(previous.id).status.value if previous else 'away'}"
                                 " before accepting it",
            "released": f"Re-routed: {who} released it",
        }.get(reason, "Re-routed")
        conv = conv.evolve({"assignee": None, "assigned_at": None, "accepted": False,
                            "declined": declined})
        self._route_again(store, conv, settings, reason, cause, at, decision, why)

    def _route_again(self, store: Overlay, conv: ConversationState, settings: AccountSettings,
                     reason: AssignmentReason, cause: str, at: datetime, decision: Decision,
                     why: str) -> bool:
        """Route a handed-off conversation once more with the settings in force now; whether
        someone took it. From the queue, finding nobody changes nothing."""
        config = settings.config
        account = store.account(conv.account_id)
        assert conv.trigger is not None
        facts = Facts(conv.account_id, conv.channel, conv.inbox_id, conv.language, conv.trigger,
                      at)
        choice = _choice(config, conv, at)
        routing = config.routing
        process = conv.process or config.process
        if isinstance(routing, DirectRouting):
            routed = route_direct(store, account, routing, process, facts, choice)
        else:
            routed = route_workflow(store, account, account.workflows.get(routing.workflow_id),
                                    routing.workflow_id, facts, choice)
        if routed.assignee is None and reason == "queue":
            return False
        # Inputs carry their producers' times: never report a negative wait.
        waited = (max(0.0, (at - conv.queued_at).total_seconds())
                  if reason == "queue" and conv.queued_at else None)
        if routed.assignee is not None:
            conv = self._leave_queue(store, conv, decision, picked_at=at)
        self._assign(store, conv, routed, decision)
        number = conv.assignments
        parts = (conv.account_id, conv.conversation_id, cause, reason, str(number))
        decision.emits.append(Emit(Topic.ASSIGNMENTS, conv.conversation_id, build(Assignment, {
            "event_id": derive_id("assignment", *parts), "conversation_id": conv.conversation_id,
            "ticket_id": conv.ticket_id, "account_id": conv.account_id,
            "inbox_id": conv.handoff_inbox_id,
            "mode": "live" if process is Process.LIVE else "async",
            "assignee": routed.assignee,
            "rule": f"{why}; {routed.rule[0].lower()}{routed.rule[1:]}", "reason": reason,
            "config_version": settings.version, "occurred_at": at,
            "candidates": routed.candidates, "waited_s": waited})))
        view: Literal["assigned", "unassigned"] = (
            "assigned" if routed.assignee is not None else "unassigned")
        if view != conv.view:
            self._status(decision, conv, "open", view, cause, at, step=f"assignment-{number}")
        if reason == "queue":
            decision.emits.append(Emit(Topic.CHAT_OUTBOUND, conv.conversation_id, build(
                ChatOutbound, {
                    "event_id": derive_id("outbound", *parts),
                    "conversation_id": conv.conversation_id, "channel": conv.channel,
                    "kind": _OUTBOUND_KIND["available"], "text": config.messages.available,
                    "occurred_at": at})))
        conv = conv.evolve({
            "assignee": routed.assignee, "assigned_at": at if routed.assignee else None,
            "accepted": False, "view": view, "assignments": number + 1,
            "config_version": settings.version})
        store.put(decision, Table.CONVERSATIONS, conv.conversation_id, conv)
        if process is Process.LIVE:
            self._wait(store, conv, settings, cause, at, decision)
        return routed.assignee is not None

    def _drain(self, store: Overlay, account_id: str, cause: str, at: datetime,
               decision: Decision) -> None:
        """Offer every queue of the account, oldest visitor first, to whoever is free now."""
        waiting = store.waiting_if_any(account_id)
        if waiting is None or not waiting.queues:
            return
        settings = store.settings(account_id)
        for inbox_id in waiting.queues:
            for conversation_id in store.queue(account_id, inbox_id).waiting:
                conv = store.conversation(conversation_id)
                if conv is None or conv.phase is not Phase.HANDED_OFF or conv.queued_at is None:
                    self._drop_queued(store, decision, account_id, inbox_id, conversation_id)
                    continue
                position = store.queue(account_id, inbox_id).waiting.index(conversation_id) + 1
                taken = self._route_again(store, conv, settings, "queue", cause, at, decision,
                                          f"From the queue: {_duration(at, conv.queued_at)} "
                                          f"waiting, number {position} in line")
                if (not taken and not conv.declined
                        and isinstance(settings.config.routing, DirectRouting)
                        and _choice(settings.config, conv, at).language is None):
                    # Nobody could take this one; direct routing finds nobody for the rest
                    # either (only declines and languages set conversations apart there).
                    break
            self._announce(store, account_id, inbox_id, settings, cause, at, decision)

    def _enqueue(self, store: Overlay, conv: ConversationState, settings: AccountSettings,
                 cause: str, at: datetime, decision: Decision) -> None:
        """Put an unassigned live conversation in its destination's queue, in handoff order."""
        inbox_id = conv.handoff_inbox_id or ""
        queue = store.queue(conv.account_id, inbox_id)
        if conv.conversation_id in queue.waiting:
            return
        since = conv.handed_off_at or at
        ahead = 0
        for other_id in queue.waiting:
            other = store.conversation(other_id)
            if other is None or (other.handed_off_at or at) <= since:
                ahead += 1
            else:
                break
        waiting_ids = (*queue.waiting[:ahead], conv.conversation_id, *queue.waiting[ahead:])
        store.put(decision, Table.QUEUES, queue_key(conv.account_id, inbox_id),
                  queue.evolve({"waiting": waiting_ids}))
        waiting = store.waiting(conv.account_id)
        if inbox_id not in waiting.queues:
            self._put_waiting(store, decision, waiting.evolve({
                "queues": (*waiting.queues, inbox_id)}))
        store.put(decision, Table.CONVERSATIONS, conv.conversation_id,
                  conv.evolve({"queued_at": conv.queued_at or at}))
        self._announce(store, conv.account_id, inbox_id, settings, cause, at, decision)

    def _announce(self, store: Overlay, account_id: str, inbox_id: str,
                  settings: AccountSettings, cause: str, at: datetime,
                  decision: Decision) -> None:
        """Tell each waiting visitor whose place in line changed, at most every
        `queue_update_s` (the first time at once)."""
        template = settings.config.messages.queue_position
        if template is None:
            return
        queue = store.queue(account_id, inbox_id)
        every = settings.config.queue_update_s
        for position, conversation_id in enumerate(queue.waiting, start=1):
            conv = store.conversation(conversation_id)
            if conv is None or conv.position_told == position:
                continue
            told = conv.position_told_at
            if told is not None and (at - told).total_seconds() < every:
                continue
            text = queue_message(template, position, wait_minutes(queue.pickups, at, position))
            decision.emits.append(Emit(Topic.CHAT_OUTBOUND, conversation_id, build(ChatOutbound, {
                "event_id": derive_id("outbound", account_id, conversation_id, cause,
                                      "queue-position", str(position)),
                "conversation_id": conversation_id, "channel": conv.channel,
                "kind": "handoff_queue_position", "text": text, "occurred_at": at})))
            store.put(decision, Table.CONVERSATIONS, conversation_id,
                      conv.evolve({"position_told": position, "position_told_at": at}))

    def _leave_queue(self, store: Overlay, conv: ConversationState, decision: Decision,
                     picked_at: datetime | None = None) -> ConversationState:
        """Take the conversation out of its queue (assigned at `picked_at`, or gone)."""
        if conv.queued_at is None:
            return conv
        inbox_id = conv.handoff_inbox_id or ""
        queue = store.queue(conv.account_id, inbox_id)
        pickups = queue.pickups
        if picked_at is not None:
            pickups = (*pickups, picked_at)[-RECENT_PICKUPS:]
        store.put(decision, Table.QUEUES, queue_key(conv.account_id, inbox_id), queue.evolve(
            {"waiting": tuple(c for c in queue.waiting if c != conv.conversation_id),
             "pickups": pickups}))
        self._drop_queued(store, decision, conv.account_id, inbox_id, None)
        return conv.evolve({"queued_at": None, "position_told": None,
                            "position_told_at": None})

    def _drop_queued(self, store: Overlay, decision: Decision, account_id: str, inbox_id: str,
                     conversation_id: str | None) -> None:
        """Remove a conversation from a queue (if named) and forget the queue once empty."""
        queue = store.queue(account_id, inbox_id)
        if conversation_id is not None and conversation_id in queue.waiting:
            queue = queue.evolve({
                "waiting": tuple(c for c in queue.waiting if c != conversation_id)})
            store.put(decision, Table.QUEUES, queue_key(account_id, inbox_id), queue)
        waiting = store.waiting(account_id)
        if not queue.waiting and inbox_id in waiting.queues:
            self._put_waiting(store, decision, waiting.evolve({
                "queues": tuple(q for q in waiting.queues if q != inbox_id)}))

    def _stop_timer(self, store: Overlay, conv: ConversationState,
                    decision: Decision) -> ConversationState:
        """The conversation's pickup timer no longer runs (accepted, re-routed or gone)."""
        self._drop_waiting(store, decision, conv.account_id, conv.conversation_id)
        return conv

    def _drop_waiting(self, store: Overlay, decision: Decision, account_id: str,
                      conversation_id: str) -> None:
        waiting = store.waiting_if_any(account_id)
        if waiting is not None and conversation_id in waiting.pickups:
            self._put_waiting(store, decision, waiting.evolve({
                "pickups": tuple(c for c in waiting.pickups if c != conversation_id)}))

    @staticmethod
    def _put_waiting(store: Overlay, decision: Decision, waiting: WaitingState) -> None:
        # An account with nothing waiting has no key: the loop ticks only accounts it holds.
        store.put(decision, Table.WAITING, waiting.account_id,
                  None if waiting.empty else waiting)

    # -- reference data ---------------------------------------------------------------------

    def _presence(self, store: Overlay, event: SequencedPresence, decision: Decision) -> None:
        presence = event.record
        agent = store.agent(presence.user_id)
        if agent.presence_at is not None and presence.occurred_at < agent.presence_at:
            return  # an older status than the one we hold
        store.put(decision, Table.AGENTS, presence.user_id, agent.evolve({
            "status": presence.status, "max_open_conversations": presence.max_open_conversations,
            "presence_at": presence.occurred_at}))
        at, cause = presence.occurred_at, presence.event_id
        if presence.status in (PresenceStatus.AWAY, PresenceStatus.OFFLINE):
            settings = store.settings(event.account_id)
            for conversation_id in agent.open_conversations:
                conv = store.conversation(conversation_id)
                if (conv is not None and conv.phase is Phase.HANDED_OFF and not conv.accepted
                        and conv.process is Process.LIVE and conv.assignee is not None
                        and conv.assignee.id == presence.user_id):
                    self._reroute(store, conv, settings, "agent_unavailable", cause, at,
                                  decision)
        self._drain(store, event.account_id, cause, at, decision)

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
        store.put(decision, Table.ACCOUNTS, event.account_id,
                  account.evolve({"users": users, "teams": teams, "inboxes": inboxes}))

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
                      current.evolve({"recent_request_ids": seen}))
        decision.emits.append(Emit(Topic.CONFIG_CHANGES, request.account_id, build(ConfigChange, {
            "event_id": derive_id("config-change", request.account_id, request.event_id),
            "account_id": request.account_id, "actor": request.actor,
            "accepted": refusal is None, "reason": refusal, "version": version,
            "occurred_at": request.occurred_at})))


# What a conversation forgets when it goes back to the customer agent.
_BACK_TO_BOT: dict[str, object] = {
    "assignee": None, "ticket_id": None, "process": None, "assigned_at": None, "accepted": False,
    "queued_at": None, "position_told": None, "position_told_at": None, "declined": (),
}


def _choice(config: HandoffConfig, conv: ConversationState, at: datetime) -> Choice:
    """Who routing may pick for this conversation now, beyond presence and capacity."""
    return _choice_of(config, conv.language, conv.trigger, conv.handed_off_at or at,
                      conv.declined, at)


def _choice_of(config: HandoffConfig, language: str | None, trigger: Trigger | None,
               since: datetime, declined: tuple[str, ...], at: datetime) -> Choice:
    preference = config.language_routing
    if preference is None:
        return Choice(declined=declined) if declined else _ANYONE
    trigger_language = trigger.language if trigger is not None else None
    code = language_code(language or trigger_language) if preference.prefer else None
    speakers_only = (code is not None and config.assign_when_available
                     and (at - since).total_seconds() < preference.fallback_after_s)
    return Choice(declined=declined, language=code, speakers_only=speakers_only)


_ANYONE = Choice()


def _origin_id(event: SequencedDirectory | SequencedWorkflow) -> str:
    """A cause id for records without an event id of their own: where they were read."""
    o = event.origin
    return f"{o.topic}/{o.partition}@{o.offset}"


def _duration(at: datetime, since: datetime) -> str:
    seconds = max(0, int((at - since).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


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
