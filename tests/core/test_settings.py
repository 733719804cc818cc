"""Config requests in the core: who may change settings, what is refused, and with which reason."""

from __future__ import annotations

from typing import Any

import pytest

from handoff.core.settings import check_config, unknown_fields
from handoff.core.state import AccountSettings, AccountState
from handoff.core.store import Table
from schemas.settings import MAX_CUSTOM_TRIGGERS, MAX_MESSAGE_LENGTH, MAX_PHRASE_LENGTH
from tests import builders as b
from tests.core.harness import Run

EDIT = "customer_agent.edit"


def directory_run() -> Run:
    run = Run()
    run.feed(b.inbox("support"), b.inbox("helpdesk", "help_desk"),
             b.user("u-admin", permissions=(EDIT,)), b.user("u-viewer"),
             b.user("u-other", account="other", permissions=(EDIT,)),
             b.team("t-1"), b.workflow("wf-1", [{"when": {}, "assign": {"user": "u-admin"}}]))
    return run


def outcome(run: Run, event_id: str, cfg: dict[str, Any], actor: str = "u-admin"
            ) -> dict[str, Any]:
    """Feed one request; it must yield exactly one change record and nothing else."""
    out = run.feed(b.config(event_id, cfg, actor=actor))
    assert [topic for topic, _, _ in out] == ["handoff.config.changes"], out
    return out[0][2]


def settings(run: Run) -> AccountSettings:
    found = run.state(Table.SETTINGS, "acme")
    return found if found is not None else AccountSettings(account_id="acme")


@pytest.mark.parametrize(("actor", "reason"), [
    ("u-viewer", "user u-viewer lacks the customer_agent.edit permission"),
    ("u-other", "user u-other is not a user of account acme"),
    ("u-ghost", "user u-ghost is not a user of account acme"),
])
def test_actors_without_the_permission_are_refused_and_nothing_changes(actor: str,
                                                                        reason: str) -> None:
    run = directory_run()
    change = outcome(run, "cfg-1", {"process": "none"}, actor=actor)
    assert (change["accepted"], change["reason"], change["version"]) == (False, reason, None)
    assert change["actor"] == actor
    assert settings(run).version == 0
    assert run.state(Table.SETTINGS_HISTORY, "acme#1") is None


@pytest.mark.parametrize(("cfg", "reason"), [
    ({"process": "later"}, "process: Input should be 'live', 'async' or 'none'"),
    ({"routing": {"mode": "round_robin"}},
     "routing: Input tag 'round_robin' found using 'mode' does not match any of the expected "
     "tags: 'direct', 'workflow'"),
    ({"routing": {"mode": "direct", "destination": "nowhere"}},
     "routing.destination: inbox or help desk nowhere does not exist in account acme"),
    ({"routing": {"mode": "workflow", "workflow_id": "wf-1", "destination": "support"}},
     "routing.destination: support is an inbox; ticket-based workflows need a help desk"),
    ({"routing": {"mode": "workflow", "workflow_id": "wf-9", "destination": "helpdesk"}},
     "routing.workflow_id: workflow wf-9 does not exist in account acme"),
    ({"routing": {"mode": "workflow", "destination": "helpdesk"}},
     "routing.workflow_id: Field required"),
    ({"routing": {"mode": "direct", "assignees": [{"type": "team", "id": "t-9"}]}},
     "routing.assignees[0]: team t-9 does not exist in account acme"),
    ({"routing": {"mode": "direct", "assignees": [{"type": "user", "id": "u-other"}]}},
     "routing.assignees[0]: user u-other does not exist in account acme"),
    ({"routing": {"mode": "direct", "assignees": [{"type": "team", "id": "t-1"},
                                                  {"type": "team", "id": "t-1"}]}},
     "routing.assignees[1]: team t-1 is listed twice; remove one"),
    ({"messages": {"available": ""}}, "messages.available: String should have at least 1 character"),
    ({"messages": {"unavailable": " \n "}},
     "messages.unavailable: is blank; write the message the visitor should see"),
    ({"messages": {"unassigned": "x" * (MAX_MESSAGE_LENGTH + 1)}},
     f"messages.unassigned: String should have at most {MAX_MESSAGE_LENGTH} characters"),
    ({"custom_triggers": ["refund", "?!"]},
     "custom_triggers[1]: '?!' has no letters or digits to match"),
    ({"custom_triggers": ["x" * (MAX_PHRASE_LENGTH + 1)]},
     f"custom_triggers[0]: String should have at most {MAX_PHRASE_LENGTH} characters"),
    ({"custom_triggers": ["refund"] * (MAX_CUSTOM_TRIGGERS + 1)},
     f"custom_triggers: List should have at most {MAX_CUSTOM_TRIGGERS} items after validation, "
     f"not {MAX_CUSTOM_TRIGGERS + 1}"),
    ({"unassigned_chat": "maybe"}, "unassigned_chat: Input should be 'keep_open' or 'close'"),
])
def test_invalid_settings_are_refused_with_what_to_fix(cfg: dict[str, Any], reason: str) -> None:
    run = directory_run()
    change = outcome(run, "cfg-1", cfg)
    assert (change["accepted"], change["reason"], change["version"]) == (False, reason, None)
    assert settings(run).version == 0


def test_every_error_of_a_request_is_named_at_once() -> None:
    run = directory_run()
    change = outcome(run, "cfg-1", {"custom_triggers": ["..."], "messages": {"available": " "},
                                    "routing": {"mode": "direct", "destination": "nowhere"}})
    assert change["reason"] == (
        "custom_triggers[0]: '...' has no letters or digits to match; "
        "messages.available: is blank; write the message the visitor should see; "
        "routing.destination: inbox or help desk nowhere does not exist in account acme")


def test_accepted_settings_get_the_next_version_and_a_history_entry() -> None:
    run = directory_run()
    first = outcome(run, "cfg-1", {"custom_triggers": ["Refund", "refund!", "RÉFUND", "kündigung"],
                                   "process": "async"})
    refused = outcome(run, "cfg-2", {"process": "sometimes"})
    second = outcome(run, "cfg-3", {"process": "live", "unassigned_chat": "close",
                                    "routing": {"mode": "workflow", "workflow_id": "wf-1",
                                                "destination": "helpdesk"}})
    assert [(c["accepted"], c["version"]) for c in (first, refused, second)] == [
        (True, 1), (False, None), (True, 2)]
    one = run.state(Table.SETTINGS_HISTORY, "acme#1")
    # Spellings that normalise alike match the same messages: the first one is kept.
    assert one.config.custom_triggers == ["Refund", "kündigung"]
    assert (one.actor, one.event_id) == ("u-admin", "cfg-1")
    assert settings(run).version == 2
    assert settings(run).config.routing.mode == "workflow"


def test_a_redelivered_accepted_request_is_not_applied_twice() -> None:
    run = directory_run()
    outcome(run, "cfg-1", {"process": "none"})
    assert run.feed(b.config("cfg-1", {"process": "none"})) == []
    assert settings(run).version == 1


def test_check_config_returns_field_errors_and_the_normalised_config() -> None:
    account = AccountState(account_id="acme")
    config, errors = check_config({"custom_triggers": ["a b", "A  B"]}, account)
    assert errors == [] and config is not None and config.custom_triggers == ["a b"]
    config, errors = check_config({"routing": {"mode": "direct", "destination": "x"}}, account)
    assert config is None
    assert [(e.field, e.message) for e in errors] == [
        ("routing.destination", "inbox or help desk x does not exist in account acme")]


def test_unknown_fields_name_the_typo_and_what_is_known() -> None:
    errors = unknown_fields({"proces": "none", "messages": {"availble": "hi"},
                             "routing": {"mode": "direct", "destinaton": "support",
                                         "assignees": [{"type": "user", "id": "u", "ID": "v"}]}})
    assert [e.field for e in errors] == ["proces", "routing.destinaton",
                                         "routing.assignees[0].ID", "messages.availble"]
    assert errors[0].message == ("unknown setting; known here: custom_triggers, process, routing, "
                                 "messages, unassigned_chat, pickup_timeout_s, "
                                 "assign_when_available, queue_update_s, language_routing")
    assert unknown_fields({"process": "live", "routing": {"mode": "workflow", "workflow_id": "w",
                                                          "destination": "h"}}) == []


def test_handoff_ticket_and_assignment_carry_the_version_they_were_decided_with() -> None:
    run = directory_run()
    outcome(run, "cfg-1", {"custom_triggers": ["refund"]})
    outcome(run, "cfg-2", {"custom_triggers": ["refund"], "routing": {
        "mode": "workflow", "workflow_id": "wf-1", "destination": "helpdesk"}})
    out = run.feed(b.chat("m-1", "refund please", conversation="c-v"))
    versions = {topic: value["config_version"] for topic, _, value in out
                if "config_version" in value}
    assert versions == {"handoff.events": 2, "tickets.created": 2, "assignments": 2}


# -- v1.1: a workflow without a destination goes to the account's help desk ------------------


def test_a_workflow_without_destination_uses_the_accounts_only_help_desk() -> None:
    run = directory_run()
    change = outcome(run, "cfg-1", {"custom_triggers": ["refund"], "routing": {
        "mode": "workflow", "workflow_id": "wf-1"}})
    assert (change["accepted"], change["version"]) == (True, 1)
    # Saved naming the help desk it resolved to, so the version says where tickets go.
    assert settings(run).config.routing.model_dump() == {
        "mode": "workflow", "workflow_id": "wf-1", "destination": "helpdesk"}
    out = run.feed(b.chat("m-1", "refund please", conversation="c-hd"))
    (ticket,) = run.topic("tickets.created", out)
    (assignment,) = run.topic("assignments", out)
    assert (ticket["help_desk_id"], assignment["inbox_id"]) == ("helpdesk", "helpdesk")
    # A second help desk later does not move this version's tickets.
    run.feed(b.inbox("returns", "help_desk"))
    out = run.feed(b.chat("m-2", "refund please", conversation="c-hd-2"))
    assert run.topic("tickets.created", out)[0]["help_desk_id"] == "helpdesk"


def test_a_workflow_without_destination_and_no_help_desk_is_refused() -> None:
    run = Run()
    run.feed(b.inbox("support"), b.user("u-admin", permissions=(EDIT,)),
             b.workflow("wf-1", [{"when": {}, "assign": {"user": "u-admin"}}]))
    change = outcome(run, "cfg-1", {"routing": {"mode": "workflow", "workflow_id": "wf-1"}})
    assert (change["accepted"], change["reason"]) == (False, (
        "routing.destination: account acme has no help desk, and ticket-based workflows need "
        "one: add a help desk to the account's directory"))
    assert settings(run).version == 0


def test_a_workflow_without_destination_and_several_help_desks_names_them() -> None:
    run = directory_run()
    run.feed(seq_inbox("returns", "Returns"))
    change = outcome(run, "cfg-1", {"routing": {"mode": "workflow", "workflow_id": "wf-1"}})
    assert (change["accepted"], change["reason"]) == (False, (
        "routing.destination: account acme has 2 help desks; choose the one for the tickets: "
        "helpdesk, Returns (returns)"))
    assert settings(run).version == 0
    # Naming one of them is accepted.
    change = outcome(run, "cfg-2", {"routing": {"mode": "workflow", "workflow_id": "wf-1",
                                                "destination": "returns"}})
    assert (change["accepted"], settings(run).config.routing.destination) == (True, "returns")


def seq_inbox(ident: str, name: str) -> Any:
    record = {"kind": "inbox", "id": ident, "account_id": "acme", "type": "help_desk",
              "name": name}
    return b.seq("directory", "acme", record, key=f"inbox:{ident}", occurred_at=b.T0)


# -- v1.1: refusals made by the API, and changes based on an older version ---------------------


def test_a_request_the_api_refused_is_recorded_as_refused_and_changes_nothing() -> None:
    run = directory_run()
    # Even an editor's valid config: the API decided (say the permission was revoked there).
    out = run.feed(request("cfg-1", {"process": "none"},
                           refused="user u-admin lacks the customer_agent.edit permission"))
    assert [t for t, _, _ in out] == ["handoff.config.changes"]
    change = out[0][2]
    assert (change["accepted"], change["actor"], change["reason"], change["version"]) == (
        False, "u-admin", "user u-admin lacks the customer_agent.edit permission", None)
    assert settings(run).version == 0
    # Sequenced twice (intake re-forwards after a crash): still one record.
    assert run.feed(b.config("cfg-1", {"process": "none"})) == []


def test_a_change_based_on_an_older_version_is_refused_as_stale() -> None:
    run = directory_run()
    first = run.feed(request("cfg-1", {"process": "async"}, if_version=0))
    assert first[0][2]["accepted"] and settings(run).version == 1
    stale = run.feed(request("cfg-2", {"process": "none"}, if_version=0))[0][2]
    assert (stale["accepted"], stale["version"]) == (False, None)
    assert stale["reason"] == (
        "the settings changed since version 0 that this change was based on: version 1 was "
        f"saved by u-admin at {b.T0}; load them again and redo the change")
    assert settings(run).config.process.value == "async"
    current = run.feed(request("cfg-3", {"process": "none"}, if_version=1))[0][2]
    assert (current["accepted"], current["version"]) == (True, 2)


def request(event_id: str, cfg: dict[str, Any], **fields: Any) -> Any:
    """A config request with the v1.1 fields the API sets (`refused`, `if_version`)."""
    return b.seq("handoff.config.requests", "acme", {
        "event_id": event_id, "account_id": "acme", "actor": "u-admin", "occurred_at": b.T0,
        "config": cfg, **fields})
