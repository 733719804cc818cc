"""normalize: the one text form every matcher sees."""

from __future__ import annotations

import pytest

from handoff.triggers.normalize import normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want a REFUND!", " i want a refund "),
        ("  many   spaces\tand\nlines ", " many spaces and lines "),
        ("Straße", " strasse "),  # casefold, not lower
        ("Élève, déjà-vu", " eleve deja vu "),
        ("Ærlig talt: Øl på Håndbak", " aerlig talt ol pa handbak "),
        ("kan jeg snakke med et MENNESKE?", " kan jeg snakke med et menneske "),
        ("människa", " manniska "),
        ("l'agent", " l agent "),  # elision splits, so "agent" is a word
        ("don't", " don t "),
        ("a_b-c/d.e", " a b c d e "),
        ("ﬁne ①", " fine 1 "),  # compatibility forms (NFKD)
        ("human!!🙏", " human "),  # emoji are separators
        ("İstanbul", " istanbul "),
    ],
)
def test_examples(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_combining_marks_are_dropped_whether_composed_or_not() -> None:
    composed = "r\u00e9sum\u00e9"
    decomposed = "re\u0301sume\u0301"
    assert normalize(composed) == normalize(decomposed) == " resume "


def test_control_and_format_characters() -> None:
    # Controls separate words; bidi marks, zero-width joiners and soft
    # hyphens sit inside words and vanish.
    assert normalize("\x00hi\x07there\x1b") == " hi there "
    assert normalize("re\u00adfund") == " refund "
    assert normalize("\u202eevil\u202c text\u200f") == " evil text "
    assert normalize("zero\u200bwidth") == " zero width "  # zero-width *space* separates
    assert normalize("\ufeffbom") == " bom "


def test_text_without_words_is_a_single_space() -> None:
    assert normalize("") == " "
    assert normalize("   \t\n") == " "
    assert normalize("?!…🙂") == " "


def test_right_to_left_and_other_scripts_survive() -> None:
    assert normalize("\u200fمرحبا، أريد موظفا!") == " مرحبا اريد موظفا "
    assert normalize("שלום עולם") == " שלום עולם "
    assert normalize("Привет, ЧЕЛОВЕК") == " привет человек "


def test_idempotent_and_padded() -> None:
    for text in ["Kan jeg få snakke med et menneske?", "¿Puedo hablar con alguien?", "x"]:
        once = normalize(text)
        assert normalize(once) == once
        assert once.startswith(" ") and once.endswith(" ")
        assert "  " not in once


def test_arbitrary_unicode_never_crashes() -> None:
    # Every code point class: controls, surrogates, private use, unassigned.
    text = "".join(chr(cp) for cp in range(0, 0x3000, 7)) + "\ud800\U0010ffff\U000e0001"
    result = normalize(text)
    assert result.startswith(" ") and result.endswith(" ")
    assert "  " not in result
