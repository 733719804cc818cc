"""The statistical second stage: character n-grams and a linear model, scored in pure Python.

The phrase files miss what they were not written for (new vocabulary, a second typo, a
construction no line covers).  This stage scores a message the phrase files did not match
and did not veto; above the model's threshold it counts as a request.  Training
(`handoff.triggers.train_stage2`, scikit-learn, a fixed seed) writes `data/stage2/model.txt`;
inference needs only this module: the weights are a dict from feature string to float, and
a message's score is a sum of look-ups, so there is nothing to hash or vectorise.  A word's
own features always sum to the same amount, so that sum is kept per word (`_word_scores`):
a message then costs a look-up per word and per pair of words.

`features` is the one definition of a feature, used by training and inference alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["MAX_CHARS", "MODEL_FILE", "Stage2Model", "features", "pair_feature", "word_features"]

MODEL_FILE = Path(__file__).resolve().parent / "data" / "stage2" / "model.txt"
# Requests are short; a long message is scored on its opening, so the cost per message
# stays bounded (the phrase files still read the whole message).
MAX_CHARS = 240
_NGRAMS = (3, 4, 5)
_WORD_CACHE_SIZE = 100_000


# No word classes: the features of a model trained without them.
_NO_CLASSES: Mapping[str, str] = {}


def word_features(word: str, classes: Mapping[str, str] = _NO_CLASSES) -> Iterator[str]:
    """One word's features: the word with its boundary spaces, its character n-grams and, if
    `classes` names it, its class ("@staff"): one feature shared by the words for a member of
    staff in every language, so what the model learns of "operador" in Spanish carries to
    "operatore" and "operator" and to a word one set used that another never did."""
    cls = classes.get(word)
    if cls is not None:
        yield cls
    padded = f" {word} "
    length = len(padded)
    yield padded
    for n in _NGRAMS:
        if n >= length:
            break
        for i in range(length - n + 1):
            yield padded[i : i + n]


def pair_feature(previous: str, word: str) -> str:
    """The feature of two neighbouring words."""
    return f"{previous}|{word}"


def features(normalized_text: str, classes: Mapping[str, str] = _NO_CLASSES) -> Iterator[str]:
    """Features of a `normalize`d message, repeats included (counts, not a set).

    Per word: the word itself with its boundary spaces (" human ") and its character
    3- to 5-grams inside those spaces, so a typo still shares most of its n-grams with
    the word; per pair of neighbouring words: "word1|word2", which tells "insurance agent"
    from "an agent".
    """
    previous = ""
    for word in normalized_text[:MAX_CHARS].split():
        yield from word_features(word, classes)
        if previous:
            yield pair_feature(previous, word)
        previous = word


class Stage2Model:
    """A linear model over `features`: bias, weights and the decision threshold."""

    __slots__ = ("_word_scores", "bias", "classes", "description", "threshold", "weights")

    def __init__(self, weights: dict[str, float], bias: float, threshold: float,
                 description: str = "", classes: Mapping[str, str] | None = None) -> None:
        """Weights by feature string; `threshold` is on the probability (0..1); `classes`:
        word -> class feature (see `word_features`), part of the model as its weights are."""
        self.classes: dict[str, str] = dict(classes or {})
        self.weights = weights
        self.bias = bias
        self.threshold = threshold
        self.description = description
        # word -> the sum of its `word_features` weights: a pure function of the word, so
        # the cache changes no result; it is emptied when full to bound memory.
        self._word_scores: dict[str, float] = {}

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> Stage2Model:
        """Read a model file written by `dump`."""
        weights: dict[str, float] = {}
        bias = 0.0
        threshold = 0.5
        description: list[str] = []
        classes: dict[str, str] = {}
        with open(path, encoding="utf-8") as handle:
            for raw in handle:
                line = raw.rstrip("\n")
                if line.startswith("#"):
                    description.append(line[1:].strip())
                elif line.startswith("bias\t"):
                    bias = float(line[5:])
                elif line.startswith("threshold\t"):
                    threshold = float(line[10:])
                elif line.startswith("class\t"):
                    _, name, word = line.split("\t", 2)
                    classes[word] = name
                elif line:
                    weight, feature = line.split("\t", 1)
                    weights[feature] = float(weight)
        return cls(weights, bias, threshold, "\n".join(description), classes)

    def dump(self, path: Path) -> None:
        """Write the model as text: comment lines, bias, threshold, then weight<TAB>feature."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            for line in self.description.splitlines():
                handle.write(f"# {line}\n")
            handle.write(f"bias\t{self.bias:.6g}\n")
            handle.write(f"threshold\t{self.threshold:.6g}\n")
            for word in sorted(self.classes):
                handle.write(f"class\t{self.classes[word]}\t{word}\n")
            # Sorted by feature so a retrain with the same inputs writes the same bytes.
            for feature in sorted(self.weights):
                handle.write(f"{self.weights[feature]:.4g}\t{feature}\n")

    @property
    def margin(self) -> float:
        """The threshold as a raw score (log-odds), so `accepts` needs no exponent."""
        p = min(max(self.threshold, 1e-9), 1 - 1e-9)
        return math.log(p / (1 - p))

    def score(self, normalized_text: str) -> float:
        """The raw score (log-odds) of a `normalize`d message being a request."""
        get = self.weights.get
        cached = self._word_scores
        classes = self.classes
        total = self.bias
        previous = ""
        for word in normalized_text[:MAX_CHARS].split():
            own = cached.get(word)
            if own is None:
                own = sum(get(feature, 0.0) for feature in word_features(word, classes))
                if len(cached) >= _WORD_CACHE_SIZE:
                    cached.clear()
                cached[word] = own
            total += own
            if previous:
                total += get(f"{previous}|{word}", 0.0)
            previous = word
        return total

    def probability(self, normalized_text: str) -> float:
        """`score` as a probability."""
        return 1.0 / (1.0 + math.exp(-self.score(normalized_text)))

    def __len__(self) -> int:
        """Number of features with a weight."""
        return len(self.weights)
