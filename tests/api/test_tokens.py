"""API tokens without a broker: their shape, the hash-only record, and who a token stands for."""

from __future__ import annotations

from datetime import UTC, datetime

from handoff.api.tokens import TokenStore, digest, new_token, token_id_of
from schemas.api import ApiToken


def record_for(token_id: str, token: str, user: str = "u-1") -> bytes:
    return ApiToken(token_id=token_id, user_id=user, sha256=digest(token),
                    created_at=datetime(2026, 11, 26, tzinfo=UTC)).model_dump_json().encode()


def test_a_token_carries_its_id_and_256_random_bits() -> None:
    token_id, token = new_token()
    assert token.startswith(f"hnd_{token_id}_") and len(token) == 4 + 16 + 1 + 43
    assert token_id_of(token) == token_id == token_id_of(token_id)
    assert token_id_of("hnd_short_x") is None
    assert new_token() != new_token()


def test_the_store_knows_only_the_hash_and_refuses_forged_and_revoked_tokens() -> None:
    token_id, token = new_token()
    store = TokenStore()
    store.apply(token_id.encode(), record_for(token_id, token))
    assert token not in str(store.records)  # only the SHA-256 is kept
    assert store.user_for(token) == "u-1"
    forged = token[:-1] + ("a" if token[-1] != "a" else "b")
    assert store.user_for(forged) is None
    assert store.user_for(f"hnd_{'0' * 16}_{token[-43:]}") is None  # unknown id, real secret
    assert store.user_for("") is None and store.user_for("Bearer " + token) is None
    store.apply(token_id.encode(), None)  # the tombstone of `handoff token revoke`
    assert store.user_for(token) is None


def test_records_not_written_by_the_tool_are_ignored() -> None:
    store = TokenStore()
    store.apply(b"0123456789abcdef", b'{"token_id": "0123456789abcdef", "user_id": "u"}')
    store.apply(b"x", b"not json")
    assert store.records == {}
