"""The pattern-file language: slots, macros, pieces, kinds, typos, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handoff.triggers.human_request import DATA_DIR, HumanRequestDetector
from handoff.triggers.patterns import (
    GAP_WORDS,
    PatternError,
    PatternKind,
    expand,
    parse_file,
    parse_lines,
    typo_variants,
)


def detector_from(text: str, language: str = "xx") -> HumanRequestDetector:
    return HumanRequestDetector((language, line) for line in parse_lines(text.splitlines(), "t"))


def test_slots_expand_and_normalise() -> None:
    assert sorted(expand("{Talk|speak} to {a|an|} Human!")) == sorted([
        "talk to a human", "talk to an human", "talk to human",
        "speak to a human", "speak to an human", "speak to human",
    ])
    assert sorted(expand("talk to [a] person")) == ["talk to a person", "talk to person"]
    assert expand("{a|{b|c} d}") == ["a", "b d", "c d"]
    # A phrase written with å, ä, ö, ü or ø also gets the two-letter spelling of people who
    # type without the letter; æ folds to "ae" anyway.
    assert expand("Ærlig {Då|}") == ["aerlig da", "aerlig daa", "aerlig"]


def test_umlauts_and_nordic_letters_also_match_their_two_letter_spelling() -> None:
    assert sorted(expand("{zurückrufen|möglich|grüße}")) == sorted(
        ["zuruckrufen", "zurueckrufen", "moglich", "moeglich", "grusse", "gruesse"])
    assert sorted(expand("få snakke med en ansatt på chatten")) == sorted(
        ["fa snakke med en ansatt pa chatten", "faa snakke med en ansatt paa chatten"])
    assert expand("høre") == ["hore", "hoere"]
    # Only phrases written with such a letter: "queue" and Dutch "maar" stay as they are.
    assert expand("{queue|maar}") == ["queue", "maar"]
    detector = HumanRequestDetector([("de", line) for line in parse_lines(
        ["können sie mich zurückrufen"], "t")])
    assert detector.detect_text("koennen sie mich zurueckrufen") is not None
    assert detector.detect_text("können Sie mich zurückrufen") is not None
    assert detector.detect_text("kennen sie mich zurueckrufen") is None


def test_macros_nest_and_splice() -> None:
    macros = {"who": "human | person | @bot", "bot": "robot | {chat|} bot"}
    assert sorted(expand("a {@who}", macros)) == sorted(
        ["a human", "a person", "a robot", "a chat bot", "a bot"]
    )
    assert sorted(expand("{@bot|machine}", macros)) == sorted(["robot", "chat bot", "bot", "machine"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("talk to {a|an", "unbalanced"),
        ("talk to a|an", "outside a slot"),
        ("talk to @who", "outside a slot"),
        ("talk to {@nobody}", "unknown macro"),
        ("{a|b] c", "unbalanced"),
    ],
)
def test_syntax_errors_name_file_and_line(line: str, message: str) -> None:
    with pytest.raises(PatternError, match=message) as info:
        list(parse_lines(["# header", line], "en.txt"))
    assert str(info.value).startswith("en.txt:2:")


def test_recursive_macro_is_an_error() -> None:
    with pytest.raises(PatternError, match="refers to itself"):
        list(parse_lines(["@a = x | @a", "{@a}"], "t"))


def test_explosive_lines_are_refused_with_a_hint() -> None:
    lines = ["@w = " + " | ".join(f"w{i}" for i in range(30)), "{@w} {@w} {@w}"]
    with pytest.raises(PatternError, match=r"split it with ' \+ '"):
        list(parse_lines(lines, "t"))
    # Split into pieces it loads: 30 + 30 + 30 keys instead of 27,000.
    (line,) = list(parse_lines([lines[0], "{@w} + {@w} + {@w}"], "t"))
    assert [len(piece) for piece in line.pieces] == [30, 30, 30]


def test_a_line_that_can_match_nothing_is_an_error() -> None:
    with pytest.raises(PatternError, match="no words"):
        list(parse_lines(["[a] + [b]"], "t"))
    with pytest.raises(PatternError, match="no words"):
        list(parse_lines(["?!"], "t"))


def test_line_kinds_and_comments() -> None:
    lines = list(parse_lines([
        "# comment", "", "talk to a human   # trailing comment",
        "= agent", "! are you human", "!! phone number", "~ human person",
    ], "t"))
    assert [line.kind for line in lines] == [
        PatternKind.POSITIVE, PatternKind.EXACT, PatternKind.VETO,
        PatternKind.MESSAGE_VETO, PatternKind.TYPOS,
    ]
    assert lines[0].pieces == (("talk to a human",),)
    assert lines[0].line_no == 3


def test_pieces_match_the_same_texts_as_the_flat_line() -> None:
    flat = detector_from("{talk|speak} to [a|the] {human|person}")
    split = detector_from("{talk|speak} to + [a|the] + {human|person}")
    assert len(split) < len(flat)
    for text in ["talk to a human", "speak to human", "i want to speak to the person now",
                 "talk to a", "talk to", "a human", "talk to a a human", "talk human"]:
        one, other = flat.detect_text(text), split.detect_text(text)
        assert (one is None) == (other is None), text
        if one is not None and other is not None:
            assert (one.phrase, one.start, one.end) == (other.phrase, other.start, other.end)


def test_a_gap_takes_up_to_gap_words_words_and_none() -> None:
    detector = detector_from("{someone|somebody} from ... + {call|ring} me")
    assert GAP_WORDS == 5
    for text in ["someone from billing call me", "could somebody from the uni admissions office ring me",
                 "someone from call me", "someone from a b c d e call me"]:
        match = detector.detect_text(text)
        assert match is not None, text
        assert match.phrase.startswith("some") and match.phrase.endswith(" me"), text
    for text in ["someone from a b c d e f call me", "someone call me", "from billing call me",
                 "someone from billing, call me"[:-3]]:
        assert detector.detect_text(text) is None, text


def test_a_gap_on_a_whole_message_pattern_spans_the_message() -> None:
    detector = detector_from("= someone from ... {pls|please}")
    assert detector.detect_text("someone from the admissions office pls") is not None
    assert detector.detect_text("hi someone from the admissions office pls") is None
    assert detector.detect_text("someone from the admissions office pls thanks") is None


def test_a_veto_inside_a_gap_cancels_even_a_longer_positive() -> None:
    detector = detector_from("someone from ... call me\n! already\nsaid it's fine\n! it's fine")
    assert detector.detect_text("someone from billing call me") is not None
    assert detector.detect_text("someone from billing already call me") is None
    # Without a gap the longer positive still wins over the veto it contains.
    assert detector.detect_text("he said it's fine") is not None


@pytest.mark.parametrize("line", ["[someone] ... call me", "someone ... [please] + call me",
                                  "someone + [please] ... call me"])
def test_a_piece_beside_a_gap_may_not_be_optional(line: str) -> None:
    with pytest.raises(PatternError, match=re.escape("beside ' ... '")):
        list(parse_lines([line], "t"))


def test_whole_message_patterns() -> None:
    detector = detector_from("= {hi|} + agent + [please]")
    assert detector.detect_text("Agent!") is not None
    assert detector.detect_text("hi agent please") is not None
    assert detector.detect_text("the agent was rude") is None
    assert detector.detect_text("agent please help") is None


def test_veto_cancels_what_it_overlaps_unless_contained_in_a_longer_positive() -> None:
    detector = detector_from("\n".join([
        "talk to a human",
        "don't want to talk to a bot",
        "! don't want to",
        "! are you a",
    ]))
    assert detector.detect_text("I don't want to talk to a human") is not None  # no overlap: "to" joins
    detector = detector_from("\n".join([
        "talk to a human",
        "don't want to talk to a bot",
        "! don't want to talk",
    ]))
    assert detector.detect_text("I don't want to talk to a human") is None
    match = detector.detect_text("I don't want to talk to a bot")
    assert match is not None and match.phrase == "don t want to talk to a bot"
    # A veto elsewhere in the message leaves the request alone.
    assert detector.detect_text("I don't want to talk to you. Talk to a human!") is not None
    assert detector.detect_text("bots are fine but talk to a human") is not None


def test_repeating_a_phrase_as_a_veto_switches_it_off() -> None:
    detector = detector_from("talk to a human\nagent\n! agent")
    assert detector.detect_text("agent") is None
    assert detector.detect_text("talk to a human") is not None


def test_message_veto_cancels_everything() -> None:
    detector = detector_from("talk to a human\n!! phone number")
    assert detector.detect_text("what is the phone number to talk to a human") is None
    assert detector.detect_text("talk to a human") is not None


def test_typo_words_match_one_slip_of_the_keyboard() -> None:
    assert {"huamn", "hman", "uhman", "huma"} <= typo_variants("human")  # dropped, swapped
    assert {"hunan", "hyman", "humman", "hujman"} <= typo_variants("human")  # near keys, doubled
    assert "uman" not in typo_variants("human")  # short words keep their first letter
    assert "omeone" in typo_variants("someone")  # long ones may lose it
    assert "xuman" not in typo_variants("human")  # the first letter is never replaced
    assert "hukan" in typo_variants("human") and "hupan" not in typo_variants("human")  # far key
    detector = detector_from("~ human agents\ntalk to a human\nagent please\nagents")
    match = detector.detect_text("can I talk to a huamn")
    assert match is not None and match.phrase == "talk to a human"
    assert detector.detect_text("talk to a hyman") is not None
    assert detector.detect_text("talk to a hupan") is None
    # "agent" is a variant of "agents" but a pattern word itself: never corrected.
    assert detector.detect_text("agent please") is not None
    assert detector.detect_text("agent") is None


def test_run_together_words_and_real_word_exceptions() -> None:
    detector = detector_from(
        "~ human person\n~+ to a\n~! humane\ntalk to a human\ntalk to a person\nhuman please"
    )
    assert detector.detect_text("i want to talk to aperson") is not None  # "a" + "person"
    assert detector.detect_text("talk to ahuman") is not None
    assert detector.detect_text("talk to a humane") is None  # listed as a real word
    # Without the "~!" line, the same word is read as a typo of "human".
    loose = detector_from("~ human humans\ntalk to a human\ntalk to a humans")
    assert loose.detect_text("talk to a humane") is not None
    # The "~+" step glues only a word before; longer run-together words are split against
    # the phrase words, in any order, but only when every piece is a phrase word.
    assert detector.detect_text("humanplease") is not None
    assert detector.detect_text("humanpleasex") is None


def test_shipped_detector_leaves_near_words_alone(detector: HumanRequestDetector) -> None:
    for text in (
        "talk to a humane society", "I want personal advice", "speak to the personnel office",
        "I need to contact the agency", "I want to talk about my agenda",
        "I need a personal loan", "is this humane?",
    ):
        assert detector.detect_text(text) is None, text


def test_shipped_files_parse_and_load() -> None:
    files = sorted(DATA_DIR.glob("*.txt"))
    assert {path.stem for path in files} >= {"en", "nb", "nn", "sv", "da", "de", "es", "fr", "it"}
    for path in files:
        lines = parse_file(path)
        kinds = {line.kind for line in lines}
        assert {PatternKind.POSITIVE, PatternKind.VETO, PatternKind.MESSAGE_VETO} <= kinds, path


def test_operator_directory_extends_a_language(
    tmp_path: Path, detector: HumanRequestDetector
) -> None:
    (tmp_path / "nb.txt").write_text(
        "# our brand's word for a human\n= {flinkis|hjelper} + [takk]\n! menneske takk\n",
        encoding="utf-8",
    )
    (tmp_path / "pt.txt").write_text("falar com {um|uma} {atendente|pessoa}\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not a pattern file", encoding="utf-8")
    # The phrase files alone: this is about how operator files join the shipped ones (the
    # second stage may well read "flinkis takk" as a request by itself).
    base = detector.with_stage2(None)
    extended = HumanRequestDetector.load([tmp_path], stage2=False)
    assert base.detect_text("Flinkis takk!") is None
    match = extended.detect_text("Flinkis takk!")
    assert match is not None and match.language == "nb"
    pt = extended.detect_text("Quero falar com um atendente")
    assert pt is not None and pt.language == "pt"
    assert "pt" in extended.languages
    # The operator's veto switches off a shipped phrase.
    assert base.detect_text("menneske takk") is not None
    assert extended.detect_text("menneske takk") is None


def test_missing_operator_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        HumanRequestDetector.load([tmp_path / "nope"])


def test_not_typos_builder_keeps_real_words_of_the_words_own_language() -> None:
    from handoff.triggers.build_not_typos import build

    # "humane" is one slip from English "humans"; "snake" from Norwegian
    # "snakke" but only a real word in English, which does not list "snakke".
    found = build({"en": {"humane", "snake", "agent"}, "nb": set()})
    assert "humane" in found
    assert "snake" not in found
    assert "agent" not in found  # a pattern word is never a correction anyway


def test_shipped_not_typos_file_lists_known_near_words() -> None:
    from handoff.triggers.human_request import NOT_TYPOS_FILE

    words = {w for line in parse_file(NOT_TYPOS_FILE) for w in line.pieces[0]}
    assert {"humane", "manger"} <= words
