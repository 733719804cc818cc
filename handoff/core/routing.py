"""Routing: which inbox or help desk a handed-off conversation lands in, and who gets it.

Each function returns a `Routed` outcome with the reasoning spelled out, because every
assignment must say in words why this assignee was chosen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

from handoff.core.availability import agent_unavailable_reason, team_open
from handoff.core.state import AccountState, build
from handoff.core.store import Overlay
from handoff.triggers.custom import normalize_phrase
from schemas.common import Channel, Process
from schemas.inputs import AssignRotate, AssignTeam, Workflow, WorkflowCondition
from schemas.outputs import Trigger
from schemas.settings import Assignee, DirectRouting

MessageKind = Literal["available", "unavailable", "unassigned"]


@dataclass(slots=True)
class Routed:
    assignee: Assignee | None
    rule: str
    message: MessageKind
    candidates: list[str] = field(default_factory=list)
    # Rotation cursors to advance: key -> next position.
    rotations: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Facts:
    """What routing may condition on: the conversation, the trigger and the time."""

    account_id: str
    channel: Channel
    inbox_id: str | None
    language: str | None
    trigger: Trigger
    at: datetime


@dataclass(frozen=True, slots=True)
class Choice:
    """Who may be chosen beyond presence, capacity and hours (contract v1.1)."""

    # Users who let this conversation time out or released it: not offered it again.
    declined: tuple[str, ...] = ()
    # Prefer users who speak this language (the conversation's, else the detector's).
    language: str | None = None
    # Wait for a speaker rather than give it to anyone (in the queue, before the fallback);
    # only while someone in the pool speaks the language at all.
    speakers_only: bool = False


# Norwegian is written as Bokmål (nb), Nynorsk (nn) or just "no": a user who reads one reads
# the others, so language routing treats them as one language.
_SAME_LANGUAGE = {"nb": "no", "nn": "no"}


def language_code(tag: str | None) -> str | None:
    """The language of a tag as routing compares it: its primary subtag, lower case."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return _SAME_LANGUAGE.get(primary, primary) or None


_NAMES = {"en": "English", "no": "Norwegian", "sv": "Swedish", "da": "Danish", "de": "German",
          "es": "Spanish", "fr": "French", "it": "Italian", "nl": "Dutch", "pt": "Portuguese",
          "fi": "Finnish"}


def language_name(code: str | None) -> str:
    """A `language_code` as a rule says it ("Norwegian"), else the code itself."""
    return _NAMES.get(code or "", code or "?")


def speaks(account: AccountState, user_id: str, language: str) -> bool:
    """Whether the directory lists `language` (a `language_code`) among the user's."""
    user = account.users.get(user_id)
    return user is not None and any(language_code(x) == language for x in user.languages)


def label(account: AccountState, kind: str, ident: str) -> str:
    """A user or team as rules name them: "Name (id)", or the id when it has no other name."""
    entry = account.users.get(ident) if kind == "user" else account.teams.get(ident)
    name = entry.name if entry is not None else ""
    return f"{name} ({ident})" if name and name != ident else ident


# What routing derives from an account's directory (and its settings' assignees) alone, kept
# per state object: states are frozen and replaced, never changed, when the directory or the
# settings change, so the same objects give the same answer. Each entry holds its objects, so
# their ids cannot be reused while it is kept; the most recent few hundred are kept (a worker
# busy with more accounts than that recomputes, as before).
_KEPT = 512
Pool = list[tuple[str, str | None]]
_TEAMS: dict[int, tuple[AccountState, dict[str, list[str]]]] = {}
_PLANS: dict[tuple[int, int], tuple[AccountState, DirectRouting, str, Pool]] = {}


K = TypeVar("K")
V = TypeVar("V")


def _remember(memo: dict[K, V], key: K, value: V) -> V:
    if len(memo) >= _KEPT:
        memo.pop(next(iter(memo)))
    memo[key] = value
    return value


def team_members(account: AccountState, team_id: str) -> list[str]:
    """Members of a team in directory order, which is the rotation order."""
    hit = _TEAMS.get(id(account))
    if hit is None or hit[0] is not account:
        teams: dict[str, list[str]] = {}
        for u in account.users.values():
            for team in dict.fromkeys(u.teams):
                teams.setdefault(team, []).append(u.id)
        hit = _remember(_TEAMS, id(account), (account, teams))
    return list(hit[1].get(team_id, ()))


def _direct_plan(account: AccountState, routing: DirectRouting) -> tuple[str, Pool]:
    """The configured assignees in words, and live routing's pool (see `_expand`)."""
    hit = _PLANS.get((id(account), id(routing)))
    if hit is None or hit[0] is not account or hit[1] is not routing:
        configured = ", ".join(f"{a.type} {label(account, a.type, a.id)}"
                               for a in routing.assignees)
        hit = _remember(_PLANS, (id(account), id(routing)),
                        (account, routing, configured, _expand(account, routing.assignees)))
    return hit[2], hit[3]


def _expand(account: AccountState, assignees: list[Assignee]) -> Pool:
    """Flatten configured users and teams into (user id, via team) without repeats."""
    seen: set[str] = set()
    out: Pool = []
    for entry in assignees:
        members = [entry.id] if entry.type == "user" else team_members(account, entry.id)
        via = None if entry.type == "user" else entry.id
        for user_id in members:
            if user_id not in seen:
                seen.add(user_id)
                out.append((user_id, via))
    return out


def _ring(start: int, size: int) -> Iterator[int]:
    for step in range(size):
        yield (start + step) % size


def _first_available(
    store: Overlay,
    account: AccountState,
    pool: list[tuple[str, str | None]],
    cursor_key: str,
    at: datetime,
    choice: Choice,
) -> tuple[str | None, str | None, list[str], dict[str, int]]:
    """Round robin from the cursor to the first available user (a speaker of the language
    first, when preferred); also says who was passed over and why."""
    notes: list[str] = []
    if not pool:
        return None, None, notes, {}
    language = choice.language
    start = store.rotation(cursor_key)
    fallback: int | None = None
    opened: dict[str, bool] = {}  # a team's hours, looked up once for all of its members
    size = len(pool)
    for step in range(size):
        index = (start + step) % size
        user_id, via = pool[index]
        reason = agent_unavailable_reason(store.agent(user_id))
        if reason is None and via is not None:
            team = account.teams.get(via)
            if team is not None and via not in opened:
                opened[via] = team_open(team, at)
            if team is None:
                reason = f"team {via} not in the directory"
            elif not opened[via]:
                reason = f"team {label(account, 'team', via)} outside business hours"
        if reason is None and user_id in choice.declined:
            reason = "declined this conversation (timed out or released it)"
        if reason is None and language is not None and not speaks(account, user_id, language):
            reason = f"does not speak {language_name(language)}"
            if fallback is None:
                fallback = index
        if reason is None:
            notes.append(f"{user_id}: chosen"
                         + (f", speaks {language_name(language)}" if language else ""))
            return user_id, via, notes, {cursor_key: (index + 1) % len(pool)}
        notes.append(f"{user_id}: {reason}")
    if fallback is not None:
        waits = choice.speakers_only and any(
            speaks(account, u, language or "") and u not in choice.declined for u, _ in pool)
        if not waits:
            user_id, via = pool[fallback]
            notes = [n for n in notes if n != f"{user_id}: does not speak {language_name(language)}"]
            notes.append(f"{user_id}: chosen, nobody speaking {language_name(language)} "
                         "is available")
            return user_id, via, notes, {cursor_key: (fallback + 1) % len(pool)}
        notes.append(f"waiting for a user who speaks {language_name(language)}")
    return None, None, notes, {}


def assignee_available(store: Overlay, account: AccountState, entry: Assignee, at: datetime) -> bool:
    """A user who can take a chat now, or a team that is open with such a member."""
    if entry.type == "user":
        return agent_unavailable_reason(store.agent(entry.id)) is None
    team = account.teams.get(entry.id)
    if team is None or not team_open(team, at):
        return False
    return any(
        agent_unavailable_reason(store.agent(u)) is None for u in team_members(account, entry.id)
    )


def route_direct(
    store: Overlay, account: AccountState, routing: DirectRouting, process: Process, facts: Facts,
    choice: Choice = Choice(),
) -> Routed:
    """Same users or teams for every issue: live takes the next available, async rotates all."""
    configured, pool = _direct_plan(account, routing)
    if process is Process.LIVE:
        key = f"{facts.account_id}|direct|live"
        user_id, via, notes, cursor = _first_available(store, account, pool, key, facts.at,
                                                       choice)
        if user_id is None:
            why = "no assignees are configured" if not pool else "nobody is available"
            if notes and notes[-1].startswith("waiting for"):
                why = f"nobody who speaks {language_name(choice.language)} is available"
            return Routed(None, f"Live handoff: {why} among [{configured}]; left unassigned.",
                          "unavailable", notes)
        through = f" of team {label(account, 'team', via)}" if via else ""
        how = next(n for n in notes if n.startswith(f"{user_id}: chosen"))
        how = how.removeprefix(f"{user_id}: chosen")
        rule = (f"Live handoff: {label(account, 'user', user_id)}{through} is the next available "
                f"agent in the rotation over [{configured}]{how}")
        skipped = [n for n in notes if ": chosen" not in n]
        if skipped:
            rule += "; passed over " + ", ".join(skipped)
        return Routed(build(Assignee, {"type": "user", "id": user_id}), rule + ".", "available",
                      notes, cursor)

    # Async: the case waits for follow-up, so presence does not matter for who gets it.
    anyone = any(assignee_available(store, account, a, facts.at) for a in routing.assignees)
    message: MessageKind = "available" if anyone else "unavailable"
    if not routing.assignees:
        return Routed(None, "Asynchronous handoff: no assignees are configured; left unassigned.",
                      "unavailable")
    key = f"{facts.account_id}|direct|async"
    index = store.rotation(key) % len(routing.assignees)
    chosen = routing.assignees[index]
    rule = (f"Asynchronous handoff: {chosen.type} {label(account, chosen.type, chosen.id)} is next "
            f"in the rotation over [{configured}] (presence is not considered for follow-up)")
    return Routed(chosen, rule + ".", message, [f"{chosen.id}: chosen"],
                  {key: (index + 1) % len(routing.assignees)})


def condition_matches(when: WorkflowCondition, facts: Facts) -> bool:
    """Whether a workflow rule's `when` accepts these facts (absent keys accept anything)."""
    if when.channel is not None and facts.channel not in when.channel:
        return False
    if when.trigger is not None and facts.trigger.kind not in when.trigger:
        return False
    if when.language is not None:
        language = facts.language or facts.trigger.language
        if language is None or language.lower() not in {x.lower() for x in when.language}:
            return False
    if when.inbox_id is not None and facts.inbox_id not in when.inbox_id:
        return False
    if when.phrase is not None:
        phrase = facts.trigger.phrase
        if phrase is None or normalize_phrase(phrase) not in {normalize_phrase(p) for p in when.phrase}:
            return False
    return True


def route_workflow(
    store: Overlay, account: AccountState, workflow: Workflow | None, workflow_id: str,
    facts: Facts, choice: Choice = Choice(),
) -> Routed:
    """Ticket-based workflow: the first rule whose conditions match assigns the ticket."""
    if workflow is None:
        return Routed(None, f"Workflow {workflow_id} does not exist; the ticket is unassigned.",
                      "unassigned")
    title = f"Workflow '{workflow.name or workflow.workflow_id}'"
    for number, rule in enumerate(workflow.rules, start=1):
        if not condition_matches(rule.when, facts):
            continue
        assign = rule.assign
        key = f"{facts.account_id}|workflow|{workflow.workflow_id}|{number}"
        if isinstance(assign, AssignRotate):
            size = len(assign.rotate)
            over = ", ".join(assign.rotate)
            for index in _ring(store.rotation(key) % size, size):
                user_id = assign.rotate[index]
                if user_id in choice.declined:
                    continue
                return Routed(
                    build(Assignee, {"type": "user", "id": user_id}),
                    f"{title}, rule {number}: rotates the owner over [{over}]; "
                    f"{label(account, 'user', user_id)} is next.",
                    "available", [f"{user_id}: chosen"], {key: (index + 1) % size})
            return Routed(None, f"{title}, rule {number}: every user of the rotation [{over}] "
                          "declined this conversation; the ticket is unassigned.", "unassigned",
                          [f"{u}: declined this conversation" for u in assign.rotate])
        if isinstance(assign, AssignTeam):
            pool: list[tuple[str, str | None]] = [
                (u, assign.team) for u in team_members(account, assign.team)]
            found, _, notes, cursor = _first_available(store, account, pool, key, facts.at,
                                                       choice)
            team = label(account, "team", assign.team)
            if found is None:
                why = "; ".join(notes) or "the team has no members"
                return Routed(None, f"{title}, rule {number}: no member of team {team} is "
                              f"available ({why}); the ticket is unassigned.", "unassigned", notes)
            return Routed(build(Assignee, {"type": "user", "id": found}),
                          f"{title}, rule {number}: {label(account, 'user', found)} is the next "
                          f"available member of team {team}.", "available", notes, cursor)
        if assign.user in choice.declined:
            return Routed(None, f"{title}, rule {number}: assigns "
                          f"{label(account, 'user', assign.user)}, who declined this "
                          "conversation; the ticket is unassigned.", "unassigned",
                          [f"{assign.user}: declined this conversation"])
        return Routed(build(Assignee, {"type": "user", "id": assign.user}),
                      f"{title}, rule {number}: assigns {label(account, 'user', assign.user)}.",
                      "available", [f"{assign.user}: chosen"])
    return Routed(None, f"{title}: no rule matched; the ticket is unassigned.", "unassigned")
