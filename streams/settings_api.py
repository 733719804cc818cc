"""The settings API and page on the worker's web server (Faust's own, aiohttp underneath).

    GET  /accounts/{account_id}/handoff-settings           the current settings and version
    PUT  /accounts/{account_id}/handoff-settings           publish a config request, answer its outcome
    GET  /accounts/{account_id}/handoff-settings/history   accepted versions, newest first
    POST /accounts/{account_id}/handoff-settings/validate  check without saving (extension)
    GET  /accounts/{account_id}/handoff-settings/options   inboxes, users, teams, workflows (extension)
    POST /accounts/{account_id}/handoff-settings/preview   what-if of proposed settings (v1.1)
    GET  /accounts/{account_id}/handoff-settings/preview/{id}  a preview that answered 202
    GET  /openapi.json, GET /settings                       the description and the settings page

Who: `Authorization: Bearer <token>`; the token (see handoff/api/tokens.py) names a directory
user, who must hold `customer_agent.edit` in that account (for reading too: the settings are
the editor's). The directory and the settings live in the `accounts` and `settings` tables,
which Faust partitions like `handoff.account-events`: each account's rows are on the worker
that holds that account's partition. A request that reaches another worker is authenticated
there (401 costs no hop) and then forwarded, body and all, to the holder (Faust's own
`@app.table_route` would drop a PUT's body and hash keys as the table codec spells them), which
answers from its tables. Every worker reads all tokens, so any of them can take any request.

A PUT is checked first with the same functions the stream uses (`handoff/core/settings.py`);
a good one is published to `handoff.config.requests` and the answer is the
`handoff.config.changes` record the stream makes of it (the stream decides: the version, and a
refusal when the directory or the version changed in between).

Refusals are audited (contract v1.1) by the stream, not here: a PUT this API refuses (403 for
an authenticated user, 412, 422) is published too, marked `refused` with the reason, and the
stream records it on `handoff.config.changes` like its own refusals. One writer per account
(the account's task), one record per request (its id is derived from the request's, and the
stream drops a request sequenced twice), and `handoff replay` reproduces it from the account
log like every other output. A request without a valid token (401) names nobody: it is logged.

Concurrent editors: GET answers `ETag: "<version>"`; a PUT with `If-Match` is refused with 412
(and the current version, who saved it and when) unless that version is current, here first
and again by the stream (`if_version`), so a save that raced another one is refused too.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust import web
from pydantic import BaseModel, ValidationError

from handoff.api.openapi import openapi_document
from handoff.api.preview import SYNC_WAIT_S, PreviewError, Previews, default_range
from handoff.api.tokens import TokenStore, topic_partitions
from handoff.core.engine import STALE_PREFIX, derive_id, stale_reason
from handoff.core.settings import FieldError, check_config, check_permission, unknown_fields
from handoff.core.state import AccountSettings, AccountState
from handoff.core.store import Overlay, StateReader, Table
from handoff.history import parse_time
from handoff.kafka_clients import client_kwargs
from schemas.api import (
    ConflictBody,
    ErrorBody,
    FieldErrorBody,
    HistoryBody,
    OptionInbox,
    OptionsBody,
    OptionUser,
    OptionWorkflow,
    PreviewBody,
    PreviewPending,
    SettingsBody,
    ValidationBody,
)
from schemas.codec import dumps
from schemas.inputs import MAX_REFUSAL_LENGTH, ConfigRequest
from schemas.outputs import ConfigChange
from schemas.topics import Topic, partition_for
from streams.topology import Topology

log = logging.getLogger(__name__)

# How long a PUT waits for the stream's outcome before answering 504 (the request stays
# published; its outcome shows in the history).
OUTCOME_TIMEOUT_S = 15.0
FORWARDED_HEADER = "X-Handoff-Forwarded"
SERVED_BY_HEADER = "X-Handoff-Served-By"  # the worker that answered (after any forwarding)
MAX_HISTORY = 1000
_STATIC = ("settings.html", "settings.js", "settings.css")
_CONTENT_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
_PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class Refusal(Exception):
    """An answer other than 200, with the body every refusal has."""

    def __init__(self, status: int, error: str, errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None, body: ErrorBody | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.errors = list(errors or [])
        self.body = body or ErrorBody(error=error, errors=[
            FieldErrorBody(field=e.field, message=e.message) for e in self.errors])
        self.headers = headers or {}
        # Already on `handoff.config.changes` (the stream refused it): not to be audited again.
        self.audited = False

    @property
    def reason(self) -> str:
        """The refusal in the words the stream uses on `handoff.config.changes`."""
        listed = "; ".join(str(e) for e in self.errors)
        if any(e.field for e in self.errors):
            return listed  # as the stream says it: each field and what to fix
        return f"{self}: {listed}" if listed else str(self)


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(header: str | None) -> set[int] | None:
    """The versions an `If-Match` header accepts; None when any will do (absent, `*`).

    An entity tag that is not one of ours matches no version (RFC 9110: 412).
    """
    if header is None or not header.strip() or header.strip() == "*":
        return None
    versions: set[int] = set()
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/").strip()
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag.isdigit() and len(tag) < 19:
            versions.add(int(tag))
    return versions


@dataclass
class Feed:
    """What every worker reads beside Faust's consumer group, with its own group-less consumer:
    all of `handoff.api-tokens` from the beginning, and `handoff.config.changes` from now on
    (to hand each outcome to the PUT waiting for it). Also publishes the config requests."""

    topology: Topology
    tokens: TokenStore = field(default_factory=TokenStore)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: dict[str, asyncio.Future[ConfigChange]] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)
    producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        """Read until the worker stops; start over after a broker error."""
        while True:
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("settings API feed failed; starting again in 2 s")
                self.ready.clear()
                await asyncio.sleep(2.0)

    async def _run_once(self) -> None:
        settings = self.topology.settings
        names = {t: settings.topic(t) for t in (Topic.API_TOKENS, Topic.CONFIG_CHANGES,
                                                Topic.ACCOUNT_EVENTS)}
        consumer = AIOKafkaConsumer(**client_kwargs(settings), group_id=None,
                                    enable_auto_commit=False, isolation_level="read_committed")
        producer = AIOKafkaProducer(**client_kwargs(settings), acks="all",
                                    enable_idempotence=True, linger_ms=1)
        await consumer.start()
        await producer.start()
        try:
            while True:
                known = await topic_partitions(consumer, list(names.values()))
                found = {t: known[n] for t, n in names.items()}
                if all(found.values()):
                    break
                missing = sorted(names[t] for t, p in found.items() if not p)
                log.warning("settings API waits for topics %s (run `handoff topics create`)",
                            missing)
                await asyncio.sleep(2.0)
            self.partitions = {names[t]: len(p) for t, p in found.items()}
            token_tps = [TopicPartition(names[Topic.API_TOKENS], p)
                         for p in sorted(found[Topic.API_TOKENS])]
            change_tps = [TopicPartition(names[Topic.CONFIG_CHANGES], p)
                          for p in sorted(found[Topic.CONFIG_CHANGES])]
            consumer.assign([*token_tps, *change_tps])
            await consumer.seek_to_beginning(*token_tps)
            await consumer.seek_to_end(*change_tps)
            for tp in change_tps:
                await consumer.position(tp)  # fix "the end" now: later outcomes are all seen
            token_ends = await consumer.end_offsets(token_tps)
            # Read afresh on every start: a tombstone compacted away since must not leave an
            # old record behind.
            self.tokens = TokenStore()
            self.producer = producer
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, messages in batch.items():
                    for m in messages:
                        if tp.topic == names[Topic.API_TOKENS]:
                            self.tokens.apply(m.key, m.value)
                        else:
                            self._outcome(m.value)
                if not self.ready.is_set():
                    positions = [await consumer.position(tp) for tp in token_tps]
                    if all(p >= token_ends[tp] for p, tp in zip(positions, token_tps, strict=True)):
                        log.info("settings API ready: %d tokens known", len(self.tokens.records))
                        self.ready.set()
        finally:
            self.producer = None
            await producer.stop()
            await consumer.stop()

    def _outcome(self, value: bytes | None) -> None:
        if value is None:
            return
        try:
            change = ConfigChange.model_validate_json(value)
        except ValidationError:
            return
        waiter = self.waiters.get(change.event_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(change)

    async def publish(self, topic: Topic, key: str, value: bytes) -> None:
        producer = self.producer
        if producer is None:
            raise Refusal(503, "the worker is not connected to Kafka yet; try again",
                          headers={"Retry-After": "2"})
        await producer.send_and_wait(self.topology.settings.topic(topic), value=value,
                                     key=key.encode())


class SettingsApi:
    """The handlers, over one worker's topology and feed."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.app = topology.app
        self.feed = Feed(topology)
        self.loop = topology.loop
        self.previews = Previews()

    @property
    def me(self) -> str:
        return str(self.app.conf.canonical_url).rstrip("/")

    # -- who asks, and which worker answers ------------------------------------------------

    def authenticate(self, request: web.Request) -> str:
        """The directory user of the request's bearer token (401 otherwise)."""
        challenge = {"WWW-Authenticate": 'Bearer realm="handoff"'}
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refusal(401, "missing bearer token: send Authorization: Bearer <token> "
                               "(made by `handoff token create USER_ID`)", headers=challenge)
        if not self.feed.ready.is_set():
            raise Refusal(503, "the worker is still reading the API tokens; try again",
                          headers={"Retry-After": "2"})
        user = self.feed.tokens.user_for(token.strip())
        if user is None:
            raise Refusal(401, "unknown or revoked token", headers={
                **challenge, "WWW-Authenticate": 'Bearer realm="handoff", error="invalid_token"'})
        return user

    def owner(self, account_id: str) -> str | None:
        """None when this worker holds the account's partition, else the holder's URL."""
        name = self.topology.settings.topic(Topic.ACCOUNT_EVENTS)
        count = self.feed.partitions.get(name)
        busy = Refusal(503, "the workers are rebalancing partitions; try again",
                       headers={"Retry-After": "2"})
        if not count or self.loop.rebalancing:
            raise busy
        partition = partition_for(account_id, count)
        if self.loop.reader(partition) is not None:
            return None
        url = self.loop.owner(partition)
        if url and url.rstrip("/") != self.me:
            return url
        raise busy  # ours but still restoring, or nobody's until the group settles

    def state(self, account_id: str) -> Overlay:
        """The committed state of the account's task on this worker (503 if it moved)."""
        count = self.feed.partitions.get(self.topology.settings.topic(Topic.ACCOUNT_EVENTS))
        reader: StateReader | None = (self.loop.reader(partition_for(account_id, count))
                                      if count else None)
        if reader is None:
            raise Refusal(503, "the account's partition is moving; try again",
                          headers={"Retry-After": "2"})
        return Overlay(reader)

    async def forward(self, view: web.View, request: web.Request, url: str) -> web.Response:
        """Send the request on to the worker that holds the account, and relay its answer."""
        if request.headers.get(FORWARDED_HEADER):
            # Forwarded to us, but we do not hold it (the assignment moved meanwhile).
            raise Refusal(503, "the account's partition is moving; try again",
                          headers={"Retry-After": "2"})
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("authorization", "content-type", "accept", "if-match")}
        headers[FORWARDED_HEADER] = self.me
        target = url.rstrip("/") + str(request.rel_url)
        body = await request.read()
        session: Any = self.app.http_client
        try:
            async with session.request(request.method, target, headers=headers, data=body,
                                       timeout=aiohttp.ClientTimeout(
                                           total=OUTCOME_TIMEOUT_S + 10)) as answer:
                data = await answer.read()
                extra = {k: answer.headers[k] for k in (
                    "WWW-Authenticate", "Retry-After", "Cache-Control", "ETag", "Location",
                    SERVED_BY_HEADER)
                    if k in answer.headers}
                return view.bytes(data, content_type=answer.content_type, status=answer.status,
                                  headers=extra)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Refusal(503, f"the worker holding this account did not answer ({exc!r}); "
                               "try again", headers={"Retry-After": "2"}) from None

    async def serve(self, view: web.View, request: web.Request, account_id: str,
                    handler: Callable[[web.Request, str, str, AccountState],
                                      Awaitable[tuple[int, BaseModel]]],
                    change: bool = False) -> web.Response:
        """Authenticate, route to the account's worker, check the permission, then handle.

        `change`: the request attempts a settings change, so a 403 is audited.
        """
        try:
            try:
                user = self.authenticate(request)
            except Refusal as refused:
                if change and refused.status == 401:
                    log.warning("settings change for account %s refused (401, no actor): %s",
                                account_id, refused)
                raise
            url = self.owner(account_id)
            if url is not None:
                return await self.forward(view, request, url)
            account = self.state(account_id).account(account_id)
            refusal = check_permission(ConfigRequest(
                event_id="api-permission-check", account_id=account_id, actor=user,
                occurred_at=datetime.now(UTC), config={}), account)
            if refusal is not None:
                if change:
                    await self.audit(request, account_id, user, Refusal(403, refusal))
                raise Refusal(403, refusal)
            status, body = await handler(request, account_id, user, account)
            headers = {SERVED_BY_HEADER: self.me}
            if isinstance(body, SettingsBody):
                headers["ETag"] = etag(body.version)
            if isinstance(body, PreviewPending):
                headers["Location"] = body.poll
            return json_response(view, status, body, headers)
        except Refusal as refused:
            return json_response(view, refused.status, refused.body,
                                 {SERVED_BY_HEADER: self.me, **refused.headers})

    # -- config requests -------------------------------------------------------------------

    async def submit(self, config_request: ConfigRequest) -> ConfigChange:
        """Publish a config request and wait for the stream's outcome (504 if it is late)."""
        body = dumps(config_request)
        change_id = derive_id("config-change", config_request.account_id,
                              config_request.event_id)
        waiter: asyncio.Future[ConfigChange] = asyncio.get_running_loop().create_future()
        self.feed.waiters[change_id] = waiter
        try:
            await self.feed.publish(Topic.CONFIG_REQUESTS, config_request.account_id, body)
            return await asyncio.wait_for(waiter, OUTCOME_TIMEOUT_S)
        except TimeoutError:
            raise Refusal(504, f"config request {config_request.event_id} was published but "
                               f"its outcome did not arrive within {OUTCOME_TIMEOUT_S:.0f} s; "
                               "look at the history before saving again") from None
        finally:
            self.feed.waiters.pop(change_id, None)

    async def audit(self, request: web.Request, account_id: str, user: str,
                    refused: Refusal) -> None:
        """Have the stream record a change this API refused, once (contract v1.1).

        Published as a config request marked `refused`, so the account's task writes the
        `handoff.config.changes` record as it writes its own; waits for it, so that the
        refusal is on the topic when the caller gets its answer.
        """
        try:
            raw = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raw = None
        reason = refused.reason
        if len(reason) > MAX_REFUSAL_LENGTH:
            reason = reason[:MAX_REFUSAL_LENGTH - 1] + "…"
        event_id = f"api-{uuid.uuid4().hex}"
        attempt = ConfigRequest(event_id=event_id, account_id=account_id, actor=user,
                                occurred_at=datetime.now(UTC),
                                config=raw if isinstance(raw, dict) else {}, refused=reason)
        if len(dumps(attempt)) > self.topology.settings.max_record_bytes:
            attempt = attempt.model_copy(update={"config": {}})  # the reason says enough
        try:
            await self.submit(attempt)
        except Refusal as late:
            if late.status != 504:
                raise  # not published (no broker): the caller may try again
            log.warning("refused config request %s published; its record is late", event_id)

    # -- the handlers (run on the account's worker, after the checks) ----------------------

    def current(self, account_id: str) -> AccountSettings:
        return self.state(account_id).settings(account_id)

    async def get_settings(self, request: web.Request, account_id: str, user: str,
                           account: AccountState) -> tuple[int, BaseModel]:
        return 200, settings_body(self.current(account_id))

    async def get_history(self, request: web.Request, account_id: str, user: str,
                          account: AccountState) -> tuple[int, BaseModel]:
        try:
            limit = max(1, min(int(request.query.get("limit", "100")), MAX_HISTORY))
        except ValueError:
            raise Refusal(422, "limit must be a whole number",
                          [FieldError("limit", f"a whole number from 1 to {MAX_HISTORY}")]) from None
        latest = self.current(account_id).version
        store = self.state(account_id)
        versions = []
        for version in range(latest, max(0, latest - limit), -1):
            found = store.get(Table.SETTINGS_HISTORY, f"{account_id}#{version}")
            if found is not None:
                versions.append(settings_body(AccountSettings.model_validate(
                    found.model_dump() if isinstance(found, BaseModel) else found)))
        return 200, HistoryBody(account_id=account_id, versions=versions)

    async def get_options(self, request: web.Request, account_id: str, user: str,
                          account: AccountState) -> tuple[int, BaseModel]:
        return 200, OptionsBody(
            account_id=account_id,
            inboxes=[OptionInbox(id=i.id, name=i.name or i.id, type=i.type)
                     for i in account.inboxes.values()],
            users=[OptionUser(id=u.id, name=u.name or u.id, languages=list(u.languages))
                   for u in account.users.values()],
            teams=[OptionUser(id=t.id, name=t.name or t.id) for t in account.teams.values()],
            workflows=[OptionWorkflow(workflow_id=w.workflow_id, name=w.name or w.workflow_id)
                       for w in account.workflows.values()])

    async def checked(self, request: web.Request, account: AccountState) -> dict[str, Any]:
        """The body as a config the stream would accept now (422 with every error otherwise)."""
        try:
            raw = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise Refusal(422, "the body is not JSON", [FieldError("", str(exc))]) from None
        if not isinstance(raw, dict):
            raise Refusal(422, "the body must be a JSON object: the settings' config",
                          [FieldError("", "expected an object such as {\"process\": \"live\"}")])
        errors = unknown_fields(raw)
        _, invalid = check_config(raw, account)
        if errors or invalid:
            raise Refusal(422, "invalid settings", [*errors, *invalid])
        return raw

    async def validate(self, request: web.Request, account_id: str, user: str,
                       account: AccountState) -> tuple[int, BaseModel]:
        raw = await self.checked(request, account)
        config, _ = check_config(raw, account)
        assert config is not None
        return 200, ValidationBody(valid=True, config=config)

    def conflict(self, account_id: str, based_on: int | None) -> Refusal:
        """412: the settings are no longer at the version the change was based on."""
        current = self.current(account_id)
        if based_on is None:  # an If-Match that is not one of our entity tags
            reason = (f"If-Match names no version of these settings (send the ETag of a GET, "
                      f"{etag(current.version)} now): "
                      + stale_reason(current, current.version).partition(": ")[2])
        else:
            reason = stale_reason(current, based_on)
        return Refusal(412, reason, headers={"ETag": etag(current.version)}, body=ConflictBody(
            error=reason, version=current.version, actor=current.actor,
            updated_at=current.occurred_at))

    async def put_settings(self, request: web.Request, account_id: str, user: str,
                           account: AccountState) -> tuple[int, BaseModel]:
        try:
            return await self._put(request, account_id, user, account)
        except Refusal as refused:
            if refused.status in (412, 422) and not refused.audited:
                await self.audit(request, account_id, user, refused)
            raise

    async def _put(self, request: web.Request, account_id: str, user: str,
                   account: AccountState) -> tuple[int, BaseModel]:
        accepted_versions = if_match(request.headers.get("If-Match"))
        based_on: int | None = None
        if accepted_versions is not None:
            version = self.current(account_id).version
            if version not in accepted_versions:
                raise self.conflict(account_id, min(accepted_versions, default=None))
            based_on = version
        raw = await self.checked(request, account)
        event_id = f"api-{uuid.uuid4().hex}"
        attempt = ConfigRequest(event_id=event_id, account_id=account_id, actor=user,
                                occurred_at=datetime.now(UTC), config=raw, if_version=based_on)
        size = len(dumps(attempt))
        limit = self.topology.settings.max_record_bytes
        if size > limit:
            raise Refusal(422, "settings too large", [FieldError(
                "", f"the request is {size} bytes, over the limit of {limit} "
                    "(HANDOFF_MAX_RECORD_BYTES): fewer or shorter custom triggers")])
        change = await self.submit(attempt)
        if not change.accepted and based_on is not None and (
                self.current(account_id).version != based_on
                or (change.reason or "").startswith(STALE_PREFIX)):
            # Another save was decided first: the stream refused this one as stale (and
            # recorded it: no second record).
            stale = self.conflict(account_id, based_on)
            stale.audited = True
            raise stale
        if not change.accepted:
            # Refused by the stream although the check passed here: the directory changed in
            # between. Name the fields again from the directory as it is now, if they are.
            now = self.state(account_id).account(account_id)
            _, errors = check_config(raw, now)
            refused = Refusal(422, change.reason or "refused", errors or [
                FieldError("", change.reason or "refused")])
            refused.audited = True  # the stream's own refusal, recorded already
            raise refused
        saved = self.current(account_id)
        if saved.version != change.version:  # the partition moved away meanwhile
            config, _ = check_config(raw, account)
            assert config is not None and change.version is not None
            saved = AccountSettings(account_id=account_id, version=change.version, config=config,
                                    actor=user, event_id=event_id, occurred_at=change.occurred_at)
        return 200, settings_body(saved)


    # -- impact preview (contract v1.1) ----------------------------------------------------

    async def preview(self, request: web.Request, account_id: str, user: str,
                      account: AccountState) -> tuple[int, BaseModel]:
        """What the proposed settings would have done to the account's recorded traffic."""
        try:
            raw = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise Refusal(422, "the body is not JSON", [FieldError("", str(exc))]) from None
        if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
            raise Refusal(422, "the body must be {\"config\": {...}, \"from\": ..., \"to\": ...}",
                          [FieldError("config", "the proposed settings, as in a PUT")])
        bounds: dict[str, datetime | None] = {}
        errors: list[FieldError] = []
        for name in ("from", "to"):
            value = raw.get(name)
            if value is None:
                bounds[name] = None
                continue
            try:
                if not isinstance(value, str):
                    raise ValueError("not a string")
                bounds[name] = parse_time(value)
            except ValueError as exc:
                errors.append(FieldError(name, f"an RFC 3339 time such as "
                                               f"2026-11-26T10:00:00Z ({exc})"))
        wait = raw.get("wait_s", SYNC_WAIT_S)  # extension: answer 202 sooner
        if isinstance(wait, bool) or not isinstance(wait, int | float) \
                or not 0 <= wait <= SYNC_WAIT_S:
            errors.append(FieldError("wait_s", f"seconds from 0 to {SYNC_WAIT_S:g} to wait "
                                               "before answering 202"))
            wait = SYNC_WAIT_S
        config = raw["config"]
        errors += [FieldError(f"config.{e.field}" if e.field else "config", e.message)
                   for e in [*unknown_fields(config), *check_config(config, account)[1]]]
        if errors:
            raise Refusal(422, "invalid preview", errors)
        try:
            start, end = default_range(datetime.now(UTC), bounds["from"], bounds["to"])
            job = self.previews.start(account_id, config, start, end)
        except PreviewError as exc:
            raise Refusal(exc.status, str(exc), [FieldError("to", str(exc))]
                          if exc.status == 422 else None) from None
        return await self.preview_answer(request, account_id, job.job_id, float(wait))

    async def preview_answer(self, request: web.Request, account_id: str, job_id: str,
                             wait: float) -> tuple[int, BaseModel]:
        job = self.previews.get(account_id, job_id)
        if job is None:
            raise Refusal(404, f"no preview {job_id} of account {account_id} on this worker "
                               "(finished previews are kept 10 minutes); run it again")
        try:
            result = await self.previews.wait(job, wait)
        except PreviewError as exc:
            raise Refusal(exc.status, str(exc)) from None
        if result is None:
            poll = (f"/accounts/{quote(account_id, safe='')}/handoff-settings/preview/"
                    f"{job_id}")
            return 202, PreviewPending(status="running", poll=poll,
                                       started_at=datetime.now(UTC) - timedelta(
                                           seconds=time.monotonic() - job.started))
        return 200, PreviewBody.model_validate(result)


def settings_body(settings: AccountSettings) -> SettingsBody:
    return SettingsBody(account_id=settings.account_id, version=settings.version,
                        config=settings.config, actor=settings.actor,
                        event_id=settings.event_id, updated_at=settings.occurred_at)


def json_response(view: web.View, status: int, body: BaseModel,
                  headers: dict[str, str] | None = None) -> web.Response:
    return view.bytes(body.model_dump_json(by_alias=True).encode(),
                      content_type="application/json",
                      status=status, headers={"Cache-Control": "no-store", **(headers or {})})


def static_file(name: str) -> bytes:
    return resources.files("handoff.api").joinpath("static", name).read_bytes()


def register_settings_api(topology: Topology) -> None:
    """Attach the settings API, its OpenAPI description and the settings page."""
    if topology.settings.web_port == 0:
        return  # the web server is off: no API, and no consumer reading for it
    app = topology.app
    api = SettingsApi(topology)
    app.task(api.feed.run)
    base = "/accounts/{account_id}/handoff-settings"

    @app.page(base, name="settings-api")
    class SettingsView(web.View):
        async def get(self, request: web.Request, account_id: str) -> web.Response:
            return await api.serve(self, request, account_id, api.get_settings)

        async def put(self, request: web.Request, account_id: str) -> web.Response:
            return await api.serve(self, request, account_id, api.put_settings, change=True)

    @app.page(base + "/history", name="settings-api-history")
    class HistoryView(web.View):
        async def get(self, request: web.Request, account_id: str) -> web.Response:
            return await api.serve(self, request, account_id, api.get_history)

    @app.page(base + "/validate", name="settings-api-validate")
    class ValidateView(web.View):
        async def post(self, request: web.Request, account_id: str) -> web.Response:
            return await api.serve(self, request, account_id, api.validate)

    @app.page(base + "/options", name="settings-api-options")
    class OptionsView(web.View):
        async def get(self, request: web.Request, account_id: str) -> web.Response:
            return await api.serve(self, request, account_id, api.get_options)

    @app.page(base + "/preview", name="settings-api-preview")
    class PreviewView(web.View):
        async def post(self, request: web.Request, account_id: str) -> web.Response:
            return await api.serve(self, request, account_id, api.preview)

    @app.page(base + "/preview/{job_id}", name="settings-api-preview-poll")
    class PreviewPollView(web.View):
        async def get(self, request: web.Request, account_id: str, job_id: str
                      ) -> web.Response:
            async def poll(request: web.Request, account_id: str, user: str,
                           account: AccountState) -> tuple[int, BaseModel]:
                return await api.preview_answer(request, account_id, job_id, 0.0)

            return await api.serve(self, request, account_id, poll)

    document = orjson.dumps(openapi_document())

    @app.page("/openapi.json", name="settings-api-openapi")
    async def openapi(self: web.View, request: web.Request) -> web.Response:
        return self.bytes(document, content_type="application/json")

    files = {name: static_file(name) for name in _STATIC}
    page_headers = {"Content-Security-Policy": _PAGE_POLICY, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

    @app.page("/settings", name="settings-page")
    async def page(self: web.View, request: web.Request) -> web.Response:
        return self.bytes(files["settings.html"], content_type="text/html",
                          headers=page_headers)

    @app.page("/settings/{name}", name="settings-page-assets")
    async def asset(self: web.View, request: web.Request, name: str) -> web.Response:
        if name not in files:
            return json_response(self, 404, ErrorBody(error=f"no such file: {name}"))
        kind = _CONTENT_TYPES[name.rsplit(".", 1)[1]]
        return self.bytes(files[name], content_type=kind, headers=page_headers)
