"""The second stage: its features and scoring, how the detector consults it, its training inputs."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from handoff.triggers import evaluate as evaluate_module
from handoff.triggers import proxy as proxy_module
from handoff.triggers import train_stage2
from handoff.triggers.evaluate import Row, source_group
from handoff.triggers.human_request import (
    STAGE2_LANGUAGE,
    STAGE2_SOURCE,
    HumanRequestDetector,
)
from handoff.triggers.normalize import normalize
from handoff.triggers.stage2 import MAX_CHARS, MODEL_FILE, Stage2Model, features

HELDOUT = Path(__file__).resolve().parent / "heldout"
# Written after the first set had been scored and tuned on; scored once on 2026-12-02, then
# tuned and trained on from the second session that day (its README).
HELDOUT2 = Path(__file__).resolve().parent / "heldout2"
# Written while the second set was being tuned on, by an author who never saw the detector;
# scored once on 2026-12-02 (04:56), then tuned and trained on from 05:20 (its README).
HELDOUT3 = Path(__file__).resolve().parent / "heldout3"
# Written while the third set was being tuned on, by another author who never saw the
# detector; scored once at the end of that session (78.5 %), then analysed and trained on
# from 13:00 (its README).
HELDOUT4 = Path(__file__).resolve().parent / "heldout4"
# Written blind while the fourth set was being tuned on, to judge the sixth session's detector;
# labels "are you a human?" and contact details `other` (no borderline rows), see its README.
# Scored once (its README), then trained on like the sets before it.
HELDOUT5 = Path(__file__).resolve().parent / "heldout5"
# Written blind while the fifth set was being tuned on, from visitors' whole conversations rather
# than a list of phrasings (its README); same labels as the fifth. Scored once, then trained on.
HELDOUT6 = Path(__file__).resolve().parent / "heldout6"
# Written blind while the sixth set was scored, by a red team: each language's list of the ways a
# phrase-list detector would miss a request or be fooled came first, then the rows (its
# method.md and README). Same labels as the fifth. Scored once, then trained on.
HELDOUT7 = Path(__file__).resolve().parent / "heldout7"
# Written blind while the seventh set was unscored, channel by channel (mobile app chat, voice
# transcript, social media message, web form) rather than by phrasing idea (its method.md and
# README). Same labels as the fifth. Scored once (its README), trained on since the ninth session.
HELDOUT8 = Path(__file__).resolve().parent / "heldout8"
# Written blind while the eighth set was scored, audience by audience (business customers,
# citizens, elderly visitors, teenagers, people in distress) rather than by phrasing idea or
# channel (its method.md and README). Same labels as the fifth. Scored once, trained
# on since the ninth session.
HELDOUT9 = Path(__file__).resolve().parent / "heldout9"
# Written blind while the ninth set was unscored, situation by situation (a wrong charge, a lost
# delivery, a move abroad...) at three message lengths rather than by phrasing idea, channel or
# audience (its method.md and README). Same labels as the fifth. Scored once, trained
# on since the ninth session.
HELDOUT10 = Path(__file__).resolve().parent / "heldout10"
# Written blind while the tenth set was unscored, by typing habit (fat fingers, autocorrect,
# missing diacritics, dictation, run-together words, shorthand, caps, learners) rather than by
# phrasing idea, channel, audience or situation (its method.md and README). Same labels as the
# fifth. Scored once (18:08), trained on since.
HELDOUT11 = Path(__file__).resolve().parent / "heldout11"
# Written blind beside the eleventh, by position in a dialogue: the visitor's reply right after
# one of eight bot lines (misunderstood, asked, linked, cannot, form, order number, sorry for
# the wait, anything else), rather than by phrasing idea, channel, audience or situation (its
# method.md and README). Same labels as the fifth. Scored once (18:08), trained on since.
HELDOUT12 = Path(__file__).resolve().parent / "heldout12"
# Written blind after the twelfth was tuned on, by trade: per language ten kinds of business and
# the staff roles and desks a visitor would name in that trade's words, with hard negatives on
# the same roles (its method.md and README). Same labels as the fifth. Scored once (18:32),
# trained on since.
HELDOUT13 = Path(__file__).resolve().parent / "heldout13"
# Written blind beside the thirteenth, as crowd-workers of a public intent dataset would: short
# paraphrases of "reach a human agent" and of twelve neighbouring intents (contact details,
# hours, complain, cancel, is it a bot...), rather than by phrasing idea, channel, audience,
# situation, typing habit or dialogue position (its method.md and README). Same labels as the
# fifth. Scored once (18:33), trained on since.
HELDOUT14 = Path(__file__).resolve().parent / "heldout14"
# Written blind after the fourteenth was tuned on, by regional variety: per language the
# varieties and registers of its method.md (Austrian and Swiss German, voseo, Quebec French,
# Indian and Nigerian English...) with hard negatives in the same varieties (its README). Same
# labels as the fifth. Scored once (2026-12-02 20:03), trained on since the tenth session.
HELDOUT15 = Path(__file__).resolve().parent / "heldout15"
# Written blind beside the fifteenth, by stance: per language eight stances toward the bot
# (hedging, ultimatum, sarcasm, frustration, resignation, flattery, formal complaint, urgency),
# each in one kind of company, with hard negatives in the same stances (its method.md and
# README). Same labels as the fifth. Scored once (2026-12-02 20:03), trained on since the tenth
# session.
HELDOUT16 = Path(__file__).resolve().parent / "heldout16"
# Written blind in the tenth session, by writer: per language six non-native or
# code-switching writer profiles (learners translating word by word, English mixed in, a
# neighbouring language's spelling, no diacritics, dated formal wording, translation-app
# output), each with its own kind of company (its method.md and README). Same labels as the
# fifth. Scored once (2026-12-02 21:59), then trained on.
HELDOUT17 = Path(__file__).resolve().parent / "heldout17"
# Written blind beside the seventeenth, by task: per language eight things a visitor believes
# only staff can do (approve an exception, check by hand, look at a photo, judge, undo a staff
# mistake, negotiate, confirm in writing, a case the bot failed twice), each in one kind of
# company, with hard negatives around the same tasks (its method.md and README). Same labels
# as the fifth. Scored once (2026-12-02 21:59), then trained on.
HELDOUT18 = Path(__file__).resolve().parent / "heldout18"
# Sets written apart from the training text: none of their lines may repeat it.
UNSCORED_FOLDERS = (HELDOUT4, HELDOUT5, HELDOUT6, HELDOUT7, HELDOUT8, HELDOUT9,
                    HELDOUT10, HELDOUT11, HELDOUT12, HELDOUT13, HELDOUT14, HELDOUT15,
                    HELDOUT16, HELDOUT17, HELDOUT18)
HELD_OUT_FOLDERS = (HELDOUT, HELDOUT2, HELDOUT3, HELDOUT4, HELDOUT5, HELDOUT6,
                    HELDOUT7, HELDOUT8, HELDOUT9, HELDOUT10, HELDOUT11, HELDOUT12,
                    HELDOUT13, HELDOUT14, HELDOUT15, HELDOUT16, HELDOUT17, HELDOUT18)
# The sets the trainer, the evaluator and the proxy must never name: nothing trains on them yet.
# The eighth to fourteenth (each scored once on 2026-12-02) train since the ninth session; the
# fifteenth and sixteenth (scored once at its end, 20:03) since the tenth, and the seventeenth
# and eighteenth (written and scored once in the tenth, 21:59) since its last retrain.
# A new blind set goes in by its folder name (`HELDOUT19.name`).
BLIND_NAMES: tuple[str, ...] = ()
# Scored once each and reported, then trained on (train_stage2.SEEN_LATER).
LATER_SCORED = (HELDOUT5, HELDOUT6, HELDOUT7, HELDOUT8, HELDOUT9, HELDOUT10, HELDOUT11,
                HELDOUT12, HELDOUT13, HELDOUT14, HELDOUT15, HELDOUT16, HELDOUT17,
                HELDOUT18)
ALL_LANGUAGES = ("en", "nb", "nn", "sv", "da", "de", "es", "fr", "it", "nl", "pt")


def _toy(weights: dict[str, float], threshold: float = 0.5) -> Stage2Model:
    return Stage2Model(weights, bias=-1.0, threshold=threshold)


def test_features_of_a_message() -> None:
    found = list(features(normalize("Hi, Bob")))
    assert found == [" hi ", " hi", "hi ", " bob ", " bo", "bob", "ob ", " bob", "bob ", "hi|bob"]


def test_score_is_the_bias_plus_the_weights_of_every_feature() -> None:
    model = _toy({" hu": 0.5, "human": 1.0, "to|a": 0.25, " a ": -0.1, "zz": 9.0})
    texts = ["talk to a human", "human human", "", "a", "to a to a",
             "x " * MAX_CHARS + "human"]  # words past MAX_CHARS are not read
    for text in texts:
        normalized = normalize(text)
        expected = model.bias + sum(model.weights.get(f, 0.0) for f in features(normalized))
        assert model.score(normalized) == pytest.approx(expected), text
        assert model.score(normalized) == pytest.approx(expected), text  # cached words too
    assert model.score(normalize("x " * MAX_CHARS + "human")) == pytest.approx(
        model.bias + sum(model.weights.get(f, 0.0) for f in features(normalize("x " * MAX_CHARS))))


def test_a_class_word_adds_its_class_feature_to_the_score() -> None:
    classes = {"operador": "@staff", "operatore": "@staff"}
    assert next(iter(features(normalize("operador"), classes))) == "@staff"
    model = Stage2Model({"@staff": 2.0, " op": 0.5}, bias=-1.0, threshold=0.5, classes=classes)
    for text in ("operador", "operatore por favor", "opa"):
        normalized = normalize(text)
        expected = model.bias + sum(model.weights.get(f, 0.0)
                                    for f in features(normalized, classes))
        assert model.score(normalized) == pytest.approx(expected), text
    # A word the classes do not name gets no class weight: "opa" scores its n-grams only.
    assert model.score(normalize("opa")) == pytest.approx(-0.5)
    assert model.score(normalize("operatore")) == pytest.approx(1.5)


def test_word_classes_come_from_the_phrase_files_vocabularies() -> None:
    classes = train_stage2.word_classes()
    # Words for a member of staff in several languages share one class; common words do not.
    for word in ("operador", "operatore", "medarbeider", "mitarbeiter", "technicien"):
        assert classes.get(word) == "@staff", word
    for word in ("the", "og", "und", "parcel", "human rights"):
        assert word not in classes, word


def test_dump_and_load_keep_the_model(tmp_path: Path) -> None:
    model = Stage2Model({" a b": 0.1234, "x|y": -2.5, "@staff": 1.5}, bias=-3.25, threshold=0.9,
                        description="two lines\nof text", classes={"agente": "@staff"})
    path = tmp_path / "m.txt"
    model.dump(path)
    again = Stage2Model.load(path)
    assert again.weights == model.weights
    assert again.classes == {"agente": "@staff"}
    assert (again.bias, again.threshold, again.description) == (-3.25, 0.9, "two lines\nof text")
    again.dump(tmp_path / "m2.txt")
    assert (tmp_path / "m2.txt").read_bytes() == path.read_bytes()


def test_the_stage_rescues_what_the_patterns_miss(detector: HumanRequestDetector) -> None:
    toy = detector.with_stage2(_toy({" zorblat ": 5.0}))
    match = toy.detect_text("zorblat, zorblat")
    assert match is not None
    # No word of it is in a phrase file: the language is undetermined.
    assert (match.language, match.source, match.phrase) == (STAGE2_LANGUAGE, STAGE2_SOURCE,
                                                            "zorblat zorblat")
    assert toy.detect_text("nothing here") is None
    long = toy.detect_text("zorblat " + "and more " * MAX_CHARS)
    assert long is not None and len(long.phrase) < MAX_CHARS  # the part the model read
    # A pattern match wins: the stage is not asked.
    rules = toy.detect_text("I want to talk to a human, zorblat")
    assert rules is not None and rules.language == "en"
    assert detector.with_stage2(None).detect_text("zorblat, zorblat") is None


@pytest.mark.parametrize(("text", "language"), [
    ("zorblat jeres medarbejder", "da"),
    ("zorblat eg rådgjevar dykkar", "nn"),
    ("zorblat jag människa", "sv"),
    ("zorblat ich Mitarbeiterin sie", "de"),
    ("zorblat je conseiller", "fr"),
    ("zorblat could you the", "en"),
])
def test_a_rescued_message_reports_the_language_its_words_point_to(
    detector: HumanRequestDetector, text: str, language: str
) -> None:
    # Language routing reads the match's language; a rescue has no pattern to name one.
    assert detector.with_stage2(None).detect_text(text) is None
    match = detector.with_stage2(_toy({" zorblat ": 9.0})).detect_text(text)
    assert match is not None and match.source == STAGE2_SOURCE
    assert (match.language, match.languages[0]) == (language, language)


def test_vetoes_and_near_words_keep_the_stage_out(detector: HumanRequestDetector) -> None:
    toy = detector.with_stage2(_toy({" zorblat ": 5.0}))
    for text in ("are you a human? zorblat", "what are your opening hours? zorblat",
                 "what's your phone number zorblat", "my insurance agent zorblat",
                 "a humane zorblat", "humanly zorblat", "my agenda zorblat"):
        assert detector.with_stage2(None).detect_text(text) is None, text
        assert toy.detect_text(text) is None, text


def test_shipped_model_is_loaded_small_and_rescues_a_typo(detector: HumanRequestDetector) -> None:
    assert detector.stage2 is not None
    assert MODEL_FILE.stat().st_size < 2_000_000
    # Never below the floor that whole held-out sets showed was needed (train_stage2).
    assert train_stage2.MIN_THRESHOLD <= detector.stage2.threshold < 1
    # Two slips in one word, and words run together: beyond the typo step.
    text = "connectme to a human"
    assert detector.with_stage2(None).detect_text(text) is None
    match = detector.detect_text(text)
    assert match is not None and match.source == STAGE2_SOURCE


def test_training_rows_leave_out_hint3_and_every_unscored_held_out_set() -> None:
    rows = [Row("a", "human", "en", "github:hellohaptik/HINT3@1:x.csv"),
            Row("b", "other", "en", "heldout-2026-12-01"),
            Row("e", "human", "en", "heldout2-2026-12-02"),
            Row("c", "other", "en", "handwritten-fresh"),
            Row("d", "human", "en", "stage2-train"),
            Row("g", "human", "en", "heldout3-2026-12-02"),
            Row("h", "other", "en", "heldout3-2026-12-03"),
            Row("i", "human", "en", "heldout4"),
            Row("k", "human", "en", "heldout4-2026-12-02"),
            Row("l", "other", "en", "heldout4-2026-12-03"),
            Row("m", "human", "en", "heldout5"),
            Row("n", "human", "en", "heldout5-2026-12-02"),
            Row("o", "other", "en", "heldout5-2026-12-03"),
            Row("p", "human", "en", "heldout6-2026-12-02"),
            Row("q", "other", "en", "heldout6"),
            Row("r", "human", "en", "heldout7-2026-12-02"),
            Row("s", "other", "en", "heldout7"),
            Row("t", "human", "en", "heldout8-2026-12-02"),
            Row("u", "other", "en", "heldout8"),
            Row("j", "human", "en", "families-2026-12-02"),
            Row("f", "other", "en", "heldout-2026-12-02")]
    # The first ten held-out sets were scored and reported, so they train, each by its own
    # source only; no later one does.
    assert [row.text for row in train_stage2.training_rows(rows)] == ["b", "e", "c", "d", "g",
                                                                      "k", "n", "p", "r", "t",
                                                                      "j"]
    sentences = train_stage2.read_sentence_files()
    assert {row.lang for row in sentences} == set(ALL_LANGUAGES)
    assert {row.source for row in sentences} == {"stage2-train"}
    # The second held-out set shares no sentence with what trains but the six common
    # phrasings written twice, independently, the day it was scored (its README).
    shared = {row[0] for row in _heldout_rows(HELDOUT2)} & {row.text for row in sentences}
    assert len(shared) <= 6, sorted(shared)
    # The sets written apart from the training text share none.
    for folder in UNSCORED_FOLDERS:
        shared = {row[0] for row in _heldout_rows(folder)} & {row.text for row in sentences}
        assert not shared, (folder.name, sorted(shared))


def test_training_reads_the_scored_held_out_folders_and_never_the_blind_ones() -> None:
    for module in (train_stage2, evaluate_module, proxy_module):
        text = Path(module.__file__).read_text(encoding="utf-8")
        for name in BLIND_NAMES:
            assert name not in text, (module.__name__, name)
    assert train_stage2.SEEN_HELDOUT == HELDOUT / "heldout.csv"
    assert train_stage2.SEEN_HELDOUT2 == HELDOUT2 / "heldout.csv"
    assert train_stage2.SEEN_HELDOUT3 == HELDOUT3 / "heldout.csv"
    assert train_stage2.SEEN_HELDOUT4 == HELDOUT4 / "heldout.csv"
    assert tuple(folder / "heldout.csv" for folder in LATER_SCORED) == train_stage2.SEEN_LATER
    read = [train_stage2.SEEN_HELDOUT, train_stage2.SEEN_HELDOUT2, train_stage2.SEEN_HELDOUT3,
            train_stage2.SEEN_HELDOUT4, *train_stage2.SEEN_LATER, train_stage2.CHECK,
            train_stage2.FAMILIES, train_stage2.STAGE2_SENTENCES, train_stage2.HANDWRITTEN]
    # Only the parts inside the repository: a checkout folder may itself be named after a set.
    repo = HELDOUT.parent.parent.parent
    inside = [path.relative_to(repo) if path.is_relative_to(repo) else path for path in read]
    assert not any(name in part for name in BLIND_NAMES for path in inside for part in path.parts)
    # The proxy scores only sets already scored once.
    assert not any(blind in name for blind in BLIND_NAMES for name in proxy_module.SETS)
    dev = train_stage2.DEV_CSV
    if not dev.is_file():
        pytest.skip(f"{dev} is not here")
    groups = {source_group(row.source) for row in train_stage2.default_rows()}
    assert {group for group in groups if group.startswith("heldout")} == {
        "heldout-2026-12-01", "heldout2-2026-12-02", "heldout3-2026-12-02",
        "heldout4-2026-12-02", "heldout5-2026-12-02", "heldout6-2026-12-02",
        "heldout7-2026-12-02", "heldout8-2026-12-02", "heldout9-2026-12-02",
        "heldout10-2026-12-02", "heldout11-2026-12-02", "heldout12-2026-12-02",
        "heldout13-2026-12-02", "heldout14-2026-12-02", "heldout15-2026-12-02",
        "heldout16-2026-12-02", "heldout17-2026-12-02", "heldout18-2026-12-02"}
    assert "families-2026-12-02" in groups


def test_a_fit_is_reproducible(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    rows = [Row(f"talk to a person {i}", "human", "en", "t") for i in range(12)]
    rows += [Row(f"where is my parcel {i}", "other", "en", "t") for i in range(24)]
    first = train_stage2.fit(rows, threshold=0.9)
    second = train_stage2.fit(rows, threshold=0.9)
    first.dump(tmp_path / "a.txt")
    second.dump(tmp_path / "b.txt")
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()
    assert first.probability(normalize("talk to a person")) > 0.5
    assert first.probability(normalize("where is my parcel")) < 0.5


def _heldout_rows(folder: Path = HELDOUT) -> list[tuple[str, ...]]:
    with open(folder / "heldout.csv", encoding="utf-8", newline="") as handle:
        return [tuple(row) for row in csv.reader(handle)][1:]


@pytest.mark.parametrize("folder", HELD_OUT_FOLDERS, ids=lambda folder: folder.name)
def test_heldout_csv_is_built_from_its_sentence_files(folder: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_heldout", folder / "make_heldout.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert _heldout_rows(folder) == module.rows(), f"run tests/triggers/{folder.name}/make_heldout.py"


def test_check_csv_is_built_from_its_sentence_files_and_trains() -> None:
    check = HELDOUT.parent / "check"
    spec = importlib.util.spec_from_file_location("make_check", check / "make_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(check / "check.csv", encoding="utf-8", newline="") as handle:
        on_disk = [tuple(row) for row in csv.reader(handle)][1:]
    assert on_disk == module.rows(), "run tests/triggers/check/make_check.py"
    assert {row[2] for row in on_disk} == set(ALL_LANGUAGES)
    # Scored once and reported (its README), so it is seen data and the trainer keeps it.
    assert check / "check.csv" == train_stage2.CHECK
    rows = [Row(*row) for row in on_disk]
    assert len(train_stage2.training_rows(rows)) == len(rows)


@pytest.mark.parametrize(("folder", "humans", "others", "borderlines"),
                         [(HELDOUT, 20, 40, 4), (HELDOUT2, 35, 70, 4), (HELDOUT3, 40, 80, 4),
                          (HELDOUT4, 30, 60, 4), (HELDOUT5, 35, 64, 0), (HELDOUT6, 35, 64, 0),
                          (HELDOUT7, 35, 64, 0), (HELDOUT8, 35, 64, 0),
                          (HELDOUT9, 35, 64, 0), (HELDOUT10, 35, 64, 0),
                          (HELDOUT11, 35, 64, 0), (HELDOUT12, 35, 64, 0),
                          (HELDOUT13, 35, 64, 0), (HELDOUT14, 35, 64, 0),
                          (HELDOUT15, 35, 64, 0), (HELDOUT16, 35, 64, 0),
                          (HELDOUT17, 35, 64, 0), (HELDOUT18, 35, 64, 0)],
                         ids=["heldout", "heldout2", "heldout3", "heldout4", "heldout5",
                              "heldout6", "heldout7", "heldout8", "heldout9", "heldout10",
                              "heldout11", "heldout12", "heldout13", "heldout14",
                              "heldout15", "heldout16", "heldout17", "heldout18"])
def test_heldout_set_covers_every_language(folder: Path, humans: int, others: int,
                                           borderlines: int) -> None:
    rows = _heldout_rows(folder)
    for lang in ALL_LANGUAGES:
        labels = [row[1] for row in rows if row[2] == lang]
        assert labels.count("human") >= humans, lang
        assert labels.count("other") >= others, lang
        assert labels.count("borderline") >= borderlines, lang


@pytest.mark.parametrize("folder", UNSCORED_FOLDERS, ids=lambda folder: folder.name)
def test_unscored_heldout_set_repeats_no_seen_or_training_text(folder: Path) -> None:
    # Its overlap script prints only the set's own lines, so a failure shows no training text.
    spec = importlib.util.spec_from_file_location("check_overlap",
                                                  folder / "check_overlap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.collisions() == []


def test_eval_triggers_scores_with_and_without_the_stage(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from handoff.cli import main

    data = tmp_path / "rows.csv"
    data.write_text("text,label,lang\nconnectme to a human,human,en\nwhere is my parcel,other,en\n",
                    encoding="utf-8")
    runner = CliRunner()
    recall = {}
    for flag in ("--stage2", "--no-stage2"):
        result = runner.invoke(main, ["eval-triggers", str(data), "--json", flag])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        recall[flag] = report["recall"]
        assert report["false_positive_rate"] == 0.0
    assert recall == {"--stage2": 1.0, "--no-stage2": 0.0}
