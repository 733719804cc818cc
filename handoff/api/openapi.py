"""The OpenAPI 3.1 description of the settings API, with schemas generated from the models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from schemas.api import (
    ConflictBody,
    ErrorBody,
    HistoryBody,
    OptionsBody,
    PreviewBody,
    PreviewPending,
    SettingsBody,
    ValidationBody,
)
from schemas.settings import HandoffConfig

_REF = "#/components/schemas/{model}"
_ACCOUNT = {"name": "account_id", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "the account whose customer agent's handoff settings these are"}

# Who may call what, in the words of the contract.
_REFUSALS = {
    "401": "no token, or an unknown, forged or revoked one",
    "403": "the token's user is not a user of this account or lacks customer_agent.edit",
    "503": "the workers are starting or rebalancing; retry after Retry-After seconds",
}


def openapi_document() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (HandoffConfig, "validation"), (SettingsBody, "serialization"),
        (HistoryBody, "serialization"), (ValidationBody, "serialization"),
        (OptionsBody, "serialization"), (ErrorBody, "serialization"),
        (ConflictBody, "serialization"), (PreviewBody, "serialization"),
        (PreviewPending, "serialization")]
    refs, defs = models_json_schema(models, ref_template=_REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return {"content": {"application/json": {"schema": refs[(model, mode)]}}}

    def answers(ok: type[BaseModel], description: str, *extra: str) -> dict[str, Any]:
        out: dict[str, Any] = {"200": {"description": description, **ref(ok)}}
        codes = {**_REFUSALS, **{c: _EXTRA[c] for c in extra}}
        for code, text in sorted(codes.items()):
            out[code] = {"description": text, **ref(ErrorBody)}
        return out

    etag_header = {"ETag": {"description": "the settings' version as an entity tag (`\"3\"`); "
                                           "send it back in `If-Match`",
                            "schema": {"type": "string"}}}
    get_answers = answers(SettingsBody, "the settings and their version (0: the defaults)")
    get_answers["200"]["headers"] = etag_header
    put_answers = answers(SettingsBody, "accepted: the new version", "422", "504")
    put_answers["200"]["headers"] = etag_header
    put_answers["412"] = {"description": _EXTRA["412"], "headers": etag_header,
                          **ref(ConflictBody)}
    preview_answers = answers(PreviewBody, "recorded against proposed, and the number of "
                                           "conversations whose outcome changes",
                              "404", "422", "429", "504")
    preview_answers["202"] = {"description": "still running: poll the `Location` (also "
                                             "`poll` in the body)", **ref(PreviewPending)}
    config_body = {"required": True, "description": "the `config` object of a config request",
                   **ref(HandoffConfig, "validation")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Handoff settings API",
            "version": "1",
            "description": "Read and change the human-handoff settings of an account's AI "
                           "customer agent. A change is published to `handoff.config.requests` "
                           "and answered with the stream's outcome on `handoff.config.changes`.",
        },
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "a token from `handoff token create USER_ID`"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/accounts/{account_id}/handoff-settings": {
                "parameters": [_ACCOUNT],
                "get": {"operationId": "getHandoffSettings", "summary": "the current settings",
                        "responses": get_answers},
                "put": {"operationId": "putHandoffSettings",
                        "summary": "replace the settings; answers once the stream decided",
                        "description": "Every refusal of a known user (403, 412, 422) is "
                                       "recorded on `handoff.config.changes` with "
                                       "`accepted: false`, the actor and the reason.",
                        "parameters": [{
                            "name": "If-Match", "in": "header", "required": False,
                            "schema": {"type": "string"},
                            "description": "the `ETag` of the GET the change was based on: "
                                           "saved only if that version is still the current "
                                           "one, else 412"}],
                        "requestBody": config_body,
                        "responses": put_answers},
            },
            "/accounts/{account_id}/handoff-settings/history": {
                "parameters": [_ACCOUNT, {"name": "limit", "in": "query", "required": False,
                                          "schema": {"type": "integer", "minimum": 1,
                                                     "maximum": 1000, "default": 100}}],
                "get": {"operationId": "getHandoffSettingsHistory",
                        "summary": "accepted versions, newest first",
                        "responses": answers(HistoryBody, "the versions", "422")},
            },
            "/accounts/{account_id}/handoff-settings/validate": {
                "parameters": [_ACCOUNT],
                "post": {"operationId": "validateHandoffSettings",
                         "summary": "check settings against the account's directory without "
                                    "saving them (extension)",
                         "requestBody": config_body,
                         "responses": answers(ValidationBody, "valid, as they would be saved",
                                              "422")},
            },
            "/accounts/{account_id}/handoff-settings/options": {
                "parameters": [_ACCOUNT],
                "get": {"operationId": "getHandoffSettingsOptions",
                        "summary": "the account's inboxes, help desks, users, teams and "
                                   "workflows, for the settings page (extension)",
                        "responses": answers(OptionsBody, "the choices")},
            },
            "/accounts/{account_id}/handoff-settings/preview": {
                "parameters": [_ACCOUNT],
                "post": {"operationId": "previewHandoffSettings",
                         "summary": "what proposed settings would have done to the account's "
                                    "recorded traffic (`handoff simulate`), without saving them",
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"type": "object", "required": ["config"],
                                        "properties": {
                                            "config": refs[(HandoffConfig, "validation")],
                                            "from": {"type": "string", "format": "date-time"},
                                            "to": {"type": "string", "format": "date-time"},
                                            "wait_s": {"type": "number", "minimum": 0,
                                                       "maximum": 9, "default": 9,
                                                       "description": "how long to wait "
                                                       "before answering 202 (extension)"}},
                                        "description": "`from`/`to` default to the last 7 "
                                                       "days"}}}},
                         "responses": preview_answers},
            },
            "/accounts/{account_id}/handoff-settings/preview/{preview_id}": {
                "parameters": [_ACCOUNT, {"name": "preview_id", "in": "path",
                                          "required": True, "schema": {"type": "string"}}],
                "get": {"operationId": "pollHandoffSettingsPreview",
                        "summary": "a preview that answered 202: 202 while it runs, then 200",
                        "responses": preview_answers},
            },
            "/openapi.json": {"get": {
                "operationId": "getOpenApi", "summary": "this description", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {}}}}}},
            "/settings": {"get": {
                "operationId": "getSettingsPage", "summary": "the Human handoff settings page",
                "security": [],
                "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
        },
    }


_EXTRA = {
    "404": "no such preview on this worker (kept 10 minutes), or the account has no traffic",
    "422": "invalid: `errors` names each field (`routing.destination`, `custom_triggers[2]`) "
           "and what to fix",
    "412": "`If-Match` names a version that is no longer current: the body says which "
           "version is, who saved it and when; nothing was changed",
    "429": "this worker runs as many previews as it may at once; try again shortly",
    "504": "too late: a PUT was published but its outcome did not arrive in time (see the "
           "history); a preview ran longer than its limit and was stopped",
}
