"""Builds the spaCy NLU pipeline from config.yml, trains it, saves/loads it, and parses messages
into Rasa's /model/parse shape."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import spacy
from spacy.language import Language

from bot.nlu import components  # noqa: F401 - registers the factories and architecture
from bot.nlu.trainingdata import TrainingData
from bot.yamlio import ProjectError

NLU_FALLBACK = "nlu_fallback"
CLASSIFIER = "intent_classifier"
MAX_NLU_CHARS = 5000
RETRIEVAL_SEPARATOR = "/"



@dataclass
class NLUSettings:
    ngram_min: int = 2
    ngram_max: int = 4
    threshold: float = 0.35
    ambiguity_threshold: float = 0.05
    entities: bool = True
    synonyms: bool = True
    use_lookup_tables: bool = True
    use_regexes: bool = True
    max_edits: int = 1
    epochs: int = 30
    seed: int = 42
    hash_length: int = 2 ** 18
    batch_size: int = 64
    learn_rate: float = 0.05

    @classmethod
    def from_config(cls, pipeline: list[dict[str, Any]], backline: dict[str, Any]) -> "NLUSettings":
        s = cls(max_edits=int(backline.get("typo_tolerance", 1)), epochs=int(backline.get("epochs", 30)),
                seed=int(backline.get("seed", 42)), hash_length=int(backline.get("hash_length", 2 ** 18)),
                batch_size=int(backline.get("batch_size", 64)), learn_rate=float(backline.get("learn_rate", 0.05)))
        s.entities = s.synonyms = False
        for comp in pipeline:  # names were checked with the project (bot/project_keys.py)
            name = comp.get("name")
            if name == "CountVectorsFeaturizer" and comp.get("analyzer") in ("char", "char_wb"):
                s.ngram_min = int(comp.get("min_ngram", 2))
                s.ngram_max = int(comp.get("max_ngram", 4))
            elif name == "RegexEntityExtractor":
                s.entities = True
                s.use_lookup_tables = bool(comp.get("use_lookup_tables", True))
                s.use_regexes = bool(comp.get("use_regexes", True))
            elif name == "EntitySynonymMapper":
                s.synonyms = True
            elif name == "FallbackClassifier":
                s.threshold = float(comp.get("threshold", 0.3))
                s.ambiguity_threshold = float(comp.get("ambiguity_threshold", 0.1))
        return s


def build_nlp(settings: NLUSettings) -> Language:
    """spacy.blank("en") + lookup lemmatizer + typo normaliser + entities + intent classifier."""
    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.add_pipe("backline_normalizer", config={"max_edits": settings.max_edits})
    if settings.entities:
        nlp.add_pipe("backline_entities", config={"use_lookup_tables": settings.use_lookup_tables,
                                                  "use_regexes": settings.use_regexes})
    nlp.add_pipe("backline_intent_classifier", name=CLASSIFIER, config={
        "ngram_min": settings.ngram_min, "ngram_max": settings.ngram_max, "hash_length": settings.hash_length})
    return nlp


def _preprocess(nlp: Language, text: str):
    doc = nlp.make_doc(text)
    for name, proc in nlp.pipeline:
        if name == CLASSIFIER:
            break
        doc = proc(doc)
    return doc


def train_nlp(data: TrainingData, settings: NLUSettings,
              progress: Callable[[int, int, float], None] | None = None) -> Language:
    """Train the pipeline on the examples; `progress(epoch, epochs, loss)` is called per epoch."""
    _check_trainable(data)
    nlp = build_nlp(settings)
    nlp.get_pipe("lemmatizer").initialize(lookups=components.lemma_lookups())
    nlp.get_pipe("backline_normalizer").initialize(words=_training_words(nlp, data))
    if settings.entities:
        nlp.get_pipe("backline_entities").initialize(phrases=_entity_phrases(data), regexes=data.regexes,
                                                     synonyms=data.synonyms if settings.synonyms else {})
    docs = [_preprocess(nlp, ex.text[:MAX_NLU_CHARS]) for ex in data.examples]
    nlp.get_pipe(CLASSIFIER).train(docs, [ex.intent for ex in data.examples], epochs=settings.epochs,
                                   batch_size=settings.batch_size, learn_rate=settings.learn_rate,
                                   seed=settings.seed, progress=progress)
    return nlp


def _check_trainable(data: TrainingData) -> None:
    if not data.examples:
        raise ProjectError("data/nlu.yml", None, "no intent examples found; add `- intent:` items with examples")
    labels = sorted({ex.intent for ex in data.examples})
    if len(labels) < 2:
        raise ProjectError("data/nlu.yml", None, "at least two intents are needed to train a classifier")


def _training_words(nlp: Language, data: TrainingData) -> list[str]:
    """The lower-cased tokens of the examples and lookup phrases: the typo normaliser's targets."""
    words: list[str] = []
    for ex in data.examples:
        words += [t.lower_ for t in nlp.make_doc(ex.text)]
    for phrases in data.lookups.values():
        for phrase in phrases:
            words += [t.lower_ for t in nlp.make_doc(phrase)]
    return words


def _entity_phrases(data: TrainingData) -> dict[str, list[str]]:
    """Entity -> phrases to match: the annotated surfaces of the examples, then the lookup tables."""
    phrases: dict[str, list[str]] = {}
    for ex in data.examples:
        for ent in ex.entities:
            surface = ex.text[ent["start"]:ent["end"]]
            # Bare numbers and tiny tokens ("8", "7/10") would match anywhere ("8 months"):
            # the regexes in the data cover those.
            if len(surface) >= 3 and re.search(r"[A-Za-z]{3}", surface):
                phrases.setdefault(ent["entity"], []).append(surface)
    for name, values in data.lookups.items():
        phrases.setdefault(name, []).extend(values)
    return phrases


class NLUModel:
    """A trained pipeline plus the settings needed to turn its output into Rasa parse data."""

    def __init__(self, nlp: Language, settings: NLUSettings) -> None:
        self.nlp = nlp
        self.settings = settings
        self.labels = list(nlp.get_pipe(CLASSIFIER).labels)
        self.intents = sorted({label.split(RETRIEVAL_SEPARATOR)[0] for label in self.labels})

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.nlp.to_disk(path / "nlu")
        (path / "nlu_settings.json").write_text(json.dumps(self.settings.__dict__, indent=2))

    @classmethod
    def load(cls, path: Path) -> "NLUModel":
        nlp = spacy.load(path / "nlu")
        settings = NLUSettings(**json.loads((path / "nlu_settings.json").read_text()))
        return cls(nlp, settings)

    def parse(self, text: str, message_id: str | None = None) -> dict[str, Any]:
        """Parse a message; `/intent{"entity": "value"}` payloads bypass the classifier as in Rasa."""
        text = clean_text(text)
        payload = parse_intent_payload(text)
        if payload is not None:
            return self._payload_result(text, *payload, message_id=message_id)
        doc = self.nlp(text[:MAX_NLU_CHARS])
        cats = sorted(doc.cats.items(), key=lambda kv: -kv[1])
        grouped: dict[str, float] = {}
        retrieval: dict[str, list[tuple[str, float]]] = {}
        for label, score in cats:
            base, _, sub = label.partition(RETRIEVAL_SEPARATOR)
            grouped[base] = grouped.get(base, 0.0) + score
            if sub:
                retrieval.setdefault(base, []).append((label, score))
        ranking = sorted(grouped.items(), key=lambda kv: -kv[1])
        top_name, top_conf = ranking[0] if ranking else (NLU_FALLBACK, 0.0)
        second = ranking[1][1] if len(ranking) > 1 else 0.0
        intent = {"name": top_name, "confidence": float(top_conf)}
        if not text.strip() or top_conf < self.settings.threshold or top_conf - second < self.settings.ambiguity_threshold:
            intent = {"name": NLU_FALLBACK, "confidence": float(self.settings.threshold)}
        result = {
            "text": text,
            "intent": intent,
            "entities": list(doc._.entities or []),
            "text_tokens": [[t.idx, t.idx + len(t)] for t in doc],
            "intent_ranking": [{"name": n, "confidence": float(c)} for n, c in ranking[:10]],
            "response_selector": _response_selector(retrieval),
        }
        if intent["name"] == NLU_FALLBACK:
            result["intent_ranking"].insert(0, dict(intent))
        if message_id is not None:
            result["message_id"] = message_id
        return result

    def _payload_result(self, text: str, intent: str, entities: dict[str, Any], message_id: str | None) -> dict[str, Any]:
        base, _, sub = intent.partition(RETRIEVAL_SEPARATOR)
        retrieval = {base: [(intent, 1.0)]} if sub else {}
        result = {
            "text": text,
            "intent": {"name": base, "confidence": 1.0},
            "entities": [{"entity": k, "value": v, "start": 0, "end": len(text), "extractor": "payload"}
                         for k, v in entities.items()],
            "text_tokens": [],
            "intent_ranking": [{"name": base, "confidence": 1.0}],
            "response_selector": _response_selector(retrieval),
        }
        if message_id is not None:
            result["message_id"] = message_id
        return result


_PAYLOAD = re.compile(r"^/(?P<intent>[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+)?)(?P<entities>\{.*\})?\s*$", re.S)


_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Lone surrogates (JSON lets clients send "\\ud800") cannot be encoded: replace them."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def parse_intent_payload(text: str) -> tuple[str, dict[str, Any]] | None:
    """'/inform{"body_part": "lower back"}' -> ("inform", {...}); None for ordinary text."""
    match = _PAYLOAD.match(text.strip())
    if not match:
        return None
    entities: dict[str, Any] = {}
    if match.group("entities"):
        try:
            loaded = json.loads(match.group("entities"))
        except json.JSONDecodeError:
            return None
        if not isinstance(loaded, dict):
            return None
        entities = loaded
    return match.group("intent"), entities


def _response_selector(retrieval: dict[str, list[tuple[str, float]]]) -> dict[str, Any]:
    selector: dict[str, Any] = {"all_retrieval_intents": sorted(retrieval)}
    for base, options in retrieval.items():
        total = sum(score for _, score in options) or 1.0
        ranked = sorted(options, key=lambda kv: -kv[1])
        best, best_score = ranked[0]
        selector[base] = {
            "response": {"responses": None, "confidence": best_score / total, "intent_response_key": best,
                         "utter_action": f"utter_{best}"},
            "ranking": [{"confidence": s / total, "intent_response_key": k} for k, s in ranked[:10]],
        }
    selector["default"] = {"response": {"responses": None, "confidence": 0.0, "intent_response_key": None,
                                         "utter_action": "utter_None"}, "ranking": []}
    return selector
