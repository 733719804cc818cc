"""Hypothesis strategies for hostile input: valid records with awkward text, and invalid ones.

Shared by the pure validation tests (tests/test_validation.py) and the end-to-end run through a
worker (tests/e2e/test_hostile_input.py). Every generated record says whether the contract
accepts it, so a test can check that valid ones are processed and invalid ones dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import strategies as st

from schemas.topics import Topic

T0 = "2026-11-26T10:00:00Z"
HUMAN_REQUEST = "I want to talk to a human"

# Right-to-left marks and overrides, combining marks, zero-width and byte-order characters,
# letters of right-to-left scripts, and C0/C1 controls (NUL included).
SPECIAL = (
    "\u202e\u202b\u202a\u202c\u200f\u200e\u2066\u2067\u2069"  # bidi controls
    "\u0301\u0308\u0327\u0338\u20dd\u0489\u035c"  # combining (and enclosing) marks
    "\u200b\u200c\u200d\ufeff\u2060"  # zero width, BOM
    "\u05d0\u05e9\u05dc\u05d5\u05dd\u0627\u0644\u0633\u0644\u0627\u0645\u06f1"  # Hebrew, Arabic
    "\x00\x01\x07\x08\t\n\r\x1b\x7f\x85\x9f\u2028\u2029"  # controls, line separators
    "\U0001f600\U0001f9d1\u200d\U0001f4bb\ufffd\uffff"  # astral, ZWJ sequence, noncharacters
    "\"\\/{}[]"  # JSON punctuation inside strings
)

# Any code point UTF-8 can carry (lone surrogates cannot be sent as UTF-8 JSON at all).
_any_char = st.characters(codec="utf-8")
hostile_text = st.one_of(
    st.text(st.sampled_from(SPECIAL), max_size=60),
    st.text(_any_char, max_size=60),
    st.text(st.characters(categories=["Cc", "Cf", "Mn", "Me", "Zl", "Zp", "Co"], codec="utf-8"),
            max_size=40),
)
# An id: 1..256 characters, any of them awkward.
hostile_id = st.text(st.one_of(st.sampled_from(SPECIAL), _any_char), min_size=1, max_size=40)

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                      st.floats(allow_nan=False, allow_infinity=False), hostile_text)
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)), max_leaves=12)


@dataclass(frozen=True)
class Case:
    """One record to send: `valid` says what the contract makes of it; `kind` why."""

    kind: str
    topic: Topic
    key: bytes | None
    value: bytes | None
    valid: bool
    # For valid chat messages that ask for a human: the conversation that must be handed off.
    handoff: tuple[str, str] | None = None  # (conversation_id, message event_id)


def _chat(event_id: str, conversation: str, account: str, text: str, **extra: Any
          ) -> dict[str, Any]:
    return {"event_id": event_id, "conversation_id": conversation, "account_id": account,
            "channel": "chat", "sender": "visitor", "text": text, "sent_at": T0, **extra}


VALID_KINDS = ("human", "chat", "control", "update", "presence", "directory-user",
               "directory-team", "directory-inbox", "workflow", "config")
INVALID_KINDS = ("not-json", "invalid-utf8", "wrong-type", "missing-field", "unknown-enum",
                 "deep", "control-in-structure", "bad-time", "not-an-object", "no-value",
                 "big-int", "bad-presence", "bad-directory", "huge")


@st.composite
def valid_records(draw: st.DrawFn, n: int, which: str | None = None) -> Case:
    """A record every reader of the contract accepts, `n` makes its ids unique."""
    if which is None:
        which = draw(st.sampled_from(VALID_KINDS))
    account = draw(hostile_id) + f"#{n}"
    event_id = f"{draw(hostile_id)}#{n}"
    if which == "human":
        conversation = draw(hostile_id) + f"#{n}"
        extra = draw(st.dictionaries(
            st.sampled_from(["contact_id", "language", "shoe_size", "nested", "\u202eevil"]),
            json_value, max_size=3))
        for field in ("contact_id", "language"):
            if field in extra and not isinstance(extra[field], str | None):
                extra[field] = str(extra[field])
        value = _chat(event_id, conversation, account, HUMAN_REQUEST, **extra)
        return Case("valid:human", Topic.CHAT_MESSAGES, conversation.encode(),
                    orjson.dumps(value), True, handoff=(conversation, event_id))
    if which == "chat":
        conversation = draw(hostile_id) + f"#{n}"
        sender = draw(st.sampled_from(["customer_agent", "human_agent"]))
        value = _chat(event_id, conversation, account, draw(hostile_text), sender=sender,
                      channel=draw(st.sampled_from(["email", "whatsapp", "sms", "other"])),
                      answered=True if sender == "customer_agent" else None)
        return Case("valid:chat", Topic.CHAT_MESSAGES, conversation.encode(),
                    orjson.dumps(value), True)
    if which == "control":
        value = {"event_id": event_id, "account_id": account, "occurred_at": T0,
                 "action": draw(st.sampled_from(["pause", "resume"])), "actor": draw(hostile_text)}
        return Case("valid:control", Topic.AGENT_CONTROL, account.encode(), orjson.dumps(value),
                    True)
    if which == "update":
        value = {"event_id": event_id, "account_id": account, "occurred_at": T0,
                 "conversation_id": draw(hostile_id),
                 "action": draw(st.sampled_from(["close", "hand_back"]))}
        return Case("valid:update", Topic.CONVERSATION_UPDATES, None, orjson.dumps(value), True)
    if which == "presence":
        # The user is unknown, so the record waits for its directory entry (still valid).
        value = {"event_id": event_id, "user_id": draw(hostile_id) + f"#{n}", "occurred_at": T0,
                 "status": draw(st.sampled_from(["available", "away", "offline"])),
                 "max_open_conversations": draw(st.none() | st.integers(0, 1_000))}
        return Case("valid:presence-unknown-user", Topic.AGENT_PRESENCE,
                    value["user_id"].encode(), orjson.dumps(value), True)
    if which.startswith("directory-"):
        ident = draw(hostile_id) + f"#{n}"
        kind = which.removeprefix("directory-")
        value = {"kind": kind, "id": ident, "account_id": account, "name": draw(hostile_text)}
        if kind == "user":
            value["teams"] = draw(st.lists(hostile_id, max_size=3))
        if kind == "inbox":
            value["type"] = draw(st.sampled_from(["inbox", "help_desk"]))
        return Case(f"valid:directory-{kind}", Topic.DIRECTORY, f"{kind}:{ident}".encode(),
                    orjson.dumps(value), True)
    if which == "workflow":
        value = {"workflow_id": draw(hostile_id) + f"#{n}", "account_id": account,
                 "name": draw(hostile_text),
                 "rules": [{"when": {"language": draw(st.lists(hostile_text, max_size=2))},
                            "assign": {"user": draw(hostile_id)}}]}
        return Case("valid:workflow", Topic.WORKFLOWS, value["workflow_id"].encode(),
                    orjson.dumps(value), True)
    # A config request is valid as a record whatever its config: the core refuses a bad one
    # on handoff.config.changes (here: the actor is no user of the account).
    value = {"event_id": event_id, "account_id": account, "actor": draw(hostile_id),
             "occurred_at": T0, "config": draw(st.dictionaries(hostile_text, json_value,
                                                               max_size=4))}
    return Case("valid:config", Topic.CONFIG_REQUESTS, account.encode(), orjson.dumps(value),
                True)


# Required string fields of a chat message, and values of the wrong type for them.
_REQUIRED = ["event_id", "conversation_id", "account_id", "channel", "sender", "text", "sent_at"]
_wrong_type = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.lists(json_leaf, max_size=3), st.dictionaries(hostile_text, json_leaf,
                                                                          max_size=2))
_bad_time = st.one_of(
    st.sampled_from(["2026-11-26T10:00:00", "2026-11-26", "yesterday", "", "2026-13-01T00:00:00Z",
                     "2026-11-26T25:00:00Z", "0001-01-01T00:00:00+05:00",
                     "9999-12-31T23:59:59-05:00", "1e10", "2026-11-26T10:00:00+24:00"]),
    hostile_text.filter(lambda s: not s[:1].isdigit()))


@st.composite
def invalid_records(draw: st.DrawFn, n: int, kind: str | None = None, *, huge: bool = True
                    ) -> Case:
    """A record that must go to the dead letter topic."""
    if kind is None:
        kind = draw(st.sampled_from([k for k in INVALID_KINDS if huge or k != "huge"]))
    conversation = f"bad-{n}"
    good = _chat(f"bad-{n}", conversation, f"acct-bad-{n}", draw(hostile_text))
    topic = Topic.CHAT_MESSAGES
    value: bytes | None
    if kind == "not-json":
        value = draw(st.one_of(
            st.binary(min_size=1, max_size=200),
            st.text(_any_char, max_size=100).map(lambda s: s.encode()),
            st.just(orjson.dumps(good)[:-1]),  # truncated
            st.just(orjson.dumps(good).replace(b'"', b"'")),
            st.just(b"{" + orjson.dumps(good)[1:].replace(b":", b"=", 1)),
            st.just(orjson.dumps(good) + b"{}"),  # trailing garbage
            st.just(b"\xef\xbb\xbf" + orjson.dumps(good)),  # a byte order mark
            st.just(orjson.dumps(good).replace(b'"text":', b'"text":NaN,"x":')),
        ).filter(lambda b: b.strip() != b""))
        topic = draw(st.sampled_from([Topic.CHAT_MESSAGES, Topic.DIRECTORY, Topic.AGENT_PRESENCE,
                                      Topic.WORKFLOWS, Topic.AGENT_CONTROL]))
    elif kind == "invalid-utf8":
        raw = orjson.dumps(good)
        at = raw.index(b'"text":"') + len(b'"text":"')
        value = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80",
                                                 b"\xf4\x90\x80\x80", b"\xc0\xaf"])) + raw[at:]
    elif kind == "wrong-type":
        field = draw(st.sampled_from(_REQUIRED))
        value = orjson.dumps({**good, field: draw(_wrong_type.filter(lambda v: not isinstance(
            v, str)))})
    elif kind == "missing-field":
        field = draw(st.sampled_from(_REQUIRED))
        value = orjson.dumps({k: v for k, v in good.items() if k != field})
    elif kind == "unknown-enum":
        field = draw(st.sampled_from(["channel", "sender"]))
        allowed = {"channel": {"chat", "email", "whatsapp", "messenger", "instagram", "sms",
                               "voice", "form", "other"},
                   "sender": {"visitor", "customer_agent", "human_agent"}}[field]
        value = orjson.dumps({**good, field: draw(hostile_text.filter(lambda s: s not in allowed))})
    elif kind == "deep":
        depth = draw(st.integers(33, 3000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        nest = (opener * depth + "1" + closer * depth).encode()
        value = orjson.dumps(good)[:-1] + b',"nested":' + nest + b"}"
    elif kind == "control-in-structure":
        # Raw (unescaped) control characters are not allowed inside JSON strings.
        raw = orjson.dumps(good)
        at = raw.index(b'"text":"') + len(b'"text":"')
        value = raw[:at] + draw(st.sampled_from([b"\x00", b"\x01", b"\n", b"\x1f", b"\t"])) + raw[at:]
    elif kind == "bad-time":
        value = orjson.dumps({**good, "sent_at": draw(_bad_time)})
    elif kind == "not-an-object":
        value = orjson.dumps(draw(st.one_of(st.lists(json_leaf, max_size=3), json_leaf)))
    elif kind == "no-value":
        value = None
        topic = draw(st.sampled_from([Topic.CHAT_MESSAGES, Topic.AGENT_CONTROL,
                                      Topic.AGENT_PRESENCE, Topic.CONFIG_REQUESTS]))
    elif kind == "big-int":
        topic = Topic.AGENT_PRESENCE
        value = (b'{"event_id":"p-' + str(n).encode() + b'","user_id":"u","status":"away",'
                 b'"occurred_at":"' + T0.encode() + b'","max_open_conversations":'
                 + str(draw(st.integers(2**31, 10**40))).encode() + b"}")
    elif kind == "bad-presence":
        topic = Topic.AGENT_PRESENCE
        value = orjson.dumps({"event_id": f"p-{n}", "user_id": draw(hostile_id),
                              "occurred_at": T0, "status": draw(st.sampled_from(
                                  ["busy", "AVAILABLE", "", None, 1]))})
    elif kind == "bad-directory":
        topic = Topic.DIRECTORY
        value = orjson.dumps(draw(st.sampled_from([
            {"kind": "robot", "id": "x", "account_id": "a"},
            {"kind": "user", "id": "", "account_id": "a"},
            {"kind": "inbox", "id": "i", "account_id": "a", "type": "mailbox"},
            {"kind": "team", "id": "t", "account_id": "a",
             "business_hours": [{"days": ["mon"], "start": "8", "end": "16:00"}]},
        ])))
    else:  # huge: a valid-looking message over HANDOFF_MAX_RECORD_BYTES
        size = draw(st.integers(270_000, 400_000))
        value = orjson.dumps({**good, "text": "x" * size})
    key = draw(st.one_of(st.none(), st.just(conversation.encode()), st.binary(max_size=20)))
    if key is None and (value is None or topic in (Topic.DIRECTORY, Topic.WORKFLOWS)):
        key = conversation.encode()  # Kafka needs a key or a value; compacted topics a key
    return Case(f"invalid:{kind}", topic, key, value, False)


def cases(n: int, *, huge: bool = True) -> st.SearchStrategy[Case]:
    """One record, valid or not (kinds drawn evenly from both lists)."""
    kinds = [("valid", k) for k in VALID_KINDS] + [
        ("invalid", k) for k in INVALID_KINDS if huge or k != "huge"]
    return st.sampled_from(kinds).flatmap(
        lambda vk: valid_records(n, vk[1]) if vk[0] == "valid" else invalid_records(n, vk[1]))
