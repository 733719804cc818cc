"""The settings API, its command line and its page, on two real workers through a real broker.

Two workers share 2 partitions, so one account's tables are on one worker and the other's on
the other: every request is sent to both ports, and the one that lands on the wrong worker is
forwarded (the `X-Handoff-Served-By` header says who answered).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from playwright.sync_api import Page, expect, sync_playwright

from handoff.cli import main
from schemas.topics import Topic, partition_for
from tests.builders import message
from tests.kafka_support import Deployment, Worker

pytestmark = pytest.mark.kafka

EDIT = "customer_agent.edit"
HUMAN = "I want to talk to a human"
KNOWN_FIELDS = ("unknown setting; known here: custom_triggers, process, routing, messages, "
                "unassigned_chat, pickup_timeout_s, assign_when_available, queue_update_s, "
                "language_routing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Api:
    dep: Deployment
    ports: list[int]
    accounts: list[str]  # accounts[i] is on partition i
    tokens: dict[str, str] = field(default_factory=dict)  # user id -> token

    def url(self, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.ports[0]}"

    def call(self, method: str, path: str, token: str | None = None, body: Any = None,
             port: int | None = None, raw: bytes | None = None) -> Answer:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.url(port) + path, data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=40) as answer:
                return Answer(answer.status, json.loads(answer.read()), dict(answer.headers))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, json.loads(exc.read()), dict(exc.headers))

    def settings(self, account: str, user: str, port: int | None = None) -> Answer:
        return self.call("GET", f"/accounts/{account}/handoff-settings", self.tokens[user],
                         port=port)

    def put(self, account: str, user: str, config: Any, port: int | None = None) -> Answer:
        return self.call("PUT", f"/accounts/{account}/handoff-settings", self.tokens[user],
                         config, port=port)

    def history(self, account: str, user: str) -> list[dict[str, Any]]:
        answer = self.call("GET", f"/accounts/{account}/handoff-settings/history",
                           self.tokens[user])
        assert answer.status == 200, answer
        versions: list[dict[str, Any]] = answer.body["versions"]
        return versions

    def cli(self, *args: str) -> Any:
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.dep.settings.bootstrap_servers,
               "HANDOFF_TOPIC_PREFIX": self.dep.prefix, "HANDOFF_PARTITIONS": "2"}
        return CliRunner().invoke(main, list(args), env=env)


def accounts_one_per_partition(partitions: int = 2) -> list[str]:
    """Account ids whose records land on partition 0, 1, ... (Kafka's murmur2 partitioner)."""
    found: dict[int, str] = {}
    for i in range(1000):
        name = f"api-acct-{i}"
        found.setdefault(partition_for(name, partitions), name)
        if len(found) == partitions:
            return [found[p] for p in range(partitions)]
    raise AssertionError("no spread")


def until(check: Any, timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def api(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = Path(tmp_path_factory.mktemp("settings-api"))
    dep = Deployment(kafka_bootstrap, tmp, partitions=2)
    ports = [free_port(), free_port()]
    for i, port in enumerate(ports):
        env = {**dep.env, "HANDOFF_WEB_PORT": str(port), "HANDOFF_DATA_DIR": str(tmp / f"data-{i}")}
        dep.workers.append(Worker(env, tmp / f"worker-{i}.log"))
    api = Api(dep, ports, accounts_one_per_partition())
    try:
        for worker in dep.workers:
            worker.start()
        for account in api.accounts:
            dep.send(Topic.DIRECTORY, *directory(account))
            dep.send(Topic.WORKFLOWS, {"workflow_id": f"{account}-wf", "account_id": account,
                                       "name": "Reassign tickets for customer agent handoff",
                                       "rules": [{"when": {}, "assign": {"user": f"{account}-ed"}}]})
            for user in (f"{account}-ed", f"{account}-viewer"):
                result = api.cli("token", "create", user, "--note", "tests")
                assert result.exit_code == 0, result.output
                api.tokens[user] = result.output.strip().splitlines()[-1]
        # Ready when both workers answer for both accounts: tokens read, partitions settled,
        # the editors' directory entries decided.
        for account in api.accounts:
            for port in ports:
                until(lambda a=account, p=port: api.settings(a, f"{a}-ed", p).status == 200,
                      what=f"{account} on port {port}")
        yield api
    finally:
        for worker in dep.workers:
            worker.stop()


def directory(account: str) -> list[dict[str, Any]]:
    return [
        {"kind": "inbox", "id": "support", "account_id": account, "type": "inbox",
         "name": "Support"},
        {"kind": "inbox", "id": "helpdesk", "account_id": account, "type": "help_desk",
         "name": "Help desk"},
        {"kind": "team", "id": "t-care", "account_id": account, "name": "Care"},
        {"kind": "user", "id": f"{account}-ed", "account_id": account, "name": "Editor",
         "teams": ["t-care"], "permissions": [EDIT]},
        {"kind": "user", "id": f"{account}-viewer", "account_id": account, "name": "Viewer",
         "teams": [], "permissions": []},
    ]


def handoffs(api: Api, conversations: set[str], count: int) -> list[dict[str, Any]]:
    records = api.dep.read(
        [Topic.HANDOFF_EVENTS],
        lambda r: len([v for _, v in r if v["conversation_id"] in conversations]) >= count)
    return [v for _, v in records if v["conversation_id"] in conversations]


# -- who may -----------------------------------------------------------------------------------


def test_missing_forged_foreign_and_unpermitted_callers_are_refused_and_change_nothing(
        api: Api) -> None:
    account, other = api.accounts
    editor = f"{account}-ed"
    assert api.put(account, editor, {"custom_triggers": ["refund"]}).status == 200
    before = api.settings(account, editor).body
    history = api.history(account, editor)
    path = f"/accounts/{account}/handoff-settings"
    change = {"process": "none", "custom_triggers": ["hijack"]}
    real = api.tokens[editor]
    forged = real[:-8] + ("A" * 8 if not real.endswith("A" * 8) else "B" * 8)  # same id, wrong secret

    missing = api.call("PUT", path, None, change)
    assert (missing.status, missing.body["error"]) == (401, missing.body["error"])
    assert missing.body["error"].startswith("missing bearer token")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for token in (forged, "hnd_0123456789abcdef_" + "x" * 43, "not-a-token"):
        refused = api.call("PUT", path, token, change)
        assert (refused.status, refused.body["error"]) == (401, "unknown or revoked token")
    viewer = api.put(account, f"{account}-viewer", change)
    assert (viewer.status, viewer.body["error"]) == (
        403, f"user {account}-viewer lacks the customer_agent.edit permission")
    foreign = api.put(account, f"{other}-ed", change)  # an editor, but of the other account
    assert (foreign.status, foreign.body["error"]) == (
        403, f"user {other}-ed is not a user of account {account}")
    assert api.settings(account, f"{account}-viewer").status == 403  # reading too
    assert api.call("GET", path + "/history", api.tokens[f"{other}-ed"]).status == 403

    assert api.settings(account, editor).body == before
    assert api.history(account, editor) == history
    assert before["config"]["custom_triggers"] == ["refund"]


def test_a_revoked_token_is_refused(api: Api) -> None:
    account = api.accounts[1]
    result = api.cli("token", "create", f"{account}-ed")
    token = result.output.strip().splitlines()[-1]
    path = f"/accounts/{account}/handoff-settings"
    until(lambda: api.call("GET", path, token).status == 200, what="the new token")
    listed = api.cli("token", "list", "--user", f"{account}-ed")
    assert token.split("_")[1] in listed.output and token not in listed.output
    revoked = api.cli("token", "revoke", token)
    assert revoked.exit_code == 0 and "1 tokens revoked" in revoked.output
    until(lambda: all(api.call("GET", path, token, port=p).status == 401 for p in api.ports),
          what="the revocation")


def changes_since(api: Api, account: str, since: str, settle: float = 4.0
                  ) -> list[dict[str, Any]]:
    """Every `handoff.config.changes` record of the account from requests made after `since`
    (read for `settle` seconds: the API answers once its record is on the topic)."""
    records = api.dep.read([Topic.CONFIG_CHANGES], lambda r: False, timeout=settle)
    start = datetime.fromisoformat(since)
    return [v for _, v in records if v["account_id"] == account
            and datetime.fromisoformat(v["occurred_at"]) >= start]


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat()


def test_every_refused_change_of_a_known_user_is_on_config_changes_once(api: Api) -> None:
    account, other = api.accounts
    editor, viewer = f"{account}-ed", f"{account}-viewer"
    since = now_rfc3339()
    before = api.settings(account, editor).body
    path = f"/accounts/{account}/handoff-settings"
    change = {"process": "none"}
    answers = [
        api.put(account, viewer, change),                      # 403: lacks the permission
        api.put(account, f"{other}-ed", change, port=api.ports[1]),  # 403: not a user here
        api.put(account, editor, {"proces": "none"}),          # 422: a typo
        api.call("PUT", path, api.tokens[editor], raw=b"process: none"),  # 422: not JSON
        api.call("PUT", path, None, change),                   # 401: names nobody
        api.call("PUT", path, "hnd_0123456789abcdef_" + "x" * 43, change),  # 401
        api.call("POST", path + "/validate", api.tokens[editor], {"proces": "x"}),  # no change
    ]
    assert [a.status for a in answers] == [403, 403, 422, 422, 401, 401, 422]
    got = changes_since(api, account, since)
    assert [(c["actor"], c["accepted"], c["version"], c["reason"]) for c in got] == [
        (viewer, False, None, f"user {viewer} lacks the customer_agent.edit permission"),
        (f"{other}-ed", False, None, f"user {other}-ed is not a user of account {account}"),
        (editor, False, None, f"proces: {KNOWN_FIELDS}"),
        (editor, False, None, "the body is not JSON: " + answers[3].body["errors"][0]["message"]),
    ]
    assert len({c["event_id"] for c in got}) == 4
    assert api.settings(account, editor).body == before


def test_a_save_based_on_an_older_version_is_412_and_changes_nothing(api: Api) -> None:
    account = api.accounts[0]
    editor = f"{account}-ed"
    loaded = api.settings(account, editor)
    assert loaded.headers["ETag"] == f'"{loaded.body["version"]}"'
    # The other worker forwards the request: its ETag and If-Match go through.
    assert api.settings(account, editor, port=api.ports[1]).headers["ETag"] == \
        loaded.headers["ETag"]
    saved = put_if(api, account, editor, {"custom_triggers": ["first"]}, loaded.headers["ETag"],
                   api.ports[1])
    assert saved.status == 200, saved.body
    assert saved.headers["ETag"] == f'"{loaded.body["version"] + 1}"'
    since = now_rfc3339()
    stale = put_if(api, account, editor, {"custom_triggers": ["second"]}, loaded.headers["ETag"])
    assert stale.status == 412, stale.body
    assert stale.headers["ETag"] == saved.headers["ETag"]
    assert (stale.body["version"], stale.body["actor"], stale.body["updated_at"]) == (
        saved.body["version"], editor, saved.body["updated_at"])
    assert stale.body["error"] == (
        f"the settings changed since version {loaded.body['version']} that this change was "
        f"based on: version {saved.body['version']} was saved by {editor} at "
        f"{saved.body['updated_at']}; load them again and redo the change")
    garbage = put_if(api, account, editor, {"custom_triggers": ["third"]}, "W/\"abc\"")
    assert garbage.status == 412 and garbage.body["version"] == saved.body["version"]
    assert api.settings(account, editor).body == saved.body
    # Audited like any refusal: one record each.
    got = changes_since(api, account, since)
    assert [(c["actor"], c["accepted"], c["reason"]) for c in got] == [
        (editor, False, stale.body["error"]), (editor, False, garbage.body["error"])]
    # The current ETag, or `*`, saves.
    for tag in (saved.headers["ETag"], "*"):
        assert put_if(api, account, editor, {"custom_triggers": ["now"]}, tag).status == 200


def put_if(api: Api, account: str, user: str, config: Any, tag: str,
           port: int | None = None) -> Answer:
    request = urllib.request.Request(
        api.url(port) + f"/accounts/{account}/handoff-settings", method="PUT",
        data=json.dumps(config).encode(),
        headers={"Content-Type": "application/json", "If-Match": tag,
                 "Authorization": f"Bearer {api.tokens[user]}"})
    try:
        with urllib.request.urlopen(request, timeout=40) as answer:
            return Answer(answer.status, json.loads(answer.read()), dict(answer.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, json.loads(exc.read()), dict(exc.headers))


def test_a_workflow_without_destination_hands_off_through_the_help_desk(api: Api) -> None:
    account = api.accounts[0]
    editor = f"{account}-ed"
    saved = api.put(account, editor, {"custom_triggers": ["returnere"], "routing": {
        "mode": "workflow", "workflow_id": f"{account}-wf"}})
    assert saved.status == 200, saved.body
    assert saved.body["config"]["routing"]["destination"] == "helpdesk"  # the only help desk
    api.dep.send(Topic.CHAT_MESSAGES, message("hd-1", "Jeg vil returnere", account=account,
                                              conversation="c-hd-1"))
    out = api.dep.read([Topic.TICKETS_CREATED, Topic.ASSIGNMENTS],
                       lambda r: sum(v["conversation_id"] == "c-hd-1" for _, v in r) >= 2)
    mine = {t: v for t, v in out if v["conversation_id"] == "c-hd-1"}
    assert mine["tickets.created"]["help_desk_id"] == "helpdesk"
    assert mine["assignments"]["inbox_id"] == "helpdesk"
    assert mine["assignments"]["assignee"] == {"type": "user", "id": editor}


# -- what is saved -------------------------------------------------------------------------------


def test_invalid_settings_are_422_with_each_field_and_change_nothing(api: Api) -> None:
    account = api.accounts[1]
    editor = f"{account}-ed"
    before = api.settings(account, editor).body
    answer = api.put(account, editor, {
        "custom_triggers": ["refund", ""], "proces": "none",
        "routing": {"mode": "workflow", "workflow_id": "wf-missing", "destination": "support"},
        "messages": {"available": "  "}})
    assert answer.status == 422
    assert answer.body["errors"] == [
        {"field": "proces", "message": KNOWN_FIELDS},
        {"field": "custom_triggers[1]", "message": "String should have at least 1 character"},
    ]
    answer = api.put(account, editor, {
        "routing": {"mode": "workflow", "workflow_id": "wf-missing", "destination": "support"},
        "messages": {"available": "  "}})
    assert answer.status == 422
    assert [(e["field"], e["message"]) for e in answer.body["errors"]] == [
        ("messages.available", "is blank; write the message the visitor should see"),
        ("routing.destination", "support is an inbox; ticket-based workflows need a help desk"),
        ("routing.workflow_id", f"workflow wf-missing does not exist in account {account}")]
    not_json = api.call("PUT", f"/accounts/{account}/handoff-settings", api.tokens[editor],
                        raw=b"process: none")
    assert (not_json.status, not_json.body["error"]) == (422, "the body is not JSON")
    assert api.settings(account, editor).body == before


def test_a_change_applies_to_the_next_message_and_not_to_earlier_ones(api: Api) -> None:
    account = api.accounts[0]
    editor = f"{account}-ed"
    dep = api.dep
    dep.send(Topic.CHAT_MESSAGES, message("next-1", HUMAN, account=account,
                                          conversation="c-next-1"))
    (earlier,) = handoffs(api, {"c-next-1"}, 1)
    old_version = earlier["config_version"]
    assert (earlier["process"], earlier["handed_off"]) == ("live", True)

    saved = api.put(account, editor, {"process": "none", "custom_triggers": ["oppsigelse"]},
                    port=api.ports[1])
    assert saved.status == 200, saved.body
    version = saved.body["version"]
    assert version == old_version + 1
    assert saved.body["config"]["process"] == "none"

    dep.send(Topic.CHAT_MESSAGES, message("next-2", HUMAN, account=account,
                                          conversation="c-next-2"))
    dep.send(Topic.CHAT_MESSAGES, message("next-3", "Jeg vil ha oppsigelse", account=account,
                                          conversation="c-next-3"))
    got = {h["conversation_id"]: h for h in
           handoffs(api, {"c-next-1", "c-next-2", "c-next-3"}, 3)}
    assert got["c-next-1"] == earlier  # decided with the old settings, and only once
    assert [(got[c]["config_version"], got[c]["process"], got[c]["handed_off"],
             got[c]["trigger"]["kind"]) for c in ("c-next-2", "c-next-3")] == [
        (version, "none", False, "human_requested"), (version, "none", False, "custom_phrase")]
    assert api.history(account, editor)[0]["version"] == version


def test_either_worker_answers_for_either_account(api: Api) -> None:
    served_by = {}
    for account in api.accounts:
        editor = f"{account}-ed"
        answers = [api.settings(account, editor, port) for port in api.ports]
        assert [a.status for a in answers] == [200, 200]
        assert answers[0].body == answers[1].body
        assert answers[0].headers["X-Handoff-Served-By"] == answers[1].headers["X-Handoff-Served-By"]
        served_by[account] = answers[0].headers["X-Handoff-Served-By"]
        # A PUT, body and all, through the worker that does not hold the account.
        other_port = next(p for p in api.ports if not served_by[account].endswith(f":{p}"))
        saved = api.put(account, editor, {"custom_triggers": ["forwarded"]}, port=other_port)
        assert saved.status == 200, saved.body
        assert saved.headers["X-Handoff-Served-By"] == served_by[account]
        assert api.settings(account, editor).body["config"]["custom_triggers"] == ["forwarded"]
    # Two workers, two partitions: each account's tables are on a different worker.
    assert len(set(served_by.values())) == 2


# -- the command line ----------------------------------------------------------------------------


def test_config_commands_work_from_a_yaml_file_through_the_api(api: Api, tmp_path: Path) -> None:
    account = api.accounts[1]
    auth = ["--url", api.url(api.ports[0]), "--token", api.tokens[f"{account}-ed"]]
    bad = tmp_path / "bad.yaml"
    bad.write_text("process: sometimes\nrouting: {mode: workflow, workflow_id: nope, "
                   "destination: helpdesk}\n")
    result = api.cli("config", "validate", account, str(bad), *auth)
    assert result.exit_code == 1
    assert "  process: Input should be 'live', 'async' or 'none'" in result.output

    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"config": {
        "custom_triggers": ["kansellering", "Refusjon"], "process": "live",
        "routing": {"mode": "workflow", "workflow_id": f"{account}-wf", "destination": "helpdesk"},
        "messages": {"unassigned": "Takk! Saken din er i køen."}, "unassigned_chat": "close"}}))
    result = api.cli("config", "validate", account, str(good), *auth)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"valid for account {account}")
    version = api.settings(account, f"{account}-ed").body["version"]
    assert version == api.history(account, f"{account}-ed")[0]["version"]  # validate saved nothing

    result = api.cli("config", "set", account, str(good), *auth)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"saved: account {account}, version {version + 1}"

    out = tmp_path / "current.yaml"
    result = api.cli("config", "get", account, "--out", str(out), *auth)
    assert result.exit_code == 0, result.output
    current = yaml.safe_load(out.read_text())
    assert out.read_text().startswith(f"# handoff settings of account {account}, version "
                                      f"{version + 1}, saved by {account}-ed")
    assert (current["custom_triggers"], current["unassigned_chat"]) == (
        ["kansellering", "Refusjon"], "close")
    assert current["messages"]["unassigned"] == "Takk! Saken din er i køen."

    result = api.cli("config", "history", account, "--limit", "2", *auth)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith(f"v{version + 1} ") and f"workflow {account}-wf in helpdesk" in first

    result = api.cli("config", "get", account, "--url", api.url(), "--token", "hnd_nope")
    assert result.exit_code == 1 and "refused (401): unknown or revoked token" in result.output


def test_config_set_refuses_a_file_read_before_another_save_unless_forced(
        api: Api, tmp_path: Path) -> None:
    account = api.accounts[1]
    editor = f"{account}-ed"
    auth = ["--url", api.url(api.ports[1]), "--token", api.tokens[editor]]
    mine = tmp_path / "mine.yaml"
    assert api.cli("config", "get", account, "--out", str(mine), *auth).exit_code == 0
    read = api.settings(account, editor).body["version"]
    theirs = api.put(account, editor, {"custom_triggers": ["theirs"]})
    assert theirs.status == 200
    # My edit of the file, keeping the header line `config get` wrote (it names the version).
    header, *_ = mine.read_text().splitlines()
    edited = {**yaml.safe_load(mine.read_text()), "custom_triggers": ["mine"]}
    mine.write_text(header + "\n" + yaml.safe_dump(edited))

    result = api.cli("config", "set", account, str(mine), *auth)
    assert result.exit_code == 1
    assert f"refused (412): the settings changed since version {read}" in result.output
    assert (f"{mine} was read from version {read}; account {account} is at version "
            f"{theirs.body['version']} by {editor} at {theirs.body['updated_at']}") \
        in result.output
    assert "--force" in result.output
    assert api.settings(account, editor).body["config"]["custom_triggers"] == ["theirs"]

    result = api.cli("config", "set", account, str(mine), "--force", *auth)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"saved: account {account}, version {theirs.body['version'] + 1}"
    assert api.settings(account, editor).body["config"]["custom_triggers"] == ["mine"]
    # A file read from the current version saves without --force.
    assert api.cli("config", "get", account, "--out", str(mine), *auth).exit_code == 0
    result = api.cli("config", "set", account, str(mine), *auth)
    assert result.exit_code == 0, result.output


def test_openapi_description_and_page_are_served(api: Api) -> None:
    with urllib.request.urlopen(api.url() + "/openapi.json", timeout=10) as answer:
        doc = json.loads(answer.read())
    assert doc["openapi"].startswith("3.1")
    ops = {(path, method) for path, item in doc["paths"].items() for method in item
           if method != "parameters"}
    assert {("/accounts/{account_id}/handoff-settings", "get"),
            ("/accounts/{account_id}/handoff-settings", "put"),
            ("/accounts/{account_id}/handoff-settings/history", "get")} <= ops
    put = doc["paths"]["/accounts/{account_id}/handoff-settings"]["put"]
    assert {"200", "401", "403", "422"} <= set(put["responses"])
    with urllib.request.urlopen(api.url() + "/settings", timeout=10) as answer:
        assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
        assert b"Human handoff" in answer.read()
    with pytest.raises(urllib.error.HTTPError) as table:  # Faust's table pages are off
        urllib.request.urlopen(api.url() + f"/table/accounts/{api.accounts[0]}", timeout=10)
    assert table.value.code == 404


# -- the page, in a browser ----------------------------------------------------------------------
#
# Playwright for Python drives Debian's `chromium` package (`executable_path`): no browser is
# downloaded. Clicks and typing go through the browser's input pipeline, so the page's own
# JavaScript handles them as it would a person's. Screenshots go under the test's tmp_path.

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it; "
                             "`apt-get install chromium` here)")
expect.set_options(timeout=30_000)  # a save or a preview goes through the broker


@contextmanager
def browser() -> Iterator[Page]:
    """A fresh headless Chromium page (1280x2000). Sync Playwright runs an event loop in this
    thread until it ends, so the Kafka helpers (`asyncio.run`) are called outside the block."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--disable-gpu", "--disable-dev-shm-usage", "--disable-quic"])
        try:
            page = chromium.new_page(viewport={"width": 1280, "height": 2000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            chromium.close()


def open_settings(page: Page, api: Api, account: str, port: int) -> None:
    page.goto(f"{api.url(port)}/settings?account={account}")
    page.fill("#token", api.tokens[f"{account}-ed"])
    page.click("#load")
    expect(page.locator("#settings")).to_be_visible()


def trigger_values(page: Page) -> list[str]:
    values: list[str] = page.locator("#trigger-list input").evaluate_all(
        "inputs => inputs.map(i => i.value)")
    return values


@needs_chromium
def test_the_settings_page_saves_settings_that_the_stream_applies(api: Api, tmp_path: Path
                                                                  ) -> None:
    account = api.accounts[1]
    before = api.settings(account, f"{account}-ed").body["version"]
    available, unavailable = "Nettleser: vi kobler deg til nå.", "Nettleser: vi svarer snart."

    with browser() as page:
        # The port that does not hold this account: the page's requests are forwarded.
        open_settings(page, api, account, api.ports[0])
        page.check("input[name=process][value=async]")
        page.check("input[name=mode][value=direct]")
        expect(page.locator("#destination")).to_be_visible()
        # Delete every trigger, then add one and save it empty: the 422 shows next to that field.
        triggers = page.locator("#trigger-list li")
        while triggers.count():
            triggers.first.locator(".delete").click()
        expect(triggers).to_have_count(0)
        page.click("#add-trigger")
        expect(triggers).to_have_count(1)
        page.click("#save")
        expect(page.locator("#status")).to_have_text("Not saved (422)")
        expect(triggers.first.locator(".error")).to_have_text(
            "String should have at least 1 character")
        # Saved nothing.
        assert api.settings(account, f"{account}-ed").body["version"] == before

        triggers.first.locator("input").fill("kansellering")
        page.select_option("#destination", "support")
        page.check(f"input[name=assignee][value='user:{account}-ed']")
        page.fill("#msg-available", available)
        page.fill("#msg-unavailable", unavailable)
        page.click("#save")
        expect(page.locator("#status")).to_have_text(f"Saved: version {before + 1}")
        expect(triggers.first.locator(".error")).to_have_text("")  # the old error is gone
        expect(page.locator("#version")).to_have_text(
            re.compile(rf"^Version {before + 1}, saved by {re.escape(account)}-ed"))
        page.screenshot(path=tmp_path / "settings.png", full_page=True)

    saved = api.settings(account, f"{account}-ed").body
    assert saved["config"]["custom_triggers"] == ["kansellering"]
    assert saved["config"]["process"] == "async"
    assert saved["config"]["routing"] == {"mode": "direct", "destination": "support",
                                          "assignees": [{"type": "user", "id": f"{account}-ed"}]}

    api.dep.send(Topic.CHAT_MESSAGES, message("page-1", "Jeg ønsker kansellering",
                                              account=account, conversation="c-page-1"))
    out = api.dep.read([Topic.HANDOFF_EVENTS, Topic.ASSIGNMENTS, Topic.CHAT_OUTBOUND],
                       lambda r: sum(v["conversation_id"] == "c-page-1" for _, v in r) >= 3)
    mine = {t: v for t, v in out if v["conversation_id"] == "c-page-1"}
    handoff = mine["handoff.events"]
    assert (handoff["trigger"]["kind"], handoff["trigger"]["phrase"], handoff["process"],
            handoff["config_version"]) == ("custom_phrase", "kansellering", "async", before + 1)
    assignment = mine["assignments"]
    assert (assignment["inbox_id"], assignment["assignee"], assignment["mode"],
            assignment["config_version"]) == (
        "support", {"type": "user", "id": f"{account}-ed"}, "async", before + 1)
    assert mine["chat.outbound"]["text"] in (available, unavailable)


@needs_chromium
def test_the_settings_page_deletes_a_trigger_and_saves_the_rest(api: Api) -> None:
    account = api.accounts[1]
    editor = f"{account}-ed"
    assert api.put(account, editor, {"custom_triggers": ["alfa", "beta", "gamma"]}).status == 200
    version = api.settings(account, editor).body["version"]

    with browser() as page:
        open_settings(page, api, account, api.ports[1])
        triggers = page.locator("#trigger-list li")
        assert trigger_values(page) == ["alfa", "beta", "gamma"]
        triggers.nth(1).get_by_role("button", name="Delete trigger").click()
        expect(triggers).to_have_count(2)
        assert trigger_values(page) == ["alfa", "gamma"]
        page.get_by_role("button", name="+ Add trigger").click()
        triggers.last.locator("input").fill("delta")
        page.get_by_role("button", name="Save").click()
        expect(page.locator("#status")).to_have_text(f"Saved: version {version + 1}")
    assert api.settings(account, editor).body["config"]["custom_triggers"] == [
        "alfa", "gamma", "delta"]


@needs_chromium
def test_the_settings_page_says_who_saved_meanwhile_and_reloads(api: Api, tmp_path: Path
                                                                ) -> None:
    account = api.accounts[0]
    editor = f"{account}-ed"
    loaded = api.settings(account, editor).body

    with browser() as page:
        open_settings(page, api, account, api.ports[1])
        # Another editor saves after this page loaded the settings.
        theirs = api.put(account, editor, {"custom_triggers": ["their change"]}).body
        assert theirs["version"] == loaded["version"] + 1, theirs
        page.click("#add-trigger")
        page.locator("#trigger-list li").last.locator("input").fill("my change")
        page.click("#save")
        expect(page.locator("#conflict")).to_be_visible()
        expect(page.locator("#conflict-text")).to_have_text(
            f"Changed by {editor} at {theirs['updated_at']} since you loaded it "
            f"(now version {theirs['version']}). Your changes were not saved.")
        expect(page.locator("#status")).to_have_text("Not saved (412)")
        page.screenshot(path=tmp_path / "conflict.png", full_page=True)
        assert api.settings(account, editor).body["config"]["custom_triggers"] == ["their change"]

        page.get_by_role("button", name="Reload settings").click()
        expect(page.locator("#conflict")).to_be_hidden()
        expect(page.locator("#version")).to_have_text(re.compile(rf"^Version {theirs['version']},"))
        # The reload shows their version; my edit is redone on top of it and saves.
        assert trigger_values(page) == ["their change"]
        page.click("#add-trigger")
        page.locator("#trigger-list li").last.locator("input").fill("my change")
        page.click("#save")
        expect(page.locator("#status")).to_have_text(f"Saved: version {theirs['version'] + 1}")
    assert api.settings(account, editor).body["config"]["custom_triggers"] == [
        "their change", "my change"]


# -- impact preview ----------------------------------------------------------------------------


def test_the_preview_counts_are_those_of_handoff_simulate(api: Api, tmp_path: Path) -> None:
    account = api.accounts[1]
    editor = f"{account}-ed"
    assert api.put(account, editor, {"custom_triggers": ["faktura"]}).status == 200
    for i, text in enumerate(["Om levering", "Når åpner dere?", "Jeg har et spørsmål om faktura",
                              "Jeg vil snakke med et menneske"]):
        api.dep.send(Topic.CHAT_MESSAGES, message(f"pv-{i}", text, account=account,
                                                  conversation=f"c-pv-{i}"))
    handoffs(api, {"c-pv-2", "c-pv-3"}, 2)  # the last two: every message is in the log
    proposal = {"custom_triggers": ["levering"], "process": "live",
                "routing": {"mode": "workflow", "workflow_id": f"{account}-wf"}}
    path = f"/accounts/{account}/handoff-settings/preview"
    answer = api.call("POST", path, api.tokens[editor], {"config": proposal},
                      port=api.ports[0])
    assert answer.status == 200, answer.body
    body = answer.body
    assert set(body) >= {"range", "recorded", "proposed", "changed_conversations"}
    # Exactly `handoff simulate --json` over the range the answer names.
    config_file = tmp_path / "proposal.yaml"
    config_file.write_text(yaml.safe_dump({"account_id": account, "config": proposal}))
    result = api.cli("simulate", "--json", "--quiet", "--config", str(config_file),
                     "--from-time", body["range"]["from"], "--to-time", body["range"]["to"])
    assert result.exit_code == 0, result.output
    simulated = json.loads(result.stdout)
    for ours, theirs in (("recorded", "recorded"), ("proposed", "what_if")):
        side = simulated[theirs]
        assert (body[ours]["handoffs"], body[ours]["unassigned"], body[ours]["tickets"]) == (
            side["handoffs"], side["unassigned"], side["tickets"])
        assert body[ours]["by_trigger"] == side["by_trigger_kind"]
        assert body[ours]["by_assignee"] == {
            k.split(" ", 1)[1]: v for k, v in side["by_assignee"].items() if k != "(unassigned)"}
    assert body["changed_conversations"] == simulated["changed"]["count"]
    # What it says: the faktura handoff goes, levering comes, and all become tickets.
    assert body["recorded"]["by_trigger"]["custom_phrase"] >= 1
    assert body["proposed"]["tickets"] == body["proposed"]["handoffs"] >= 2
    assert body["changed_conversations"] >= 2  # c-pv-0 now hands off, c-pv-2 no more
    # The default range is the last 7 days.
    start = datetime.fromisoformat(body["range"]["from"])
    end = datetime.fromisoformat(body["range"]["to"])
    assert abs((end - start).total_seconds() - 7 * 86400) < 1
    # Nothing was saved, and it is not a change attempt.
    assert api.settings(account, editor).body["config"]["custom_triggers"] == ["faktura"]


def test_a_preview_that_is_not_ready_answers_202_and_a_link_to_poll(api: Api) -> None:
    account = api.accounts[1]
    token = api.tokens[f"{account}-ed"]
    path = f"/accounts/{account}/handoff-settings/preview"
    started = api.call("POST", path, token, {"config": {"process": "none"}, "wait_s": 0},
                       port=api.ports[0])
    assert started.status == 202, started.body
    poll = started.body["poll"]
    assert started.headers["Location"] == poll and poll.startswith(path + "/")
    assert started.body["status"] == "running"

    def ready() -> Answer | None:
        # Either worker: the poll is forwarded to the one running the preview.
        answer = api.call("GET", poll, token, port=api.ports[1])
        assert answer.status in (200, 202), answer.body
        return answer if answer.status == 200 else None

    done = until(ready, timeout=60, what="the preview")
    assert done.body["proposed"]["handoffs"] == 0  # process none: nothing is handed off
    assert done.body["recorded"]["handoffs"] >= 2


def test_the_preview_refuses_what_a_put_refuses(api: Api) -> None:
    account = api.accounts[1]
    path = f"/accounts/{account}/handoff-settings/preview"
    bad = api.call("POST", path, api.tokens[f"{account}-ed"],
                   {"config": {"proces": "none"}, "from": "yesterday"})
    assert bad.status == 422
    assert [e["field"] for e in bad.body["errors"]] == ["from", "config.proces"]
    assert api.call("POST", path, api.tokens[f"{account}-viewer"],
                    {"config": {}}).status == 403
    missing = api.call("GET", path + "/0123456789abcdef", api.tokens[f"{account}-ed"])
    assert missing.status == 404


@needs_chromium
def test_the_settings_page_previews_the_impact_of_the_form(api: Api, tmp_path: Path) -> None:
    account = api.accounts[1]
    editor = f"{account}-ed"
    before = api.settings(account, editor).body

    with browser() as page:
        open_settings(page, api, account, api.ports[0])
        page.click("#add-trigger")
        page.locator("#trigger-list li").last.locator("input").fill("levering")
        page.get_by_role("button", name="Preview impact").click()
        expect(page.locator("#status")).to_have_text("Preview ready: nothing was saved")
        expect(page.locator("#impact")).to_be_visible()
        rows: list[list[str]] = page.locator("#impact-table tbody tr").evaluate_all(
            "trs => trs.map(tr => Array.from(tr.cells).map(td => td.textContent))")
        changed = page.locator("#impact-changed").text_content()
        bars = page.locator("#impact-chart rect").count()
        page.screenshot(path=tmp_path / "preview.png", full_page=True)

    config = {**before["config"],
              "custom_triggers": [*before["config"]["custom_triggers"], "levering"]}
    expected = api.call("POST", f"/accounts/{account}/handoff-settings/preview",
                        api.tokens[editor], {"config": config})
    assert expected.status == 200, expected.body
    want = expected.body
    table = {r[0]: r[1:] for r in rows if len(r) == 4}
    for label, key in (("Handoffs", "handoffs"), ("Left unassigned", "unassigned"),
                       ("Tickets created", "tickets")):
        a, b = want["recorded"][key], want["proposed"][key]
        assert table[label] == [str(a), str(b), f"+{b - a}" if b > a else str(b - a)]
    kinds = set(want["recorded"]["by_trigger"]) | set(want["proposed"]["by_trigger"])
    assert {k.replace("_", " ") for k in kinds} <= set(table)
    assert ["By trigger"] in rows
    assignees = set(want["recorded"]["by_assignee"]) | set(want["proposed"]["by_assignee"])
    assert (["By assignee"] in rows) == bool(assignees)
    assert changed == f"Conversations whose outcome changes: {want['changed_conversations']}"
    assert bars == 2 * (3 + len(kinds))  # recorded and proposed, per count
    assert api.settings(account, editor).body == before


# -- replay (last: after every other test's requests) ----------------------------------------


def test_replay_reproduces_every_config_change_byte_for_byte(api: Api) -> None:
    """Refusals by the API included: they are decided from the account log like the rest."""
    from tests.e2e.test_replay_audit import _raw

    prefix = api.dep.prefix + "replay."
    result = api.cli("replay", "--to-prefix", prefix)
    assert result.exit_code == 0, result.output
    live = asyncio.run(_raw(api.dep.settings, {
        api.dep.settings.topic(Topic.CONFIG_CHANGES): "live"}))
    replayed = asyncio.run(_raw(api.dep.settings, {
        f"{prefix}{Topic.CONFIG_CHANGES.value}": "replayed"}))
    assert sorted(v for _, _, v in replayed) == sorted(v for _, _, v in live)
    refused = [json.loads(v) for _, _, v in live if b'"accepted":false' in v]
    assert {r["actor"] for r in refused} >= {f"{api.accounts[0]}-viewer",
                                             f"{api.accounts[1]}-ed"}
    assert any(r["reason"].startswith("the settings changed since version") for r in refused)
