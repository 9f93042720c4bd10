"""The danger-sign screen: concepts in a message, their context, and the signs they combine into.

    text -> tokens and lemmas (text.py) -> concept mentions (concepts.yml, terms.py)
         -> numbers with a meaning (quantities.py) -> ConText triggers (context.yml)
         -> danger signs: combinations of concepts in one clause, any order (danger_signs.yml)

Pure and bounded: one message costs a few spaCy matcher passes and a loop over the mentions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bot.safety.context import HISTORICAL, HYPOTHETICAL, NEGATED, OTHER, POSSIBLE, ConText
from bot.safety.quantities import AGE, NUMBER_WORDS, SCORE, TEMPERATURE, WEIGHT, Quantity, read_quantities
from bot.safety.data import SafetyDataError
from bot.safety.rules import CONCEPTS_FILE, CONTEXT_FILE, DEFAULT_WINDOW, MASK_SUFFIX, Combo, Rules, Sign, load_rules
from bot.safety.terms import TermError, TermMatcher
from bot.safety.text import VERB_NEGATORS, Text, TextPath

PRESENT, NEGATED_SIGN, SUSPECTED = "present", "negated", "suspected"
SELF, OTHER_SUBJECT, UNKNOWN = "self", "other", "unknown"
BACK_CONCEPTS = frozenset({"back", "sciatica"})
COMPLAINT_CONCEPTS = frozenset({"pain", "stiff", "back_trouble"})   # with no body part named: the back's
FIRST_PERSON = frozenset({"i", "my", "me", "myself", "mine", "im", "i'm", "ive", "i've", "i'd"})
PRONOUNS = frozenset({"it", "they", "them", "this", "that", "he", "she", "which"})
OTHER_SITE, OTHER_ILLNESS = "other_site", "other_illness"
SELF_REFERENCE = "self_reference"      # "mine's just stiff", "I don't have that": the writer is the patient
SYMPTOM_CONCEPTS = frozenset({"pain", "severe", "numb", "no_feeling", "stiff", "lump", "weak", "squeeze"})
NEAR = 4          # an other-site word this close to a symptom word is where the complaint is
# Other-person triggers that say someone else is meant without saying who.
UNNAMED = frozenset({"he", "he's", "she", "she's", "his", "her", "him", "someone", "somebody", "people", "person"})


@dataclass(frozen=True)
class Mention:
    concept: str
    start: int             # token span
    end: int
    clause: int
    sentence: int


@dataclass(frozen=True)
class Finding:
    """One sign found in a message: present, clearly absent (negated) or only suspected."""

    sign: str
    level: str
    status: str                    # PRESENT | NEGATED_SIGN | SUSPECTED
    subject: str = SELF            # whose sign: the writer's, or someone else's
    text: str = ""                 # the words it rests on ("" when only the question implied them)
    possible: bool = False         # hedged ("maybe", "I think"): still counts as present
    historical: bool = False
    via: str = "words"             # words | question (an answer read with the question) | earlier (facts)


@dataclass
class Screen:
    """What one message says about danger signs, and the facts later turns need."""

    findings: list[Finding] = field(default_factory=list)
    quantities: list[Quantity] = field(default_factory=list)
    back_subjects: set[str] = field(default_factory=set)      # whose back the message complains about
    facts: set[str] = field(default_factory=set)              # fact concepts seen (about the patient)
    age: float | None = None                                  # the patient's age, when said
    patient: str = SELF                                       # whose triage this message was read for
    text: Text | None = None                                  # the tokens (for the learned backstop)
    other_complaint: bool = False                             # about another body part only

    def signs(self, status: str) -> list[str]:
        out: list[str] = []
        for f in self.findings:
            if f.status == status and f.sign not in out:
                out.append(f.sign)
        return out

    @property
    def present(self) -> list[str]:
        return self.signs(PRESENT)

    @property
    def negated(self) -> list[str]:
        """Signs only ever mentioned as absent here (a present mention wins)."""
        present = set(self.present)
        return [s for s in self.signs(NEGATED_SIGN) if s not in present]

    @property
    def suspected(self) -> list[str]:
        done = set(self.present) | set(self.negated)
        return [s for s in self.signs(SUSPECTED) if s not in done]


class Screener:
    """Compiled rules; `screen()` reads one message."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        # number words are targets too, so the typo normaliser never turns "seven" into "even"
        self.text = TextPath(rules.words | _prefixed_words(rules) | set(NUMBER_WORDS))
        lexicon = self.text.lexicon
        self._concepts = TermMatcher(self.text.nlp, self.text.lemma_of, lexicon)
        for concept, terms in rules.concepts.items():
            for term, line in terms:
                _add(self._concepts, concept, term, CONCEPTS_FILE, line)
        triggers = TermMatcher(self.text.nlp, self.text.lemma_of, lexicon)
        labels: dict[str, tuple[str, str, frozenset[str]]] = {}
        for index, (term, category, direction, ends, line) in enumerate(rules.context.terms):
            label = f"t{index}"
            labels[label] = (category, direction, ends)
            part = "head" if direction in ("forward", "bidirectional") else "tail" if direction == "backward" else "all"
            _add(triggers, label, term, CONTEXT_FILE, line, part)
        self.context = ConText(triggers, labels, rules.context.max_scope)
        self.signs = rules.signs
        self._sign_concepts = frozenset(c for sign in rules.signs.values()
                                        for combo in sign.when + sign.suspect for c in combo.concepts)

    @classmethod
    def load(cls, knowledge_dir: Path) -> "Screener":
        return _cached(Path(knowledge_dir))

    # -- reading one message ---------------------------------------------------------------------

    def screen(self, message: str, *, asked: str | None = None, asked_slot: str | None = None,
               patient: str | None = None, facts: frozenset[str] = frozenset(), back_context: bool = False,
               question: bool = False) -> Screen:
        """Danger signs in `message`. `asked`: the sign whose question is open (its answer is read
        with that question's topic understood); `asked_slot`: the open form slot (decides what a
        bare number is); `patient`: whose triage this is (None: not known yet, so this
        message decides); `facts`: concepts from earlier turns;
        `back_context`: the conversation is already about the back; `question`: the message asks
        for information (an FAQ), so a back named without "my" is no complaint."""
        text = self.text(message)
        if not len(text):
            return Screen()
        age_question = self._age_question(asked, asked_slot)
        quantities = read_quantities(text, "age" if age_question is not None else asked_slot)
        mentions = self._mentions(text, quantities)
        triggers = self._triggers(text, mentions)
        by_concept = Mentions(mentions)
        mods = _ModCache(self.context, text, triggers)
        screen = Screen(quantities=quantities, text=text)
        self._complaints(screen, text, by_concept, mods, question, back_context)
        patient_now = patient or self._patient(text, triggers, screen.back_subjects,
                                               bool(by_concept.get(SELF_REFERENCE)))
        screen.patient = patient_now
        for m in mentions:
            if any(m.concept in s.facts for s in self.signs.values()):
                found = mods.of((m,))
                if not found & {NEGATED, HYPOTHETICAL, HISTORICAL} and _counts(mods.subject((m,)), patient_now):
                    screen.facts.add(m.concept)
        for sign in self.signs.values():
            self._screen_sign(screen, sign, asked, text, by_concept, mods, facts | screen.facts, patient_now)
        self._read_age(screen, text, mods, patient_now, age_question, asked)
        return screen

    def _age_question(self, asked: str | None, asked_slot: str | None) -> Sign | None:
        """The open question's sign (or a grouped question's) that asks "are you over N?"."""
        in_group = [self.signs[s] for s in self.rules.checklists.get(asked_slot or "", ()) if not asked]
        return next((s for s in ([self.signs[asked]] if asked in self.signs else in_group)
                     if s.asks_age is not None), None)

    def _triggers(self, text: Text, mentions: list[Mention]) -> list:
        """ConText triggers, without a negation inside a longer concept term ("can't move", "no
        feeling"): that is part of the term, not a negation of anything else in the sentence."""
        cover = [0] * len(text)
        for m in mentions:
            if m.concept not in self._sign_concepts:
                continue                       # "I don't have that" is a denial, not a sign's words
            for i in range(m.start, m.end):
                cover[i] = max(cover[i], m.end - m.start)
        return [t for t in self.context.triggers(text)
                if not (t.category == NEGATED and min(cover[t.start:t.end]) > t.end - t.start)]

    @staticmethod
    def _complaints(screen: Screen, text: Text, by_concept: "Mentions", mods: "_ModCache", question: bool,
                    back_context: bool) -> None:
        """Whose back complaint the message states (`back_subjects`), and whether it is only about
        another body part (`other_complaint`)."""
        others = [m for m in _other_complaints(by_concept) if NEGATED not in mods.of((m,))]
        complaints = _back_named(text, by_concept)
        if not complaints and not others:
            others = _other_site_symptoms(by_concept)
        complaints = _with_unnamed(complaints, others, by_concept, mods)
        for m in complaints:
            found = mods.of((m,))
            subject = mods.subject((m,))
            if NEGATED not in found and HYPOTHETICAL not in found and not (question and subject == UNKNOWN):
                screen.back_subjects.add(subject)
        screen.other_complaint = bool(others) and not screen.back_subjects and not back_context

    def _screen_sign(self, screen: Screen, sign: Sign, asked: str | None, text: Text, by_concept: "Mentions",
                     mods: "_ModCache", known: frozenset[str], patient: str) -> None:
        """One sign's findings: its combinations (with the open question's topic understood),
        a clear "no" about its topic, and a lesser version answering its question."""
        lesser = self._lesser(sign, by_concept, mods, patient) if sign.id == asked else []
        # "just slipped over" answering "a serious fall?": the topic is not taken as said
        implied = sign.topic if sign.id == asked and not lesser else frozenset()
        found = self._sign(sign, text, by_concept, mods, implied, known, patient, screen, sign.id == asked)
        screen.findings += found
        concepts = sign.topic if sign.id == asked else sign.denial
        screen.findings += self._topic_denial(sign, concepts, text, by_concept, mods, patient)
        if lesser and not any(f.status == PRESENT for f in found):
            m = lesser[0]
            screen.findings.append(Finding(sign.id, sign.level, NEGATED_SIGN, patient,
                                           message_slice(text, m.start, m.end), via="question"))

    @staticmethod
    def _read_age(screen: Screen, text: Text, mods: "_ModCache", patient: str, age_question: Sign | None,
                  asked: str | None) -> None:
        """The patient's age, and what it answers of a question that asks "are you over N?"."""
        for q in screen.quantities:
            if q.kind == AGE:
                m = Mention("age", q.start, q.end, text.clause[q.start], text.sentence[q.start])
                if _counts(mods.subject((m,)), patient) and NEGATED not in mods.of((m,)):
                    screen.age = q.value
        if age_question is not None and screen.age is not None and age_question.id not in screen.present \
                and (age_question.id == asked or screen.age >= age_question.asks_age):
            # "47" answering "...or are you over 70?": the age answers the question, "82" a yes
            # (in a grouped question only a yes: the age says nothing of the other items)
            status = NEGATED_SIGN if screen.age < age_question.asks_age else PRESENT
            screen.findings.append(Finding(age_question.id, age_question.level, status, patient,
                                           str(int(screen.age)), via="question"))

    @staticmethod
    def _lesser(sign: Sign, by_concept: "Mentions", mods: "_ModCache", patient: str) -> list[Mention]:
        """Mentions of the sign's lesser version said as the patient's and not negated."""
        return [m for c in sign.lesser for m in by_concept.get(c, ())
                if NEGATED not in mods.of((m,)) and _counts(mods.subject((m,)), patient)]

    # -- whose words (for the actions: someone else's medicine, who a report is about) ----------

    def someone_elses(self, message: str, concept: str) -> bool:
        """Whether `message` mentions `concept` (concepts.yml) as someone else's: "my husband's
        tramadol", "my friend gave me her co-codamol" (the ConText other-person rules reach it)."""
        text = self.text(message)
        mentions = [m for m in self._mentions(text, []) if m.concept == concept] if len(text) else []
        if not mentions:
            return False
        mods = _ModCache(self.context, text, self.context.triggers(text))
        return any(mods.subject((m,)) == OTHER_SUBJECT for m in mentions)

    def other_people(self, message: str) -> list[str]:
        """The words that name someone else in `message` ("mum" in "my mum, 84, slipped"), as
        the ConText other-person triggers find them; pronouns and "someone" name nobody."""
        text = self.text(message)
        if not len(text):
            return []
        words = []
        for t in self.context.triggers(text):
            if t.category == OTHER:
                word = message_slice(text, t.start, t.end)
                if word.lower() not in UNNAMED and word not in words:
                    words.append(word)
        return words

    @staticmethod
    def _patient(text: Text, triggers: list, back_subjects: set[str], self_said: bool = False) -> str:
        """Whose back this message is about: the writer's, unless it only speaks of someone else
        ("grandad, 66, says his legs are going weak ... back pain for a fortnight")."""
        if SELF in back_subjects or self_said:
            return SELF
        if OTHER_SUBJECT in back_subjects:
            return OTHER_SUBJECT
        if not back_subjects:
            return SELF                 # no back complaint: someone else's history stays theirs
        others = [t for t in triggers if t.category == OTHER]
        starts = {t.start for t in others}
        # "my" in "my wife" names the other person; any other first-person word is the writer's
        first_person = any(t.lower_ in FIRST_PERSON and not (t.lower_ == "my" and t.i + 1 in starts) for t in text.doc)
        return OTHER_SUBJECT if others and not first_person else SELF

    def _mentions(self, text: Text, quantities: list[Quantity]) -> list[Mention]:
        raw = self._concepts(text.doc)
        masked: dict[str, set[int]] = defaultdict(set)      # concept -> tokens its mask covers
        for concept, s, e in raw:
            if concept.endswith(MASK_SUFFIX):
                masked[concept[:-len(MASK_SUFFIX)]].update(range(s, e))
        out = []
        for concept, s, e in raw:
            if concept.endswith(MASK_SUFFIX) or not masked[concept].isdisjoint(range(s, e)):
                continue
            out.append(Mention(concept, s, e, text.clause[s], text.sentence[s]))
        for q in quantities:
            for concept in (_quantity_concept(q), "score" if q.kind == SCORE else None):
                if concept:
                    out.append(Mention(concept, q.start, q.end, text.clause[q.start], text.sentence[q.start]))
        return out

    def _sign(self, sign: Sign, text: Text, by_concept: dict[str, list[Mention]], mods: "_ModCache",
              implied: frozenset[str], facts: frozenset[str], patient: str, screen: Screen,
              asked: bool = False) -> list[Finding]:
        found = self._combinations(sign, text, by_concept, mods, implied, facts & sign.facts, patient, screen, asked)
        found += self._lost(sign, text, by_concept, mods, patient, screen)
        found += self._denied(sign, text, by_concept, mods, patient)
        return found

    def _combinations(self, sign: Sign, text: Text, by_concept: dict[str, list[Mention]], mods: "_ModCache",
                      implied: frozenset[str], earlier: frozenset[str], patient: str, screen: Screen,
                      asked: bool) -> list[Finding]:
        """The findings of the sign's combinations (`when`, then `suspect`), each match judged."""
        found: list[Finding] = []
        denials = [(m.start, m.end) for c in sign.denied_by for m in by_concept.get(c, ())]
        for combo, suspect in [(c, False) for c in sign.when] + [(c, True) for c in sign.suspect]:
            for members, via in _matches(combo, by_concept, text, sign.window, implied, earlier, mods):
                if any(_overlaps(m, denials) for m in members):
                    continue                    # the words belong to a denial ("not suicidal")
                finding = self._judge(sign, combo, members, via, suspect, text, by_concept, mods, patient, screen, asked)
                if finding is not None:
                    found.append(finding)
        return found

    @staticmethod
    def _lost(sign: Sign, text: Text, by_concept: dict[str, list[Mention]], mods: "_ModCache", patient: str,
              screen: Screen) -> list[Finding]:
        """A normal function said to be lost: "my legs won't take my weight", "I don't get
        the feeling I need to wee", "I don't see any reason to go on"."""
        found: list[Finding] = []
        for concept, status in [(c, PRESENT) for c in sign.lost] + [(c, SUSPECTED) for c in sign.suspect_lost]:
            for m in by_concept.get(concept, ()):
                mods_here = mods.of((m,))
                subject = mods.subject((m,))
                if _verb_negated(text, m) and not mods_here & {HYPOTHETICAL, HISTORICAL} \
                        and (_counts(subject, patient) or sign.anyone) \
                        and not (sign.back_only and screen.other_complaint):
                    found.append(Finding(sign.id, sign.level, status, subject,
                                         message_slice(text, m.start, m.end), POSSIBLE in mods_here, via="words"))
        return found

    @staticmethod
    def _denied(sign: Sign, text: Text, by_concept: dict[str, list[Mention]], mods: "_ModCache",
                patient: str) -> list[Finding]:
        """The sign's denial words said by the patient ("I'm not suicidal"): a clear no."""
        found: list[Finding] = []
        for concept in sign.denied_by:
            for m in by_concept.get(concept, ()):
                if HYPOTHETICAL not in mods.of((m,)) and _counts(mods.subject((m,)), patient):
                    found.append(Finding(sign.id, sign.level, NEGATED_SIGN, mods.subject((m,)),
                                         message_slice(text, m.start, m.end)))
        return found

    def _judge(self, sign: Sign, combo: Combo, members: tuple[Mention, ...], via: str, suspect: bool,
               text: Text, by_concept: dict[str, list[Mention]], mods: "_ModCache", patient: str,
               screen: Screen, asked: bool = False) -> Finding | None:
        clauses = {m.clause for m in members}
        sentence = members[0].sentence if members else 0
        if _vetoed(sign, combo, members, clauses, sentence, by_concept, mods):
            return None
        if _elsewhere(sign, suspect, members, clauses, sentence, by_concept, mods, screen):
            return None
        found = set(mods.of(members)) if members else set()
        if sign.ignore_negation:
            found.discard(NEGATED)          # only an explicit denial is a "no" (`denied_by`)
        subject = mods.subject(members) if members else UNKNOWN
        if not _counts(subject, patient) and not sign.anyone:
            return None                    # someone else's history ("my dad had cancer")
        if HISTORICAL in found and not sign.keep_historical:
            if asked:                      # "a car accident in 2011" answering "did this start after...?"
                return Finding(sign.id, sign.level, NEGATED_SIGN, subject, message_slice(text, *_span(members)),
                               via="question")
            return None                    # "a fever last year": not a sign now; the form still asks
        return _judged(sign, members, via, suspect, text, found, subject)

    def _topic_denial(self, sign: Sign, concepts: frozenset[str], text: Text, by_concept: "Mentions",
                      mods: "_ModCache", patient: str) -> list[Finding]:
        """A clear "no" about the sign's topic ("my bladder is fine", "I didn't fall")."""
        out = []
        for concept in concepts:
            for m in by_concept.get(concept, ()):
                found = mods.of((m,))
                if NEGATED in found and POSSIBLE not in found and _counts(mods.subject((m,)), patient):
                    out.append(Finding(sign.id, sign.level, NEGATED_SIGN, patient, message_slice(text, m.start, m.end),
                                       via="question"))
        return out


# Negation of a verb ("won't take my weight", "I don't see any reason"), not of a noun ("no
# weakness, my legs take my weight", "no problem feeling when I need to wee").
NEGATION_REACH = 4          # tokens before a function's words that a verb negation may stand


def _verb_negated(text: Text, m: Mention) -> bool:
    """Whether a verb negation stands just before (or inside) the words of `m`, in its clause."""
    start = max(0, m.start - NEGATION_REACH)
    return any(text.doc[i].lower_ in VERB_NEGATORS and text.clause[i] == m.clause for i in range(start, m.end))


def _vetoed(sign: Sign, combo: Combo, members: tuple[Mention, ...], clauses: set[int], sentence: int,
            by_concept: "Mentions", mods: "_ModCache") -> bool:
    """Whether a veto word (the sign's or the combination's `unless`) stands in the members'
    clauses, not itself negated."""
    return any(m.clause in clauses and NEGATED not in mods.beside(m, members)
               for m in by_concept.near(sign.unless | combo.unless, sentence))


def _elsewhere(sign: Sign, suspect: bool, members: tuple[Mention, ...], clauses: set[int], sentence: int,
               by_concept: "Mentions", mods: "_ModCache", screen: Screen) -> bool:
    """Whether the words are another body part's complaint, where the sign needs the back's."""
    spans = [(m.start, m.end) for m in members]
    others_here = [m for m in _other_complaints(by_concept, sentence) if m.clause in clauses
                   and not _overlaps(m, spans) and NEGATED not in mods.of((m,))]
    backs_here = [m for m in by_concept.near(BACK_CONCEPTS, sentence) if m.clause in clauses]
    if (sign.back_only or suspect) and others_here and not backs_here:
        return True                        # "my toothache is unbearable": another body part's complaint
    return sign.back_only and screen.other_complaint


def _judged(sign: Sign, members: tuple[Mention, ...], via: str, suspect: bool, text: Text, found: set[str],
            subject: str) -> Finding:
    """The finding judged words make, by their modifiers: denied, only suspected, or present."""
    start, end = _span(members)
    words = message_slice(text, start, end) if members else ""
    if NEGATED in found:
        return Finding(sign.id, sign.level, NEGATED_SIGN, subject, words, via=via)
    if suspect or HYPOTHETICAL in found:
        return Finding(sign.id, sign.level, SUSPECTED, subject, words, via=via)
    return Finding(sign.id, sign.level, PRESENT, subject, words, POSSIBLE in found, HISTORICAL in found, via)


def _span(members: tuple[Mention, ...]) -> tuple[int, int]:
    return (min(m.start for m in members), max(m.end for m in members)) if members else (0, 0)


def _prefixed_words(rules: Rules) -> set[str]:
    """The lexicon words the rules' prefixes stand for (incontinen* -> incontinence, ...):
    typo targets too, so "incontiinence" is still read."""
    import bisect

    from bot.safety.text import english_lexicon
    from bot.safety.terms import parse_term

    lexicon = sorted(english_lexicon())
    out: set[str] = set()
    terms = [t for ts in rules.concepts.values() for t, _ in ts] + [t for t, *_ in rules.context.terms]
    for term in terms:
        for item in parse_term(term):
            for alt in item.alternatives:
                if alt.endswith("*"):
                    i = bisect.bisect_left(lexicon, alt[:-1])
                    while i < len(lexicon) and lexicon[i].startswith(alt[:-1]):
                        out.add(lexicon[i])
                        i += 1
    return out


def _add(matcher: TermMatcher, label: str, term: str, filename: str, line: int, part: str = "all") -> None:
    try:
        matcher.add(label, term, part)
    except TermError as exc:
        raise SafetyDataError(f"{filename}:{line}: term `{term}`: {exc}") from None


def message_slice(text: Text, start: int, end: int) -> str:
    a, b = text.char_span(start, end)
    return text.string[a:b]


def _other_complaints(by_concept: "Mentions", sentence: int | None = None) -> list[Mention]:
    """Complaints about another body part: a word for one ("toothache", "rash"), or a body
    part with a symptom word next to it ("severe pain in my knee"). `sentence`: only near it."""
    if sentence is None:
        illness, sites = by_concept.get(OTHER_ILLNESS, ()), by_concept.get(OTHER_SITE, ())
    else:
        illness, sites = by_concept.near({OTHER_ILLNESS}, sentence), by_concept.near({OTHER_SITE}, sentence)
    out = list(illness)
    for m in sites:
        if any(s.clause == m.clause and _gap(s, m) <= NEAR and not _overlaps(s, [(m.start, m.end)])
               for s in by_concept.near(SYMPTOM_CONCEPTS, m.sentence)):
            out.append(m)
    return out


def _back_named(text: Text, by_concept: "Mentions") -> list[Mention]:
    """The back named with a symptom beside it ("my back is sore"), not "which muscles work the back?"."""
    symptom_concepts = SYMPTOM_CONCEPTS | COMPLAINT_CONCEPTS
    return [m for c in BACK_CONCEPTS for m in by_concept.get(c, [])
            if m.concept == "sciatica" or any(_together(m, s, text, DEFAULT_WINDOW)
                                              for s in by_concept.near(symptom_concepts, m.sentence))]


def _other_site_symptoms(by_concept: "Mentions") -> list[Mention]:
    """No back named, another body part named, symptoms: "rolled my ankle ... it's swollen"."""
    if by_concept.get(OTHER_SITE) and any(by_concept.get(c) for c in SYMPTOM_CONCEPTS):
        return list(by_concept.get(OTHER_SITE))
    return []


def _with_unnamed(complaints: list[Mention], others: list[Mention], by_concept: "Mentions",
                  mods: "_ModCache") -> list[Mention]:
    """The back complaints with the complaint words that name no body part: the back's when
    nothing else is complained of."""
    if not complaints and not others:      # "it hurts when I bend", "maybe a 5": the back's
        return [m for c in COMPLAINT_CONCEPTS | {"score"} for m in by_concept.get(c, [])]
    if not others:                         # "my colleague had back pain. I'm just stiff": mine too
        return complaints + [m for c in COMPLAINT_CONCEPTS for m in by_concept.get(c, []) if mods.subject((m,)) == SELF]
    return complaints


def _quantity_concept(q: Quantity) -> str | None:
    if q.kind == TEMPERATURE and q.value >= 38.0:
        return "temperature_high"
    if q.kind == SCORE and q.value >= 9:
        return "score_severe"
    if q.kind == AGE and q.value >= 70:
        return "age_70"
    if q.kind == WEIGHT and q.value >= 5:
        return "weight_lost"
    return None


def _counts(subject: str, patient: str) -> bool:
    """A finding counts for the patient when it is theirs or nobody is named."""
    return subject == UNKNOWN or subject == patient




def _overlaps(m: Mention, spans: list[tuple[int, int]]) -> bool:
    return any(m.start < e and s < m.end for s, e in spans)


def _gap(a: Mention, b: Mention) -> int:
    return max(0, b.start - a.end, a.start - b.end)


def _together(a: Mention, b: Mention, text: Text, window: int) -> bool:
    """Same clause within the window; or a neighbouring sentence that continues it: a fragment
    ("Tightness. In my chest.") or one that refers back ("my leg's been funny. today it gave up")."""
    if _gap(a, b) > window:
        return False
    if a.clause == b.clause:
        return True
    first, second = (a, b) if a.start < b.start else (b, a)
    s1, s2 = text.sentence[first.start], text.sentence[second.start]
    if s2 - s1 != 1:
        return False
    if text.fragment(s1) or text.fragment(s2):
        return True
    return any(text.sentence[i] == s2 and text.doc[i].lower_ in PRONOUNS for i in range(first.end, second.start))


def _matches(combo: Combo, by_concept: "Mentions", text: Text, window: int,
             implied: frozenset[str], earlier: frozenset[str], mods: "_ModCache"
             ) -> list[tuple[tuple[Mention, ...], str]]:
    """Ways the message satisfies `combo`: real mentions for some parts, the open question's
    topic (`implied`) or facts from earlier turns (`earlier`) for the others. At least one part
    must be in the message itself."""
    candidates = [[m for c in group for m in by_concept.get(c, ())] for group in combo.groups]
    stand_ins = [("question" if group & implied else "earlier" if group & earlier else None) for group in combo.groups]
    if any(not cands and not stand_in for cands, stand_in in zip(candidates, stand_ins)) or not any(candidates):
        return []
    anchor = min((i for i, c in enumerate(candidates) if c), key=lambda i: len(candidates[i]))
    out = []
    for first in candidates[anchor]:
        members, via = _around(first, anchor, combo, stand_ins, by_concept, text, window, mods)
        if members:
            out.append((tuple(sorted(members, key=lambda m: m.start)), via))
    return out


def _around(first: Mention, anchor: int, combo: Combo, stand_ins: list[str | None], by_concept: "Mentions",
            text: Text, window: int, mods: "_ModCache") -> tuple[list[Mention], str]:
    """The combination's members around `first` (a mention of the `anchor` group) and what
    stands in for the parts not in the words; no members when a part is missing."""
    members = [first]
    via = "words"
    for i, group in enumerate(combo.groups):
        if i == anchor:
            continue
        cands = by_concept.near(group, first.sentence)
        # never the same words twice ("collapse" is faint or give_way, not both); a gap term
        # may hold another inside it ("putting a few of my pills aside")
        near = [m for m in cands if _together(first, m, text, window)
                and not any((m.start, m.end) == (x.start, x.end) for x in members)]
        if near:     # the nearest, preferring one that is not denied ("I can pee fine ... can't tell")
            members.append(min(near, key=lambda m: (NEGATED in mods.of((m,)), _gap(first, m))))
        elif stand_ins[i]:
            via = stand_ins[i] if via == "words" else via
        else:
            return [], via
    return members, via


class Mentions:
    """The concept mentions of one message, indexed by concept and by sentence, so every lookup
    stays within a mention's own and neighbouring sentences (bounded work per mention)."""

    def __init__(self, mentions: list[Mention]) -> None:
        self._by_concept: dict[str, list[Mention]] = defaultdict(list)
        self._by_sentence: dict[tuple[str, int], list[Mention]] = defaultdict(list)
        for m in mentions:
            self._by_concept[m.concept].append(m)
            self._by_sentence[(m.concept, m.sentence)].append(m)

    def get(self, concept: str, default: tuple = ()) -> list[Mention]:
        return self._by_concept.get(concept) or list(default)

    def near(self, concepts, sentence: int) -> list[Mention]:
        """Mentions of `concepts` in `sentence` and the sentences either side of it."""
        return [m for c in concepts for s in (sentence - 1, sentence, sentence + 1)
                for m in self._by_sentence.get((c, s), ())]


class _ModCache:
    """ConText modifiers per set of members (a trigger inside the sign itself is part of it)."""

    def __init__(self, context: ConText, text: Text, triggers: list) -> None:
        self._context, self._text = context, text
        self._by_sentence: dict[int, list] = defaultdict(list)
        for t in triggers:
            self._by_sentence[text.sentence[t.start]].append(t)
        self._cache: dict[tuple[tuple[int, int], ...], set[str]] = {}

    def _triggers(self, m: Mention) -> list:
        return self._by_sentence.get(m.sentence, [])

    def of(self, members: tuple[Mention, ...]) -> set[str]:
        key = tuple((m.start, m.end) for m in members)
        if key not in self._cache:
            out: set[str] = set()
            for m in members:
                out |= self._context.modifiers(self._text, self._triggers(m), m.start, m.end, key)
            self._cache[key] = out
        return self._cache[key]

    def subject(self, members: tuple[Mention, ...]) -> str:
        """Whose words these are: someone else's (a ConText other-person trigger reaches them),
        the writer's (a first-person word in the clause), or nobody named."""
        doc, clause = self._text.doc, self._text.clause
        if any(m.start and doc[m.start - 1].lower_ in ("my", "mine", "me") for m in members):
            return SELF                 # "my spine", whoever is reporting it
        if OTHER in self.of(members):
            return OTHER_SUBJECT
        for m in members:
            left = m.start
            while left > 0 and clause[left - 1] == m.clause:
                left -= 1
            if any(doc[i].lower_ in FIRST_PERSON for i in range(left, min(m.end + 2, len(doc)))
                   if clause[i] == m.clause):
                return SELF
        return UNKNOWN

    def beside(self, mention: Mention, members: tuple[Mention, ...]) -> set[str]:
        """Modifiers of `mention` where the sign's own words (members) are not triggers."""
        own = tuple((m.start, m.end) for m in members)
        return self._context.modifiers(self._text, self._triggers(mention), mention.start, mention.end, own)


_SCREENERS: dict[tuple, Screener] = {}


def _cached(folder: Path) -> Screener:
    """Screeners never change once built; loads of identical rule files share one."""
    import hashlib

    from bot.safety.rules import RULE_FILES

    try:
        key = (str(folder.resolve()),) + tuple(hashlib.sha1((folder / n).read_bytes()).hexdigest() for n in RULE_FILES)
    except OSError:
        return Screener(load_rules(folder))     # a missing file: let the loader report it
    if key not in _SCREENERS:
        if len(_SCREENERS) >= 8:
            _SCREENERS.pop(next(iter(_SCREENERS)))
        _SCREENERS[key] = Screener(load_rules(folder))
    return _SCREENERS[key]
