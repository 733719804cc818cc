"""Handoff triggers: pure matchers run on every visitor message.

`normalize` once per message, then hand the result to `HumanRequestDetector.detect`
and `CustomPhraseMatcher.match`; neither does I/O after construction.
"""

from handoff.triggers.custom import CustomPhraseMatcher, normalize_phrase
from handoff.triggers.human_request import HumanRequestDetector, HumanRequestMatch
from handoff.triggers.normalize import normalize

__all__ = [
    "CustomPhraseMatcher",
    "HumanRequestDetector",
    "HumanRequestMatch",
    "normalize",
    "normalize_phrase",
]
