"""The settings page's "Queue and timers" section (contract v1.1), in a browser, on two real
workers through a real broker: what the editor sets is saved, shown again after a reload, applied
by the stream, and a refusal shows next to its field.

The workers, tokens and browser are those of `test_settings_api` (its `api` fixture starts a
deployment of its own for this module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from schemas.topics import Topic
from tests.builders import message
from tests.e2e.test_settings_api import (  # noqa: F401  (`api` is a fixture)
    HUMAN,
    Api,
    api,
    browser,
    needs_chromium,
    open_settings,
)

pytestmark = pytest.mark.kafka

QUEUE_TEXT = "Du er nummer {position} i køen (omtrent {wait_minutes} minutter)."


def queue_fields(page: Page) -> dict[str, Any]:
    """What the section shows, as the editor sees it."""
    return {
        "pickup": page.locator("#pickup-timeout").input_value(),
        "queue": page.locator("#assign-when-available").is_checked(),
        "tell": page.locator("#tell-position").is_checked(),
        "text": page.locator("#msg-queue-position").input_value(),
        "every": page.locator("#queue-update").input_value(),
        "prefer": page.locator("#prefer-language").is_checked(),
        "after": page.locator("#language-fallback").input_value(),
    }


@needs_chromium
def test_the_page_sets_queue_and_timers_and_shows_them_after_a_reload(
        api: Api, tmp_path: Path) -> None:  # noqa: F811
    account = api.accounts[1]
    editor = f"{account}-ed"
    before = api.settings(account, editor).body
    assert (before["config"]["pickup_timeout_s"], before["config"]["language_routing"],
            before["config"]["messages"]["queue_position"]) == (None, None, None)

    with browser() as page:
        # The port that does not hold this account: the page's requests are forwarded.
        open_settings(page, api, account, api.ports[0])
        page.check("input[name=process][value=live]")
        page.check("input[name=mode][value=direct]")
        page.select_option("#destination", "support")
        page.check(f"input[name=assignee][value='user:{editor}']")
        section = page.locator("#queue")
        expect(section).to_be_visible()
        expect(section.get_by_role("heading")).to_have_text("Queue and timers")
        # The sub-fields show only once their box is ticked.
        expect(page.locator("#msg-queue-position")).to_be_hidden()
        expect(page.locator("#language-fallback")).to_be_hidden()

        page.get_by_label("Re-route if not picked up within").fill("45")
        page.get_by_label("Keep unassigned live chats in a queue").check()
        page.get_by_label("Tell waiting visitors their place in line").check()
        # Ticking it with no text offers a sentence that uses both placeholders.
        expect(page.locator("#msg-queue-position")).to_have_value(
            "You are number {position} in line (about {wait_minutes} minutes).")
        page.locator("#msg-queue-position").fill(QUEUE_TEXT)
        expect(page.locator("#queue-example")).to_have_text(
            "Example, third in line with an estimate of 6 minutes: "
            "\u201cDu er nummer 3 i køen (omtrent 6 minutter).\u201d")
        page.get_by_label("at most every").fill("30")
        page.get_by_label("Prefer users who speak the visitor's language").check()
        page.get_by_label("then anyone after").fill("15")
        page.click("#save")
        expect(page.locator("#status")).to_have_text(f"Saved: version {before['version'] + 1}")

        saved = api.settings(account, editor).body["config"]
        assert (saved["pickup_timeout_s"], saved["assign_when_available"],
                saved["messages"]["queue_position"], saved["queue_update_s"],
                saved["language_routing"]) == (
            45, True, QUEUE_TEXT, 30, {"prefer": True, "fallback_after_s": 15})

        # A reload starts from the API again (account in the address, token in the session).
        page.reload()
        expect(page.locator("#version")).to_have_text(
            f"Version {before['version'] + 1}, saved by {editor} at "
            f"{api.settings(account, editor).body['updated_at']}")
        assert queue_fields(page) == {"pickup": "45", "queue": True, "tell": True,
                                      "text": QUEUE_TEXT, "every": "30", "prefer": True,
                                      "after": "15"}
        page.locator("#queue").screenshot(path=tmp_path / "queue.png")

        # The preview takes the section along; nothing is saved by it.
        page.get_by_role("button", name="Preview impact").click()
        expect(page.locator("#status")).to_have_text("Preview ready: nothing was saved")

    # The stream applies it: nobody is available, so the visitor waits in the queue and is
    # told the place in line, without the wait clause since there is no estimate yet.
    api.dep.send(Topic.CHAT_MESSAGES, message("queue-page-1", HUMAN, account=account,
                                              conversation="c-queue-page-1"))
    out = api.dep.read([Topic.CHAT_OUTBOUND], lambda r: any(
        v["conversation_id"] == "c-queue-page-1" and v["kind"] == "handoff_queue_position"
        for _, v in r))
    told = [v["text"] for _, v in out if v["conversation_id"] == "c-queue-page-1"
            and v["kind"] == "handoff_queue_position"]
    assert told == ["Du er nummer 1 i køen."]


@needs_chromium
def test_emptied_queue_fields_are_sent_as_absent_so_the_defaults_apply(api: Api) -> None:  # noqa: F811
    account = api.accounts[0]
    editor = f"{account}-ed"
    set_first = api.put(account, editor, {
        "pickup_timeout_s": 60, "assign_when_available": True, "queue_update_s": 300,
        "messages": {"queue_position": "Number {position}."},
        "language_routing": {"prefer": True, "fallback_after_s": 0}})
    assert set_first.status == 200, set_first.body
    version = set_first.body["version"]

    with browser() as page:
        open_settings(page, api, account, api.ports[1])
        assert queue_fields(page) == {"pickup": "60", "queue": True, "tell": True,
                                      "text": "Number {position}.", "every": "300",
                                      "prefer": True, "after": "0"}
        page.get_by_label("Re-route if not picked up within").fill("")
        page.get_by_label("Keep unassigned live chats in a queue").uncheck()
        page.get_by_label("at most every").fill("")
        page.get_by_label("Tell waiting visitors their place in line").uncheck()
        page.get_by_label("then anyone after").fill("")
        page.click("#save")
        expect(page.locator("#status")).to_have_text(f"Saved: version {version + 1}")
        assert queue_fields(page) == {"pickup": "", "queue": False, "tell": False,
                                      "text": "", "every": "120", "prefer": True,
                                      "after": "60"}
        page.get_by_label("Prefer users who speak the visitor's language").uncheck()
        page.click("#save")
        expect(page.locator("#status")).to_have_text(f"Saved: version {version + 2}")

    saved = api.settings(account, editor).body["config"]
    assert (saved["pickup_timeout_s"], saved["assign_when_available"], saved["queue_update_s"],
            saved["messages"]["queue_position"], saved["language_routing"]) == (
        None, False, 120, None, None)
    previous = api.history(account, editor)[1]["config"]
    assert previous["language_routing"] == {"prefer": True, "fallback_after_s": 60}


@needs_chromium
def test_a_refused_queue_field_shows_its_422_next_to_it(api: Api) -> None:  # noqa: F811
    account = api.accounts[1]
    editor = f"{account}-ed"
    before = api.settings(account, editor).body

    with browser() as page:
        open_settings(page, api, account, api.ports[1])
        page.check("input[name=process][value=live]")
        page.get_by_label("Tell waiting visitors their place in line").check()
        text = page.locator("#msg-queue-position")
        text.fill("Please hold on, a human agent will be with you soon.")
        expect(page.locator("#queue-example")).to_have_text("")  # nothing to fill in
        page.click("#save")
        expect(page.locator("#status")).to_have_text("Not saved (422)")
        slot = page.locator("[data-error-for='messages.queue_position']")
        expect(slot).to_have_text("must contain {position}, the visitor's place in line")
        expect(text).to_have_attribute("aria-invalid", "true")
        expect(page.locator("[data-error-for='']")).to_have_text("")  # not lumped together

        # An unknown placeholder, and a timeout under the minimum, each next to its own field.
        text.fill("Number {position}, about {eta} minutes.")
        page.click("#save")
        expect(slot).to_have_text(
            "unknown placeholder {eta}; use {position} and optionally {wait_minutes}")
        text.fill("Number {position}.")
        page.get_by_label("Re-route if not picked up within").fill("5")
        page.click("#save")
        expect(page.locator("#status")).to_have_text("Not saved (422)")
        expect(page.locator("[data-error-for='pickup_timeout_s']")).to_have_text(
            "Input should be greater than or equal to 10")
        expect(page.locator("#pickup-timeout")).to_have_attribute("aria-invalid", "true")
        expect(slot).to_have_text("")

        # A field in a part the editor closed still shows its refusal, naming the field.
        page.get_by_label("Re-route if not picked up within").fill("")
        page.get_by_label("at most every").fill("soon")
        page.get_by_label("Tell waiting visitors their place in line").uncheck()
        page.click("#save")
        expect(page.locator("[data-error-for='']")).to_have_text(
            "queue_update_s: Input should be a valid integer, unable to parse string as an "
            "integer")

    assert api.settings(account, editor).body == before  # saved nothing
