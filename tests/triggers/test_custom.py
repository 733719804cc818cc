"""CustomPhraseMatcher: editor phrases, whole words, first match by position."""

from __future__ import annotations

import random
import string

from handoff.triggers.custom import CustomPhraseMatcher, normalize_phrase
from handoff.triggers.normalize import normalize


def match(matcher: CustomPhraseMatcher, text: str) -> str | None:
    return matcher.match(normalize(text))


EDITOR = ["refund", "Cancellation", "oppsigelse", "cancel my subscription", "Kündigung"]


def test_returns_the_phrase_as_the_editor_wrote_it() -> None:
    matcher = CustomPhraseMatcher(EDITOR)
    assert match(matcher, "I want a REFUND!") == "refund"
    assert match(matcher, "about the cancellation.") == "Cancellation"
    assert match(matcher, "Jeg ønsker OPPSIGELSE av avtalen") == "oppsigelse"
    assert match(matcher, "ich möchte eine kundigung") == "Kündigung"


def test_whole_words_only() -> None:
    # Decision: a phrase never matches inside a longer word, so "refund"
    # misses "refunded"/"refunds"; editors add the forms they want.
    matcher = CustomPhraseMatcher(["refund", "cancel my subscription"])
    assert match(matcher, "I was refunded already") is None
    assert match(matcher, "two refunds") is None
    assert match(matcher, "nonrefund policy") is None
    assert match(matcher, "refund.") == "refund"
    assert match(matcher, "(refund)") == "refund"
    assert match(matcher, "cancel my subscriptions") is None


def test_case_diacritics_and_punctuation_insensitive() -> None:
    matcher = CustomPhraseMatcher(["oppsigelse", "Résiliation", "cancel my subscription", "blåbær"])
    assert match(matcher, "OPPSIGELSE") == "oppsigelse"
    # Nordic letters fold too (å->a, ø->o, æ->ae), on both sides: typing
    # without them still matches, at the price of å/a and ø/o collisions.
    assert match(matcher, "blabaer") == "blåbær"
    assert match(matcher, "BLÅBÆR") == "blåbær"
    assert match(matcher, "øppsigelse") == "oppsigelse"
    assert match(matcher, "resiliation") == "Résiliation"
    assert match(matcher, "RÉSILIATION!") == "Résiliation"
    assert match(matcher, "Please cancel   my, subscription.") == "cancel my subscription"


def test_multi_word_phrases_need_the_words_in_order_and_adjacent() -> None:
    matcher = CustomPhraseMatcher(["cancel my subscription"])
    assert match(matcher, "cancel my subscription now") == "cancel my subscription"
    assert match(matcher, "cancel my old subscription") is None
    assert match(matcher, "my subscription cancel") is None


def test_first_by_position_then_longest() -> None:
    matcher = CustomPhraseMatcher(["subscription", "cancel", "cancel my subscription", "refund"])
    assert match(matcher, "refund and cancel my subscription") == "refund"
    assert match(matcher, "please cancel my subscription, refund") == "cancel my subscription"
    assert match(matcher, "my subscription: cancel it") == "subscription"


def test_dedupe_keeps_the_first_spelling() -> None:
    matcher = CustomPhraseMatcher(["Refund", "refund", "REFUND!", "  refund  ", "Oppsigelse", "oppsigelse"])
    assert matcher.phrases == ("Refund", "Oppsigelse")
    assert len(matcher) == 2
    assert match(matcher, "refund please") == "Refund"


def test_normalize_phrase() -> None:
    assert normalize_phrase("  Cancel   MY subscription! ") == "cancel my subscription"
    assert normalize_phrase("Øppsigelse") == "oppsigelse"
    assert normalize_phrase("Refund") == normalize_phrase("refund!")
    assert normalize_phrase("?!") == ""


def test_empty_and_wordless_lists_never_match() -> None:
    for phrases in ([], ["", "  ", "?!"]):
        matcher = CustomPhraseMatcher(phrases)
        assert len(matcher) == 0
        assert match(matcher, "refund cancel anything") is None
        assert matcher.match(" ") is None


def test_match_text_normalises_for_the_caller() -> None:
    assert CustomPhraseMatcher(["refund"]).match_text("A REFUND?") == "refund"


def test_ten_thousand_phrases_match_exactly_like_a_reference() -> None:
    rng = random.Random(7)

    def word() -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 8)))

    vocabulary = [word() for _ in range(3000)]
    phrases = [" ".join(rng.sample(vocabulary, rng.randint(1, 3))) for _ in range(10_000)]
    matcher = CustomPhraseMatcher(phrases)
    normalised = {normalize_phrase(p) for p in phrases}
    assert len(matcher) == len(normalised)

    first_spelling: dict[str, str] = {}
    for phrase in phrases:
        first_spelling.setdefault(normalize_phrase(phrase), phrase)

    def reference(text: str) -> str | None:
        # Brute force: every phrase, whole-word substring search.
        best: tuple[int, int, str] | None = None
        for key, original in first_spelling.items():
            at = text.find(f" {key} ")
            if at >= 0 and (best is None or (at, -len(key)) < (best[0], best[1])):
                best = (at, -len(key), original)
        return None if best is None else best[2]

    for _ in range(150):
        words = rng.sample(vocabulary, 12) + [word() for _ in range(4)]
        rng.shuffle(words)
        text = normalize(" ".join(words))
        assert matcher.match(text) == reference(text)
    # And phrases planted in filler are found.
    for phrase in rng.sample(phrases, 50):
        text = normalize(f"zz {phrase} qq")
        found = matcher.match(text)
        assert found is not None and normalize_phrase(found) == normalize_phrase(phrase)
