"""Realistic traffic for the broker benchmarks: accounts, their settings, and chat messages.

Several accounts, each with an inbox, a team, agents with presence and capacity, an editor and
settings with custom phrases in several languages (half route directly, half through a
ticket-based workflow). Conversations run over several channels and languages; a few percent of
the messages fire a trigger: a visitor asking for a human (nine languages), an editor's phrase,
or the customer agent failing to answer.

Which messages hand off is not guessed: `expected_handoffs` runs the core's own `detect` over
the generated messages, conversation by conversation, so the benchmark knows exactly how many
`handoff.events` records a correct worker publishes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from handoff.core.state import AccountSettings
from handoff.core.triggers import Matchers, detect
from handoff.triggers.human_request import HumanRequestDetector
from schemas.common import Process
from schemas.inputs import ChatMessage
from schemas.settings import HandoffConfig

T_SETUP = "2026-11-26T07:00:00Z"

# Visitor messages that ask nothing of a human, by language (most traffic).
ORDINARY: dict[str, list[str]] = {
    "en": [
        "Hi, where is my order 4471-2281?", "Do you ship to Iceland?",
        "What does the premium plan cost per month?", "The app crashes when I log in, any idea why?",
        "Can I change the delivery address on my order?", "How long does shipping to Germany take?",
        "My discount code SUMMER24 does not work", "Is the blue jacket available in size M?",
        "ok thanks, bye", "I forgot my password and the reset mail never came",
        "Can I pay with PayPal?", "What are your opening hours on Saturday?",
        "The tracking page says delivered but I have nothing", "Do you have a student discount?",
        "How do I update my billing address?", "Thanks, that solved it!",
        "Is there a warranty on the headphones?", "Can I pick up the parcel at a store?",
    ],
    "nb": [
        "Hei, hvor er pakken min?", "Kan jeg endre leveringsadressen min?",
        "Hvor lang tid tar levering til Tromsø?", "Har dere jakken i størrelse L?",
        "Takk for hjelpen!", "Jeg får ikke logget inn i appen",
        "Hva koster frakt til Svalbard?", "Kan jeg betale med Vipps?",
    ],
    "sv": [
        "Hej, när kommer min beställning?", "Kan jag byta storlek på tröjan?",
        "Vad kostar frakten till Finland?", "Tack så mycket!",
    ],
    "da": [
        "Hej, hvornår bliver min pakke leveret?", "Kan jeg ændre min adresse?",
        "Har I åbent i weekenden?",
    ],
    "de": [
        "Ich habe eine Frage zu meiner Bestellung", "Wann wird mein Paket geliefert?",
        "Kann ich die Lieferadresse noch ändern?", "Danke, das hat geholfen",
        "Gibt es die Schuhe auch in Größe 42?",
    ],
    "es": [
        "¿Cuándo llega mi pedido?", "¿Hacen envíos a Canarias?", "Gracias por la ayuda",
        "No puedo iniciar sesión en la aplicación",
    ],
    "fr": [
        "Bonjour, où en est ma commande ?", "Livrez-vous en Belgique ?", "Merci beaucoup !",
        "Je n'arrive pas à me connecter",
    ],
}

# A visitor asking to be handed to a human, by language.
HUMAN: dict[str, list[str]] = {
    "en": ["I want to talk to a human", "Can I speak to a real person please?",
           "agent please", "This bot is useless, get me a human agent",
           "Please connect me with customer service representative"],
    "nb": ["Kan jeg snakke med et menneske?", "Hallo? Menneske, takk!",
           "Jeg vil snakke med en ekte person"],
    "sv": ["Kan jag få prata med en människa?", "Jag vill prata med en riktig person"],
    "da": ["Kan jeg tale med et menneske?"],
    "de": ["Ich möchte mit einem echten Mitarbeiter sprechen",
           "Bitte verbinden Sie mich mit einem Menschen"],
    "es": ["Quiero hablar con un agente, por favor", "¿Puedo hablar con una persona real?"],
    "fr": ["Je veux parler à un conseiller", "Je voudrais parler à un humain s'il vous plaît"],
}

# An editor's phrases, and visitor messages that contain them.
CUSTOM_PHRASES = ["refund", "refusjon", "oppsigelse", "Kündigung", "reembolso", "remboursement",
                  "chargeback", "cancel my subscription", "faktura", "reklamation", "klage"]
CUSTOM_TEXTS: dict[str, list[str]] = {
    "en": ["I would like a refund for order 1234.", "I will file a chargeback if this goes on",
           "Please cancel my subscription today"],
    "nb": ["Jeg vil ha refusjon", "Jeg har et spørsmål om faktura 5531",
           "Jeg vil levere oppsigelse av abonnementet"],
    "sv": ["Jag vill göra en reklamation på skorna"],
    "da": ["Jeg vil gerne klage over leveringen"],
    "de": ["Ich möchte meine Kündigung einreichen"],
    "es": ["Quiero un reembolso de mi pedido"],
    "fr": ["Je demande un remboursement"],
}

AGENT_REPLIES = ["We are open 08-16 on weekdays.", "Your order left our warehouse yesterday.",
                 "You can change the address under My orders.", "Shipping takes 2-4 days.",
                 "Here is a link to reset your password.", "Glad I could help!",
                 "Yes, we accept PayPal and cards."]
AGENT_UNSURE = "I am not sure about that."

CHANNELS = [("chat", 45), ("whatsapp", 20), ("email", 12), ("messenger", 8), ("sms", 5),
            ("instagram", 5), ("form", 3), ("voice", 2)]
LOCALES = [["en"], ["nb", "en"], ["sv", "en"], ["da", "en"], ["de", "en"], ["es"], ["fr"],
           ["en", "nb", "sv", "da", "de", "es", "fr"]]


@dataclass(frozen=True)
class Rates:
    """Per-message probabilities of the triggering kinds (the rest is ordinary traffic)."""

    human: float = 0.02      # a visitor message asks for a human
    custom: float = 0.015    # a visitor message carries an editor's phrase
    no_answer: float = 0.02  # a customer-agent reply says it could not answer
    visitor: float = 0.55    # share of messages sent by the visitor


@dataclass
class Account:
    account_id: str
    languages: list[str]
    workflow: bool
    custom_triggers: list[str]
    process: str

    def settings(self) -> AccountSettings:
        return AccountSettings(account_id=self.account_id, version=1, config=HandoffConfig(
            custom_triggers=self.custom_triggers, process=Process(self.process)))


def make_accounts(count: int, seed: int = 3) -> list[Account]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        phrases = rng.sample(CUSTOM_PHRASES, k=rng.randint(5, len(CUSTOM_PHRASES)))
        # Some editors keep long lists (product names, legal words): a few hundred filler phrases.
        if i % 5 == 4:
            phrases += [f"sku {rng.randrange(10**6):06d} recall" for _ in range(300)]
        out.append(Account(account_id=f"acct-{i:03d}", languages=LOCALES[i % len(LOCALES)],
                           workflow=i % 2 == 1, custom_triggers=phrases,
                           process="async" if i % 7 == 6 else "live"))
    return out


def setup_fixture(accounts: list[Account], agents_per_account: int = 3,
                  max_open: int = 25) -> tuple[dict[str, list[dict[str, Any]]],
                                               list[dict[str, Any]]]:
    """Directory, workflows and presence (first), and the config requests (after them)."""
    directory: list[dict[str, Any]] = []
    workflows: list[dict[str, Any]] = []
    presence: list[dict[str, Any]] = []
    configs: list[dict[str, Any]] = []
    for a in accounts:
        p = a.account_id
        users = [f"{p}-u{j}" for j in range(agents_per_account)]
        directory += [
            {"kind": "inbox", "id": f"{p}-support", "account_id": p, "type": "inbox"},
            {"kind": "inbox", "id": f"{p}-helpdesk", "account_id": p, "type": "help_desk"},
            {"kind": "team", "id": f"{p}-team", "account_id": p, "name": "Support",
             "timezone": "Europe/Oslo", "business_hours": None},
            {"kind": "user", "id": f"{p}-editor", "account_id": p, "name": "Editor",
             "teams": [], "permissions": ["customer_agent.edit"]},
            *({"kind": "user", "id": u, "account_id": p, "name": u, "teams": [f"{p}-team"],
               "permissions": []} for u in users),
        ]
        presence += [{"event_id": f"p-{u}", "user_id": u, "status": "available",
                      "occurred_at": T_SETUP, "max_open_conversations": max_open} for u in users]
        if a.workflow:
            workflows.append({"workflow_id": f"{p}-wf", "account_id": p, "name": "Reassign",
                              "rules": [{"when": {"channel": ["email", "form"]},
                                         "assign": {"rotate": users}},
                                        {"when": {}, "assign": {"team": f"{p}-team"}}]})
            routing: dict[str, Any] = {"mode": "workflow", "workflow_id": f"{p}-wf",
                                       "destination": f"{p}-helpdesk"}
        else:
            routing = {"mode": "direct", "destination": f"{p}-support",
                       "assignees": [{"type": "user", "id": u} for u in users]}
        configs.append({"event_id": f"cfg-{p}", "account_id": p, "actor": f"{p}-editor",
                        "occurred_at": T_SETUP,
                        "config": {"custom_triggers": a.custom_triggers, "process": a.process,
                                   "routing": routing}})
    return {"directory": directory, "workflows": workflows, "presence": presence}, configs


@dataclass
class _Conversation:
    conversation_id: str
    account: Account
    channel: str
    language: str
    inbox_id: str
    contact_id: str
    sent: int = 0


@dataclass
class Traffic:
    """Generated messages (encoded, keyed by conversation) and what a correct worker does."""

    records: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    conversations: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # fired trigger kind -> handoffs
    fired_messages: int = 0  # messages that would fire in a bot-owned conversation

    @property
    def expected_handoffs(self) -> int:
        return sum(self.kinds.values())


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    return rng.choices([w for w, _ in weighted], weights=[n for _, n in weighted])[0]


def generate(accounts: list[Account], n: int, *, conversations: int | None = None,
             rates: Rates = Rates(), seed: int = 7, prefix: str = "c") -> Traffic:
    """`n` chat messages over `conversations` conversations (n / 5 by default), interleaved."""
    rng = random.Random(seed)
    count = conversations or max(1, n // 5)
    convs = []
    for i in range(count):
        account = accounts[i % len(accounts)]
        channel = _pick(rng, CHANNELS)
        convs.append(_Conversation(
            conversation_id=f"{prefix}-{i:07d}", account=account, channel=channel,
            language=rng.choice(account.languages),
            inbox_id=f"{account.account_id}-support", contact_id=f"ct-{rng.randrange(10**9)}"))
    traffic = Traffic(conversations=count)
    judge = _Judge(accounts)
    handed: set[str] = set()
    for i in range(n):
        conv = convs[rng.randrange(count)]
        record = _message(rng, conv, i, rates)
        conv.sent += 1
        kind = judge.kind(conv.account.account_id, record)
        if kind is not None:
            traffic.fired_messages += 1
            if conv.conversation_id not in handed:  # later messages find it handed off
                handed.add(conv.conversation_id)
                traffic.kinds[kind] = traffic.kinds.get(kind, 0) + 1
        traffic.records.append((conv.conversation_id.encode(), orjson.dumps(record)))
    return traffic


def _message(rng: random.Random, conv: _Conversation, i: int, rates: Rates) -> dict[str, Any]:
    lang = conv.language
    minute, second = divmod(i // 10, 60)
    record: dict[str, Any] = {
        "event_id": f"{conv.conversation_id}-m{conv.sent}", "conversation_id": conv.conversation_id,
        "account_id": conv.account.account_id, "channel": conv.channel,
        "inbox_id": conv.inbox_id, "language": lang, "contact_id": conv.contact_id,
        "sent_at": f"2026-11-26T{9 + minute // 60:02d}:{minute % 60:02d}:{second:02d}Z",
    }
    if conv.sent == 0 or rng.random() < rates.visitor:
        roll = rng.random()
        if roll < rates.human:
            text = rng.choice(HUMAN[lang])
        elif roll < rates.human + rates.custom:
            text = rng.choice(CUSTOM_TEXTS[lang])
        else:
            text = rng.choice(ORDINARY[lang])
        record.update(sender="visitor", text=text)
    else:
        unsure = rng.random() < rates.no_answer
        record.update(sender="customer_agent", answered=not unsure,
                      text=AGENT_UNSURE if unsure else rng.choice(AGENT_REPLIES))
    return record


class _Judge:
    """The core's own trigger detection, cached per distinct (account, sender, answer, text)."""

    def __init__(self, accounts: list[Account]) -> None:
        self.matchers = Matchers(HumanRequestDetector.load())
        self.settings = {a.account_id: a.settings() for a in accounts}
        self.cache: dict[tuple[str, str, Any, str], str | None] = {}

    def kind(self, account_id: str, record: dict[str, Any]) -> str | None:
        key = (account_id, record["sender"], record.get("answered"), record["text"])
        if key not in self.cache:
            fired = detect(ChatMessage.model_validate(record), False, self.settings[account_id],
                           self.matchers)
            self.cache[key] = fired.kind.value if fired is not None else None
        return self.cache[key]


def latency_messages(accounts: list[Account], *, trigger_every: int, seed: int = 13,
                     prefix: str = "lat") -> Iterator[tuple[str, bytes, bytes, bool]]:
    """An endless stream of (event_id, key, value, triggers): every `trigger_every`-th message
    asks for a human (or carries an editor's phrase) in a conversation of its own; the others
    are ordinary messages and replies in a pool of running conversations.

    Not itself a generator: the judge loads the human-request detector (seconds) here, before
    a caller starts its clock. Built at the first `next()`, it stalled the latency part's
    producer for 4 to 7 s, which then sent those seconds' messages in one burst inside the
    timed window: that burst, not the worker, made the p99 of every earlier latency run."""
    return _latency_stream(accounts, random.Random(seed), _Judge(accounts), trigger_every, prefix)


def _latency_stream(accounts: list[Account], rng: random.Random, judge: _Judge,
                    trigger_every: int, prefix: str
                    ) -> Iterator[tuple[str, bytes, bytes, bool]]:
    pool = [_Conversation(f"{prefix}-bg-{i:05d}", accounts[i % len(accounts)], "chat",
                          accounts[i % len(accounts)].languages[0], "inbox", f"ct-{i}")
            for i in range(500)]
    quiet = Rates(human=0.0, custom=0.0, no_answer=0.0)
    i = 0
    while True:
        if trigger_every and i % trigger_every == 0:
            account = accounts[rng.randrange(len(accounts))]
            conv = _Conversation(f"{prefix}-t-{i:07d}", account, _pick(rng, CHANNELS),
                                 rng.choice(account.languages), f"{account.account_id}-support",
                                 f"ct-{i}")
            record = _message(rng, conv, i, Rates(human=0.7, custom=0.3, visitor=1.0))
            # An editor's phrase only fires in the accounts that chose it: draw again.
            for _ in range(20):
                if judge.kind(account.account_id, record) is not None:
                    break
                record = _message(rng, conv, i, Rates(human=0.7, custom=0.3, visitor=1.0))
            else:
                raise AssertionError(f"latency trigger text does not fire: {record['text']!r}")
            yield record["event_id"], conv.conversation_id.encode(), orjson.dumps(record), True
        else:
            conv = pool[rng.randrange(len(pool))]
            record = _message(rng, conv, i, quiet)
            conv.sent += 1
            yield record["event_id"], conv.conversation_id.encode(), orjson.dumps(record), False
        i += 1
