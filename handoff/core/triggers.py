"""Which handoff trigger, if any, a message fires: the three defaults and the editor's phrases."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from handoff.core.state import AccountSettings
from handoff.triggers.custom import CustomPhraseMatcher
from handoff.triggers.human_request import HumanRequestMatch
from handoff.triggers.normalize import normalize
from schemas.common import Sender, TriggerKind
from schemas.inputs import ChatMessage


class Fired(NamedTuple):  # a named tuple for the speed of making one, as `Write`
    kind: TriggerKind
    phrase: str | None = None
    language: str | None = None


class HumanDetector(Protocol):
    """What the core asks of the human-request detector (`HumanRequestDetector`)."""

    def detect(self, normalized_text: str) -> HumanRequestMatch | None: ...


class Matchers:
    """The human-request detector and one compiled phrase matcher per settings version.

    Compiling is pure and deterministic, so caching it keeps the core pure while sparing the
    hot path from rebuilding an automaton for every message.
    """

    def __init__(self, human: HumanDetector, cache_size: int = 1024) -> None:
        self.human = human
        self._custom: dict[tuple[str, int], tuple[list[str], CustomPhraseMatcher]] = {}
        self._cache_size = cache_size

    def custom(self, settings: AccountSettings) -> CustomPhraseMatcher:
        """The phrase matcher for these settings, compiled once."""
        key = (settings.account_id, settings.version)
        phrases = settings.config.custom_triggers
        hit = self._custom.get(key)
        # What-if runs reuse version numbers with other phrases: compare before trusting a hit.
        if hit is not None and (hit[0] is phrases or hit[0] == phrases):
            return hit[1]
        if len(self._custom) >= self._cache_size:
            self._custom.pop(next(iter(self._custom)))
        matcher = CustomPhraseMatcher(phrases)
        self._custom[key] = (phrases, matcher)
        return matcher


def detect(message: ChatMessage, paused: bool, settings: AccountSettings,
           matchers: Matchers) -> Fired | None:
    """The trigger this message fires in a conversation the customer agent still owns.

    Order: the customer agent could not answer; it is paused; an editor's phrase (the most
    specific, and what workflows route on); a request for a human.
    """
    if message.sender is Sender.CUSTOMER_AGENT:
        return Fired(TriggerKind.NO_ANSWER) if message.answered is False else None
    if message.sender is not Sender.VISITOR:
        return None
    if paused:
        return Fired(TriggerKind.AGENT_PAUSED)
    text = normalize(message.text)
    custom = matchers.custom(settings)
    if len(custom):
        phrase = custom.match(text)
        if phrase is not None:
            return Fired(TriggerKind.CUSTOM_PHRASE, phrase=phrase)
    human = matchers.human.detect(text)
    if human is not None:
        return Fired(TriggerKind.HUMAN_REQUESTED, phrase=human.phrase, language=human.language)
    return None
