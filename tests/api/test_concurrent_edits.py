"""Concurrent editors without a broker: entity tags, and which version a settings file was read from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handoff.api.cli import read_config_file, read_config_file_version
from handoff.core.settings import FieldError
from streams.settings_api import Refusal, etag, if_match


@pytest.mark.parametrize(("header", "versions"), [
    (None, None), ("", None), ("*", None), (' * ', None),
    ('"3"', {3}), ('W/"3"', {3}), ('"3", "5"', {3, 5}), ("3", {3}),
    ('"abc"', set()), ('"-1"', set()), ('"99999999999999999999"', set()),
])
def test_if_match_names_the_versions_it_accepts(header: str | None,
                                                versions: set[int] | None) -> None:
    assert if_match(header) == versions


def test_the_etag_is_the_quoted_version_and_reads_back() -> None:
    assert etag(7) == '"7"'
    assert if_match(etag(7)) == {7}


def test_a_refusal_says_its_reason_as_the_stream_does() -> None:
    fields = Refusal(422, "invalid settings", [FieldError("process", "bad"),
                                               FieldError("messages.available", "blank")])
    assert fields.reason == "process: bad; messages.available: blank"
    whole = Refusal(422, "the body is not JSON", [FieldError("", "unexpected character")])
    assert whole.reason == "the body is not JSON: unexpected character"
    assert Refusal(403, "user u lacks the customer_agent.edit permission").reason == \
        "user u lacks the customer_agent.edit permission"


def test_a_file_from_config_get_names_its_account_and_version(tmp_path: Path) -> None:
    got = tmp_path / "got.yaml"
    got.write_text("# handoff settings of account acme, version 4, saved by u-1 at "
                   "2026-12-01T10:00:00Z\nprocess: none\n")
    assert read_config_file_version(got) == ({"process": "none"}, ("acme", 4))
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"account_id": "acme", "version": 2, "config": {"process": "live"},
                                "actor": "u-1", "event_id": "e", "updated_at": None}))
    assert read_config_file_version(body) == ({"process": "live"}, ("acme", 2))
    plain = tmp_path / "plain.yaml"
    plain.write_text("config:\n  process: async\n")
    assert read_config_file_version(plain) == ({"process": "async"}, None)
    assert read_config_file(got) == {"process": "none"}
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text("# handoff settings of account acme, version 0 (the defaults)\n{}\n")
    assert read_config_file_version(defaults) == ({}, ("acme", 0))
