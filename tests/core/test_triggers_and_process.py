"""The conversation's life in the core: triggers, processes, messages, status, duplicates."""

from __future__ import annotations

from typing import Any

from handoff.core.state import ConversationState, Phase
from handoff.core.store import Table
from tests import builders as b
from tests.core.harness import Run

ADMIN = b.user("u-admin", permissions=("customer_agent.edit",))


def configured(cfg: dict[str, Any], *setup: Any) -> Run:
    run = Run()
    run.feed(b.inbox("support"), b.inbox("helpdesk", "help_desk"), ADMIN, *setup)
    change = run.feed(b.config("cfg-1", cfg))
    assert change[-1][2]["accepted"], change
    return run


def conversation(run: Run, cid: str = "c-1") -> ConversationState:
    state = run.state(Table.CONVERSATIONS, cid)
    assert isinstance(state, ConversationState)
    return state


def test_plain_message_emits_nothing_and_keeps_the_bot() -> None:
    run = Run()
    assert run.feed(b.chat("m-1", "What are your prices?")) == []
    assert conversation(run).phase is Phase.BOT


def test_no_answer_hands_off_with_the_defaults() -> None:
    run = Run()
    run.feed(b.inbox("support"), b.inbox("second"))
    out = run.feed(b.chat("m-1", "Where is my parcel?"),
                   b.chat("m-2", "Sorry, I don't know.", sender="customer_agent", answered=False))
    assert [t for t, _, _ in out] == ["handoff.events", "assignments", "chat.outbound",
                                      "conversation.status"]
    handoff = run.topic("handoff.events")[0]
    assert handoff["trigger"] == {"kind": "no_answer", "phrase": None, "message_event_id": "m-2",
                                  "language": None}
    assert (handoff["process"], handoff["handed_off"], handoff["config_version"]) == (
        "live", True, 0)
    assignment = run.topic("assignments")[0]
    # Defaults: unassigned in the account's first inbox, the generic unavailable message.
    assert assignment["assignee"] is None and assignment["inbox_id"] == "support"
    assert run.topic("chat.outbound")[0]["kind"] == "handoff_unavailable"
    assert run.topic("conversation.status")[0] | {"event_id": None} == {
        "event_id": None, "conversation_id": "c-1", "status": "open", "view": "unassigned",
        "occurred_at": b.T0, "account_id": "acme"}
    assert conversation(run).phase is Phase.HANDED_OFF


def test_answered_or_unmarked_agent_messages_do_not_trigger() -> None:
    run = Run()
    out = run.feed(b.chat("m-1", "Here you go", sender="customer_agent", answered=True),
                   b.chat("m-2", "Anything else?", sender="customer_agent"),
                   b.chat("m-3", "I am a human agent", sender="human_agent"))
    assert out == []


def test_visitor_asking_for_a_human_in_several_languages() -> None:
    texts = {"en": "Can I speak to a real person please?",
             "nb": "Kan jeg snakke med et menneske?",
             "de": "Ich möchte mit einem echten Mitarbeiter sprechen",
             "es": "Quiero hablar con un agente",
             "fr": "Je veux parler à un conseiller"}
    for index, (lang, text) in enumerate(texts.items()):
        run = Run()
        out = run.feed(b.chat(f"m-{index}", text, conversation=f"c-{lang}"))
        kinds = [v["trigger"]["kind"] for t, _, v in out if t == "handoff.events"]
        assert kinds == ["human_requested"], (lang, text, out)


def test_paused_agent_hands_off_every_visitor_message_until_resumed() -> None:
    run = Run()
    run.feed(b.control("ctl-1", "pause"))
    out = run.feed(b.chat("m-1", "Hello there", conversation="c-a"))
    assert run.topic("handoff.events", out)[0]["trigger"]["kind"] == "agent_paused"
    run.feed(b.control("ctl-2", "resume"))
    assert run.feed(b.chat("m-2", "Hello there", conversation="c-b")) == []


def test_custom_phrase_triggers_whole_words_case_and_diacritics_insensitive() -> None:
    run = configured({"custom_triggers": ["refund", "Oppsigelse", "cancel my subscription"]})
    out = run.feed(b.chat("m-1", "I want a REFUND!", conversation="c-a"),
                   b.chat("m-2", "Jeg ønsker oppsigelse av avtalen", conversation="c-b"),
                   b.chat("m-3", "Please cancel   my subscription.", conversation="c-c"),
                   b.chat("m-4", "I was refunded already, thanks", conversation="c-d"))
    phrases = [(v["conversation_id"], v["trigger"]["phrase"], v["config_version"])
               for v in run.topic("handoff.events", out)]
    assert phrases == [("c-a", "refund", 1), ("c-b", "Oppsigelse", 1),
                       ("c-c", "cancel my subscription", 1)]


def test_process_none_records_the_trigger_and_keeps_the_bot() -> None:
    run = configured({"process": "none", "custom_triggers": ["refund"]})
    out = run.feed(b.chat("m-1", "refund please"), b.chat("m-2", "refund now"))
    assert [t for t, _, _ in out] == ["handoff.events", "handoff.events"]
    assert [v["handed_off"] for v in run.topic("handoff.events", out)] == [False, False]
    assert [v["process"] for v in run.topic("handoff.events", out)] == ["none", "none"]
    assert conversation(run).phase is Phase.BOT


def test_a_handed_off_conversation_is_not_handed_off_again() -> None:
    run = Run()
    first = run.feed(b.chat("m-1", "I want to talk to a human"))
    assert len(run.topic("handoff.events", first)) == 1
    again = run.feed(b.chat("m-2", "HUMAN. NOW. Let me talk to a person"),
                     b.chat("m-3", "no idea", sender="customer_agent", answered=False))
    assert again == []


def test_duplicate_input_event_id_is_dropped() -> None:
    run = Run()
    event = b.chat("m-1", "I want to talk to a human")
    assert run.feed(event)
    run.feed(b.update("u-1", "hand_back"))
    assert run.feed(b.chat("m-1", "I want to talk to a human")) == []


def test_same_input_gives_byte_identical_output() -> None:
    def once() -> list[Any]:
        run = configured({"custom_triggers": ["refund"]}, b.user("u-1", teams=("t",)),
                         b.presence("u-1"))
        return run.feed(b.chat("m-1", "refund"), b.chat("m-2", "menneske takk", conversation="c2"))

    assert once() == once()


def test_live_workflow_unassigned_keep_open_versus_close() -> None:
    rules = [{"when": {"channel": ["email"]}, "assign": {"user": "u-1"}}]
    for choice, status in (("keep_open", "open"), ("close", "closed")):
        run = configured({"process": "live", "unassigned_chat": choice,
                          "routing": {"mode": "workflow", "workflow_id": "wf",
                                      "destination": "helpdesk"}},
                         b.workflow("wf", rules))
        out = run.feed(b.chat("m-1", "talk to a human please"))
        assert [t for t, _, _ in out] == ["handoff.events", "tickets.created", "assignments",
                                          "chat.outbound", "conversation.status"]
        assert run.topic("assignments", out)[0]["assignee"] is None
        assert run.topic("chat.outbound", out)[0]["kind"] == "handoff_unassigned"
        status_record = run.topic("conversation.status", out)[0]
        assert (status_record["status"], status_record["view"]) == (status, "unassigned")
        expected = Phase.CLOSED if choice == "close" else Phase.HANDED_OFF
        assert conversation(run).phase is expected


def test_async_workflow_unassigned_stays_open_even_with_close() -> None:
    run = configured({"process": "async", "unassigned_chat": "close",
                      "routing": {"mode": "workflow", "workflow_id": "wf",
                                  "destination": "helpdesk"}},
                     b.workflow("wf", []))
    out = run.feed(b.chat("m-1", "talk to a human please"))
    assert run.topic("conversation.status", out)[0]["status"] == "open"


def test_closed_conversation_reopens_to_the_customer_agent_on_a_visitor_message() -> None:
    run = configured({"unassigned_chat": "close",
                      "routing": {"mode": "workflow", "workflow_id": "wf",
                                  "destination": "helpdesk"}}, b.workflow("wf", []))
    run.feed(b.chat("m-1", "human please"))
    assert conversation(run).phase is Phase.CLOSED
    out = run.feed(b.chat("m-2", "what are your opening hours?"))
    assert [(v["status"], v["view"]) for v in run.topic("conversation.status", out)] == [
        ("open", "bot")]
    assert conversation(run).phase is Phase.BOT
    again = run.feed(b.chat("m-3", "I need to talk to a human"))
    assert len(run.topic("handoff.events", again)) == 1


def test_hand_back_and_close_from_the_inbox() -> None:
    run = Run()
    run.feed(b.chat("m-1", "human please"))
    out = run.feed(b.update("upd-1", "hand_back"))
    assert [(v["status"], v["view"]) for v in run.topic("conversation.status", out)] == [
        ("open", "bot")]
    assert conversation(run).phase is Phase.BOT
    run.feed(b.chat("m-2", "human please"))
    out = run.feed(b.update("upd-2", "close"), b.update("upd-2", "close"))
    assert [v["status"] for v in run.topic("conversation.status", out)] == ["closed"]
    assert conversation(run).phase is Phase.CLOSED


def test_settings_change_applies_to_the_next_message_only() -> None:
    run = configured({"custom_triggers": ["refund"]})
    first = run.feed(b.chat("m-1", "refund", conversation="c-a"))
    change = run.feed(b.config("cfg-2", {"custom_triggers": ["refund"], "process": "none"}))
    assert change[0][2]["version"] == 2
    second = run.feed(b.chat("m-2", "refund", conversation="c-b"))
    assert [v["config_version"] for v in run.topic("handoff.events", first + second)] == [1, 2]
    assert [v["handed_off"] for v in run.topic("handoff.events", first + second)] == [True, False]
