"""HumanRequestDetector on the shipped pattern files, language by language.

Norwegian (bokmål and nynorsk), Swedish and Danish have no labelled data:
these examples are written for these tests, not taken from any data set.
"""

from __future__ import annotations

import builtins
from typing import Any

import pytest

from handoff.triggers.human_request import HumanRequestDetector
from handoff.triggers.normalize import normalize

# The examples the feature was specified with: each must trigger.
SPECIFIED = [
    ("can I speak to a real person", "en"),
    ("I want to talk to a human", "en"),
    ("agent please", "en"),
    ("kan jeg snakke med et menneske?", "nb"),
    ("menneske", "nb"),
    ("kundeservice person", "nb"),
    ("eg vil snakke med eit menneske", "nn"),
    ("kan jag prata med en människa", "sv"),
    ("må jeg tale med en medarbejder", "da"),
    ("echter Mitarbeiter", "de"),
    ("ich möchte mit einem Menschen sprechen", "de"),
    ("hablar con un agente", "es"),
    ("quiero hablar con una persona", "es"),
    ("je veux parler à un conseiller", "fr"),
    ("parler à un humain", "fr"),
]

POSITIVE = {
    "en": [
        "Could you put me through to someone from your billing team?",
        "I'd rather speak with an actual human being",
        "let me talk to your supervisor",
        "get me a real person now",
        "is there a human I can chat with?",
        "connect me with a live agent please",
        "I need to speak to a representative about my account",
        "Transfer me to an operator",
        "I want to escalate this to a manager",
        "HUMAN!!!",
        "representative",
        "I want to talk to a real person, not a bot",
        "How do I reach a live person?",
        "I would like to be transferred to a human agent",
        "can i talk to a huamn",  # one swapped letter in "human" is corrected
        "i want to speak with a persn",
        "I'd like to speak to a bank employee",
        "Can someone call me back?",
        "you're not helping, I need a person",
        "Can someone from support call me back?",
        "Any humans around?",
    ],
    "nb": [
        "Kan jeg få snakke med et menneske?",
        "Jeg vil snakke med en ekte person",
        "Sett meg over til kundeservice",
        "Kan du koble meg til en saksbehandler?",
        "Jeg trenger å prate med noen",
        "Hei, kan jeg få chatte med en rådgiver?",
        "menneske takk",
        "Jeg vil ha et menneske, ikke en robot",
        "Finnes det en ekte person jeg kan snakke med?",
        "Overfør meg til en medarbeider",
        "kundeservice",
        "Jeg vil snakke med kundeservice person",
        "Kan noen fra kundeservice ringe meg?",
        "Er det mulig å snakke med et menneske?",
    ],
    "nn": [
        "Kan eg få snakke med eit menneske?",
        "Eg vil prate med ein ekte person",
        "Set meg over til kundeservice",
        "Kan du kople meg til ein sakshandsamar?",
        "Eg treng å snakke med nokon",
        "Eg vil ha eit menneske",
        "Kan eg få prata med ein rådgjevar?",
        "eit menneske takk",
    ],
    "sv": [
        "Kan jag få prata med en människa?",
        "Jag vill tala med en riktig person",
        "Koppla mig till kundtjänst",
        "Kan du koppla mig vidare till en handläggare?",
        "Jag behöver prata med någon",
        "människa tack",
        "Jag vill ha en människa, inte en robot",
        "Finns det en riktig person jag kan prata med?",
        "Jag vill chatta med en medarbetare",
        "Kan jag få tala med en rådgivare?",
        "Jag vill prata med en manniska",  # typed without å/ä/ö
    ],
    "da": [
        "Kan jeg tale med et menneske?",
        "Jeg vil gerne snakke med en rigtig person",
        "Stil mig om til kundeservice",
        "Kan du omstille mig til en sagsbehandler?",
        "Jeg har brug for at tale med nogen",
        "menneske tak",
        "Jeg vil have et menneske, ikke en robot",
        "Er der et rigtigt menneske jeg kan tale med?",
        "Må jeg få lov at tale med en rådgiver?",
        "Kan jeg chatte med en medarbejder?",
    ],
    "de": [
        "Kann ich bitte mit einem Mitarbeiter sprechen?",
        "Ich will mit einem echten Menschen reden",
        "Verbinden Sie mich bitte mit einem Berater",
        "Bitte leiten Sie mich an einen Mitarbeiter weiter",
        "Gibt es hier einen echten Menschen?",
        "Ich brauche menschliche Hilfe",
        "Ich möchte einen Mitarbeiter sprechen",
        "Ich moechte mit einem Menschen chatten",  # umlaut typed as "oe"
        "Ist es möglich, mit einem Menschen zu sprechen?",
        "Kann mich jemand vom Kundenservice zurückrufen?",
    ],
    "es": [
        "¿Me puede pasar con un agente?",
        "Quiero hablar con una persona real",
        "Necesito hablar con alguien de atención al cliente",
        "Póngame con un asesor, por favor",
        "¿Hay alguien con quien pueda hablar?",
        "Transfiéreme a un operador",
        "Prefiero hablar con una persona, no con un bot",
        "Necesito atención humana",
        "¿Alguien de atención al cliente me puede llamar?",
    ],
    "fr": [
        "Je voudrais parler à un conseiller",
        "Est-ce que je peux parler à une vraie personne ?",
        "Passez-moi un conseiller s'il vous plaît",
        "Mettez-moi en relation avec un agent",
        "Je veux un humain",
        "J'aimerais discuter avec quelqu'un",
        "Y a-t-il un humain avec qui parler ?",
    ],
    "it": [
        "Posso parlare con un operatore?",
        "Voglio parlare con una persona reale",
        "Passami un operatore per favore",
        "Vorrei un operatore umano",
        "C'è qualcuno con cui posso parlare?",
    ],
}

# Bot challenges, contact details, opening hours, negations and everyday
# uses of "person" or "agent": none of these may trigger.
NEGATIVE = {
    "en": [
        "I don't need a human",
        "are you a human",
        "Are you a real person or a bot?",
        "is this a bot",
        "am I talking to a human?",
        "what are your opening hours",
        "what is your phone number",
        "contact details please",
        "What's the number to call customer service?",
        "What's the email address to reach an agent?",
        "I don't need to talk to anyone, just cancel my order",
        "Do I need to talk to an agent to cancel?",
        "Thanks, no need to talk to a human",
        "Please don't transfer me, I just need my tracking number",
        "My agent told me to contact you about the policy",
        "My travel agent booked the wrong dates",
        "Can I transfer money to another person?",
        "table for two people please",
        "Someone used my card without permission",
        "I need to update my personal details",
        "How do I become an agent?",
        "I want to cancel my subscription",
        "I was refunded already, thanks",
        "I talked to a human yesterday",
        "Is there a human reviewing refunds?",
        "is there a human on the other end?",
        "I'm a real person, not a bot",
        "Please don't escalate this",
        "The live chat widget is broken",
        # Asking how to reach customer service is borderline in the labelled
        # data; only a bare "customer service" message or a transfer fires.
        "How do I talk to customer service?",
    ],
    "nb": [
        "Er du et menneske?",
        "Snakker jeg med en robot?",
        "Hva er åpningstidene deres?",
        "Hva er telefonnummeret til kundeservice?",
        "Jeg trenger ikke å snakke med noen",
        "Jeg vil overføre penger til en annen person",
        "Bord til fire personer",
        "Min rådgiver sa at jeg skulle ta kontakt",
        "Jeg vil si opp abonnementet mitt",
        "Jeg snakket med en rådgiver i går",
        "Hvordan kontakter jeg kundeservice?",
        "Ring meg ikke",
    ],
    "nn": [
        "Er du eit menneske?",
        "Snakkar eg med ein robot?",
        "Kva er opningstidene?",
        "Eg treng ikkje å snakke med nokon",
    ],
    "sv": [
        "Är du en människa?",
        "Pratar jag med en robot?",
        "Vilka är era öppettider?",
        "Vad är telefonnumret till kundtjänst?",
        "Jag behöver inte prata med någon",
        "Bord för fyra personer",
        "Ring mig inte",
        "Min fru pratar med en handläggare nu",
    ],
    "da": [
        "Er du et menneske?",
        "Taler jeg med en robot?",
        "Hvad er jeres åbningstider?",
        "Hvad er telefonnummeret til kundeservice?",
        "Jeg behøver ikke at tale med nogen",
        "Bord til fire personer",
    ],
    "de": [
        "Bist du ein Mensch?",
        "Spreche ich mit einem Roboter?",
        "Spreche ich mit einem echten Menschen?",
        "Wie sind Ihre Öffnungszeiten?",
        "Wie lautet die Telefonnummer des Kundenservice?",
        "Ich möchte nicht mit einem Menschen sprechen",
        "Ich möchte Geld an eine andere Person überweisen",
        "Tisch für vier Personen",
        "Spreche ich mit einem Menschen?",
        "Sind Sie die richtige Person für mein Problem?",
        "Das ist kein echter Kundenservice",
    ],
    "es": [
        "¿Eres un ser humano de verdad?",
        "¿Eres un humano?",
        "¿Estoy hablando con un robot?",
        "¿Cuál es el horario de atención?",
        "¿Cuál es el número de teléfono de atención al cliente?",
        "Quiero transferir dinero a otra persona",
        "Mesa para cuatro personas",
        "Alguien ha usado mi tarjeta",
        "Ayer hablé con un agente",  # "hablé" folds to "hable"
        "No quiero que me llamen",
    ],
    "fr": [
        "Es-tu un humain ?",
        "Est-ce que je parle à un robot ?",
        "Quels sont vos horaires d'ouverture ?",
        "Je ne veux parler à personne",
        "Personne ne répond au téléphone",
        "Une table pour quatre personnes",
        "J'ai parlé à un conseiller hier",  # "parlé" folds to "parle"
    ],
    "it": [
        "Sei un umano?",
        "Sto parlando con un robot?",
        "Quali sono gli orari di apertura?",
        "Un tavolo per quattro persone",
    ],
}


@pytest.mark.parametrize(("text", "language"), SPECIFIED)
def test_specified_examples_trigger_in_their_language(
    detector: HumanRequestDetector, text: str, language: str
) -> None:
    match = detector.detect(normalize(text))
    assert match is not None, text
    assert match.language == language
    assert language in match.languages


@pytest.mark.parametrize(
    ("language", "text"), [(lang, text) for lang, texts in POSITIVE.items() for text in texts]
)
def test_positive(detector: HumanRequestDetector, language: str, text: str) -> None:
    match = detector.detect(normalize(text))
    assert match is not None, text
    assert language in match.languages, (match.languages, match.phrase)


@pytest.mark.parametrize(
    ("language", "text"), [(lang, text) for lang, texts in NEGATIVE.items() for text in texts]
)
def test_negative(detector: HumanRequestDetector, language: str, text: str) -> None:
    match = detector.detect(normalize(text))
    assert match is None, (text, match)


def test_match_reports_phrase_pattern_and_span(detector: HumanRequestDetector) -> None:
    text = normalize("Hi there! Can I please talk to a real person?")
    match = detector.detect(text)
    assert match is not None
    assert match.phrase == "talk to a real person"
    assert text[match.start : match.end] == match.phrase
    assert match.source.startswith("en.txt:")
    assert "{" in match.pattern  # the line as written, slots included


def test_shared_phrases_prefer_the_language_order(detector: HumanRequestDetector) -> None:
    # "snakke med et menneske" is bokmål and Danish alike.
    match = detector.detect_text("snakke med et menneske")
    assert match is not None
    assert match.language == "nb"
    assert set(match.languages) >= {"nb", "da"}


def test_a_bot_challenge_does_not_hide_a_request_in_the_same_message(
    detector: HumanRequestDetector,
) -> None:
    assert detector.detect_text("Are you a bot? I want to talk to a real person.") is not None
    assert detector.detect_text("Er du en robot? Jeg vil snakke med et menneske.") is not None


def test_empty_and_odd_input(detector: HumanRequestDetector) -> None:
    for text in ["", " ", "?!", "\u202e\u200f", "🙂" * 50, "a" * 10_000]:
        assert detector.detect(normalize(text)) is None
    long_text = "bla " * 2_000 + "talk to a human"
    assert detector.detect(normalize(long_text)) is not None


def test_detect_does_no_io(detector: HumanRequestDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("I/O at match time")

    text = normalize("can i talk to a huamn")  # the typo path too
    monkeypatch.setattr(builtins, "open", refuse)
    assert detector.detect(text) is not None


# Words run together beyond one space: split into phrase-file words and scanned again.
GLUED = [
    ("speaktoahuman", "en"),
    ("can i talktoaperson", "en"),
    ("jeveuxparleraquelquun", "fr"),
    ("hablarconunapersona", "es"),
    ("vogliounapersonavera", "it"),
    ("ikwiliemandspreken", "nl"),
    ("mitmenschsprechen", "de"),
    ("pratamedmänniska", "sv"),
    ("queroumapessoa", "pt"),
]


@pytest.mark.parametrize(("text", "language"), GLUED)
def test_words_run_together_are_split_and_matched(
    detector: HumanRequestDetector, text: str, language: str
) -> None:
    rules = detector.with_stage2(None)
    match = rules.detect_text(text)
    assert match is not None, text
    assert match.language == language
    assert " " in match.phrase  # the phrase is read from the split words


@pytest.mark.parametrize("text", [
    "humanresources", "travelagent", "personalshopper", "de pruik van echt mensenhaar klit",
    "delivery tomorrow", "my order 12345678901234",
])
def test_run_together_words_that_are_no_request_stay_quiet(
    detector: HumanRequestDetector, text: str
) -> None:
    assert detector.with_stage2(None).detect_text(text) is None, text


def test_only_long_unknown_words_holding_a_request_word_are_split(
    detector: HumanRequestDetector,
) -> None:
    assert detector.split_glued(normalize("talk to a human")) == []  # known words
    assert detector.split_glued(normalize("xqzvbnmlkj")) == []  # no request word inside
    assert detector.split_glued(normalize("humanxqzv")) == []  # does not split completely
    readings = detector.split_glued(normalize("ok speaktoahuman"))
    assert readings[0] == (" ok speak to a human ", ((4, 20),))


@pytest.mark.parametrize("text", ["Kan jeg endre leveringsadressen min?",
                                  "Hvor lang er leveringstiden?"])
def test_everyday_compounds_are_not_split(detector: HumanRequestDetector, text: str) -> None:
    # Each reading is matched again with typo correction, several times a plain message's cost:
    # "rings" in an English line once read "leveringsadressen" as "leve rings adresse n".
    assert detector.split_glued(normalize(text)) == []


# Passing the case on to staff, a queue for a person, a callback from a named team (the
# fifteenth and sixteenth held-out sets' families, in new words); and saying no one is needed.
HANDED_ON = [
    "can you flick me over to one of your engineers",
    "send my case to one of your advisers to handle it",
    "add me to the queue for an operator then",
    "jeg skal i kontakt med jeres kundecenter",
    "en af jeres medarbejdere kunne måske kigge på min sag",
    "kan en av folkene deres ta over saken",
    "send det videre til kollegaene dine, takk",
    "kan ein av folka dykkar ta over saka",
    "skicka det vidare till dina kollegor",
    "chönd Sie mi bitte zruggrüefe",
    "reichen Sie das bitte an Ihre Kollegen weiter",
    "kan een van jullie medewerkers het overnemen",
    "zet me in de wachtrij voor een medewerker",
    "pásaselo a tus compañeros, por favor",
    "necesito una llamada de alguien de facturación",
    "faites suivre à vos collègues, merci",
    "il faut un de vos conseillers pour ça",
    "giralo ai tuoi colleghi per favore",
    "encaminhe para os seus colegas, por favor",
    "ponha-me na fila para um atendente",
]
NO_ONE_NEEDED = [
    "I don't need anyone to call me back",
    "no manager needed, thanks",
    "jeg har ikke brug for at snakke med nogen",
    "trenger ikke noen ringe meg",
    "ingen behöver ringa mig",
    "niemand moet mij bellen",
    "non cerco una persona, grazie",
    "pode ver o estado da minha encomenda?",
    "recibí una llamada de un número desconocido",
]


@pytest.mark.parametrize("text", HANDED_ON)
def test_passing_the_case_on_to_staff_is_a_request(detector: HumanRequestDetector,
                                                    text: str) -> None:
    assert detector.with_stage2(None).detect_text(text) is not None, text


@pytest.mark.parametrize("text", NO_ONE_NEEDED)
def test_saying_no_one_is_needed_is_not(detector: HumanRequestDetector, text: str) -> None:
    assert detector.detect_text(text) is None, text


# Requests whose middle (a department, a role, a time) no list holds: the phrase files' " ... "
# lines catch them without the second stage; reports and errands with the same frame do not.
OPEN_MIDDLE = [
    ("en", "could somebody in your warranty section phone me back on friday"),
    ("nb", "ønsker at en av montørene deres ringer meg i morgen"),
    ("nn", "kan nokon frå bustadkontoret ringje meg etter lunsj"),
    ("sv", "vill att en av era elektriker kontaktar mig i veckan"),
    ("da", "kan nogen fra jeres lager ringe mig op i eftermiddag"),
    ("de", "kann mich jemand aus ihrer garantieabteilung heute noch anrufen"),
    ("es", "quiero que uno de sus fontaneros se ponga en contacto conmigo"),
    ("fr", "est ce que l'un de vos electriciens peut me rappeler ce soir"),
    ("it", "vorrei che uno dei vostri idraulici mi richiami domani"),
    ("nl", "kan een van jullie loodgieters mij vandaag nog terugbellen"),
    ("pt", "quero que um dos seus eletricistas me ligue amanha"),
    ("en", "please forward my complaint straight to a supervisor"),
    ("es", "pasen esta reclamacion a alguien que sepa del tema"),
    ("de", "das muss sich ein mensch mal ansehen"),
]
OPEN_MIDDLE_NOT = [
    "someone from your warranty section already phoned me, all good",
    "noen fra lageret deres sa at de skulle ringe meg",
    "jemand aus der garantieabteilung hat gesagt, man wird mich anrufen",
    "please forward my parcel to my neighbour",
    "someone from the store sent me the receipt, thanks",
]


@pytest.mark.parametrize(("language", "text"), OPEN_MIDDLE)
def test_open_middle_requests_need_no_second_stage(
    detector: HumanRequestDetector, language: str, text: str
) -> None:
    match = detector.with_stage2(None).detect_text(text)
    assert match is not None, text
    assert " ... " in match.pattern and language in match.languages, match


# Other families of the same pass, written as phrase lines in every language.
EIGHTH_PASS = [
    ("nb", "la en saksbehandler ta over saken min"),
    ("sv", "kan en handläggare ta över mitt ärende"),
    ("da", "kan en sagsbehandler overtage min sag"),
    ("de", "kann ein mitarbeiter bitte den fall übernehmen"),
    ("pt", "quero que um atendente assuma o meu caso"),
    ("nl", "kunt u dit escaleren, ik kom er niet uit"),
    ("es", "quiero agendar una videollamada con un gestor"),
    ("it", "vorrei fissare una telefonata con un consulente"),
    ("en", "fine, i'll hold for an agent"),
    ("nn", "eg kan godt vente på ein sakshandsamar"),
    ("fr", "je veux bien attendre un conseiller"),
    ("it", "preferisco che mi risponda una persona vera"),
    ("es", "hay algun agente conectado ahora"),
    ("pt", "como falo com um atendente"),
    ("sv", "har ni någon som talar somaliska"),
    ("it", "c'e un operatore che parla rumeno"),
    ("da", "jeg vil ikke have en chatbot"),
    ("pt", "chega desse robo"),
]


# The seventh held-out set's families: a person on the phone, call-from, contacted-by; and its
# false positives: a relative's habit, "a robot or a real person?", a hypothetical.
SEVENTH_PASS = [
    ("nb", "nå vil jeg ha noen fra reklamasjon på tråden"),
    ("de", "jetzt möchte ich jemanden aus der buchhaltung am telefon"),
    ("nl", "ik wil een telefoontje van iemand van de planning"),
    ("it", "voglio essere richiamato dal vostro ufficio tecnico"),
    ("pt", "quero ser contactado pela equipa de vendas"),
    ("es", "porfa una persona"),
]
SEVENTH_PASS_NOT = [
    "mi hermano siempre quiere hablar con una persona cuando les llama",
    "min bror vil alltid snakke med et menneske når han ringer dere",
    "sei un robot o una persona reale?",
    "vous êtes un robot ou une vraie personne, au fait ?",
    "er du en robot eller et ekte menneske?",
    "bist du ein bot oder ein echter mensch?",
    "if i ever wanted to talk to a person, where would i find the number?",
]


@pytest.mark.parametrize(("language", "text"), EIGHTH_PASS + SEVENTH_PASS)
def test_this_sessions_families_need_no_second_stage(
    detector: HumanRequestDetector, language: str, text: str
) -> None:
    match = detector.with_stage2(None).detect_text(text)
    assert match is not None, text
    assert language in match.languages, match


@pytest.mark.parametrize("text", OPEN_MIDDLE_NOT + SEVENTH_PASS_NOT)
def test_reports_errands_habits_and_bot_questions_stay_quiet(
    detector: HumanRequestDetector, text: str
) -> None:
    assert detector.detect_text(text) is None, text
