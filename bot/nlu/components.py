"""Backline's spaCy components: typo normaliser, data-driven entity extractor, and the
character-n-gram bag-of-features text classifier architecture used by `textcat`."""

from __future__ import annotations

import re
from typing import Any, Iterable

import numpy
import srsly
from murmurhash.mrmr import hash_unicode
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.lookups import Lookups
from spacy.matcher import PhraseMatcher
from spacy.matcher.levenshtein import levenshtein
from spacy.tokens import Doc, Span

_WORD = re.compile(r"[a-z][a-z']+$")
MAX_WORD = 30          # longer "words" are not typos of a real one, and would cost O(length^2) to check

if not Doc.has_extension("entities"):
    Doc.set_extension("entities", default=None)


# -- typo normaliser ------------------------------------------------------------------------

@Language.factory("backline_normalizer", default_config={"max_edits": 1, "min_length": 3})
def make_normalizer(nlp: Language, name: str, max_edits: int, min_length: int) -> "TypoNormalizer":
    return TypoNormalizer(nlp, name, max_edits=max_edits, min_length=min_length)


class TypoNormalizer:
    """Maps unknown words to the closest word of the training vocabulary ("bak" -> "back").

    Sets `token.norm_` (and the lemma, from the lookup lemmatizer's table) so every later
    component sees the corrected word. Candidates come from a deletion index (SymSpell) and
    are confirmed with spaCy's Levenshtein distance, so a message costs a few dict lookups.
    """

    def __init__(self, nlp: Language, name: str, *, max_edits: int = 1, min_length: int = 3) -> None:
        self.nlp = nlp
        self.name = name
        self.max_edits = max_edits
        self.min_length = min_length
        self.vocab_words: dict[str, int] = {}
        self._deletes: dict[str, list[str]] = {}
        self._lemmas: frozenset[str] | None = None
        self._table: Any = {}

    def initialize(self, get_examples=None, *, nlp: Language | None = None, words: Iterable[str] = ()) -> None:
        """Learn the correction targets from the training words.

        A training word that is not English (per the lemma lookups) and sits one edit away from
        a more frequent target is itself a typo in the data ("bak"), so it is not a target."""
        counts: dict[str, int] = {}
        for word in words:
            word = word.lower()
            if _WORD.match(word):
                counts[word] = counts.get(word, 0) + 1
        self.vocab_words = {w: c for w, c in counts.items() if self.is_english(w)}
        self._build()
        for word, count in sorted(counts.items(), key=lambda kv: -kv[1]):
            if word in self.vocab_words:
                continue
            near = self.correct(word) if len(word) >= self.min_length else None
            if near is None or self.vocab_words[near] < count:
                self.vocab_words[word] = count
                self._add(word)

    def set_targets(self, words: Iterable[str]) -> None:
        """Use exactly these words as the correction targets (the safety rules' vocabulary)."""
        self.vocab_words = {w.lower(): 1 for w in words if _WORD.match(w.lower())}
        self._build()

    def is_english(self, word: str) -> bool:
        """Known to the lookup lemmatizer as a form or a lemma, or one of spaCy's English stop
        words, which the lemma table lacks ("never" must not become "fever")."""
        if self._lemmas is None:
            self._table = _lemma_table(self.nlp)
            self._lemmas = frozenset(v for v in self._table.values() if isinstance(v, str)) | STOP_WORDS
        return word in self._table or word in self._lemmas

    def _build(self) -> None:
        self._deletes = {}
        for word in self.vocab_words:
            self._add(word)

    def _add(self, word: str) -> None:
        if len(word) < self.min_length:
            return
        for i in range(len(word)):
            self._deletes.setdefault(word[:i] + word[i + 1:], []).append(word)

    def correct(self, word: str) -> str | None:
        """The known word one edit away from `word`, most frequent first; None when unsure."""
        if word in self.vocab_words or not self.min_length <= len(word) <= MAX_WORD or not _WORD.match(word) \
                or self.is_english(word):
            return None
        dropped = set(self._deletes.get(word, ()))                # user dropped a letter ("helo")
        candidates = set(dropped)
        if len(word) >= 4:
            for i in range(len(word)):
                variant = word[:i] + word[i + 1:]
                if variant in self.vocab_words and len(variant) >= 4:
                    candidates.add(variant)                       # user added a letter
                candidates.update(self._deletes.get(variant, ()))  # swapped/replaced letter
        best, best_key = None, None
        for cand in candidates:
            if levenshtein(word, cand, self.max_edits + 1) > self.max_edits:
                continue
            # The commonest slip is a dropped letter, so prefer it; then the more frequent word.
            key = (cand in dropped, self.vocab_words[cand], cand)
            if best_key is None or key > best_key:
                best, best_key = cand, key
        return best

    def __call__(self, doc: Doc) -> Doc:
        table = None
        for token in doc:
            lower = token.lower_
            fixed = self.correct(lower)
            if fixed is None:
                continue
            token.norm_ = fixed
            if table is None:
                table = _lemma_table(self.nlp)
            token.lemma_ = table.get(fixed, fixed)
        return doc

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return srsly.msgpack_dumps({"vocab_words": self.vocab_words})

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> "TypoNormalizer":
        self.vocab_words = dict(srsly.msgpack_loads(data)["vocab_words"])
        self._build()
        return self

    def to_disk(self, path, *, exclude: Iterable[str] = ()) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "vocab_words.msgpack").write_bytes(self.to_bytes())

    def from_disk(self, path, *, exclude: Iterable[str] = ()) -> "TypoNormalizer":
        return self.from_bytes((path / "vocab_words.msgpack").read_bytes())


def _lemma_table(nlp: Language) -> Any:
    if "lemmatizer" in nlp.pipe_names:
        return nlp.get_pipe("lemmatizer").lookups.get_table("lemma_lookup", {})
    return {}


# -- entity extractor -----------------------------------------------------------------------

@Language.factory("backline_entities", default_config={"use_lookup_tables": True, "use_regexes": True})
def make_entities(nlp: Language, name: str, use_lookup_tables: bool, use_regexes: bool) -> "EntityExtractor":
    return EntityExtractor(nlp, name, use_lookup_tables=use_lookup_tables, use_regexes=use_regexes)


class EntityExtractor:
    """Entities from the training data: annotated examples, lookup tables (matched on the
    typo-corrected lemma, so "lowr backs" finds "lower back") and regexes; values mapped
    through the synonyms. Writes Rasa-shaped dicts to `doc._.entities`."""

    def __init__(self, nlp: Language, name: str, *, use_lookup_tables: bool = True, use_regexes: bool = True) -> None:
        self.nlp = nlp
        self.name = name
        self.use_lookup_tables = use_lookup_tables
        self.use_regexes = use_regexes
        self.phrases: dict[str, list[str]] = {}
        self.regexes: dict[str, list[str]] = {}
        self.synonyms: dict[str, str] = {}
        self._matcher: PhraseMatcher | None = None
        self._compiled: list[tuple[str, re.Pattern[str]]] = []

    def initialize(self, get_examples=None, *, nlp: Language | None = None, phrases=None, regexes=None,
                   synonyms=None) -> None:
        self.phrases = {k: sorted(set(v)) for k, v in (phrases or {}).items()} if self.use_lookup_tables else {}
        self.regexes = dict(regexes or {}) if self.use_regexes else {}
        self.synonyms = dict(synonyms or {})
        self._build()

    def _build(self) -> None:
        self._matcher = PhraseMatcher(self.nlp.vocab, attr="LEMMA")
        pre = [name for name in self.nlp.pipe_names if name not in (self.name, "intent_classifier")]
        for entity, phrases in self.phrases.items():
            docs = []
            for phrase in phrases:
                doc = self.nlp.make_doc(phrase)
                for pipe_name in pre:
                    doc = self.nlp.get_pipe(pipe_name)(doc)
                docs.append(doc)
            self._matcher.add(entity, docs)
        self._compiled = []
        for entity, patterns in self.regexes.items():
            for pattern in patterns:
                self._compiled.append((entity, re.compile(pattern, re.IGNORECASE)))

    def __call__(self, doc: Doc) -> Doc:
        found: list[dict[str, Any]] = []
        if self._matcher is not None and self.phrases:
            spans = [Span(doc, s, e, label=label) for label, s, e in self._matcher(doc)]
            for span in _longest_first(spans):
                ent = self._entity(span.label_, span.text, span.start_char, span.end_char, "RegexEntityExtractor")
                normalised = " ".join(t.norm_ for t in span)
                if "processors" not in ent and normalised != span.text.lower():
                    ent["value"] = self.synonyms.get(normalised, normalised)  # typo-corrected form
                found.append(ent)
        text = doc.text
        for entity, pattern in self._compiled:
            for match in pattern.finditer(text):
                start, end = match.span()
                if start == end:
                    continue
                found.append(self._entity(entity, text[start:end], start, end, "RegexEntityExtractor"))
        doc._.entities = _dedupe(found)
        return doc

    def _entity(self, entity: str, surface: str, start: int, end: int, extractor: str) -> dict[str, Any]:
        result = {"entity": entity, "start": start, "end": end, "value": surface, "extractor": extractor}
        synonym = self.synonyms.get(surface.lower())
        if synonym is not None:
            result["value"] = synonym
            result["processors"] = ["EntitySynonymMapper"]
        return result

    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return srsly.msgpack_dumps({"phrases": self.phrases, "regexes": self.regexes, "synonyms": self.synonyms})

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> "EntityExtractor":
        loaded = srsly.msgpack_loads(data)
        self.phrases, self.regexes, self.synonyms = loaded["phrases"], loaded["regexes"], loaded["synonyms"]
        self._build()
        return self

    def to_disk(self, path, *, exclude: Iterable[str] = ()) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "entities.msgpack").write_bytes(self.to_bytes())

    def from_disk(self, path, *, exclude: Iterable[str] = ()) -> "EntityExtractor":
        return self.from_bytes((path / "entities.msgpack").read_bytes())


def _longest_first(spans: list[Span]) -> list[Span]:
    chosen: list[Span] = []
    taken: set[int] = set()
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if taken.isdisjoint(range(span.start, span.end)):
            chosen.append(span)
            taken.update(range(span.start, span.end))
    return sorted(chosen, key=lambda s: s.start)


def _dedupe(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one entity per overlapping region of the same type, preferring the longer one."""
    result: list[dict[str, Any]] = []
    for ent in sorted(entities, key=lambda e: (-(e["end"] - e["start"]), e["start"])):
        if any(o["entity"] == ent["entity"] and o["start"] < ent["end"] and ent["start"] < o["end"] for o in result):
            continue
        result.append(ent)
    return sorted(result, key=lambda e: (e["start"], e["entity"]))


# -- intent classifier --------------------------------------------------------------------------

def doc_features(doc: Doc, ngram_min: int, ngram_max: int) -> list[str]:
    """Features of one doc: normalised words, lemmas, word bigrams and character n-grams."""
    feats: list[str] = []
    norms = [t.norm_ for t in doc if not t.is_punct and not t.is_space]
    for norm in norms:
        feats.append("w=" + norm)
        feats.extend(_char_ngrams(norm, ngram_min, ngram_max))
    for token in doc:
        if not token.is_punct and not token.is_space:
            feats.append("l=" + token.lemma_.lower())
    for first, second in zip(norms, norms[1:]):
        feats.append(f"b={first}|{second}")
    feats.extend(_entity_features(doc))
    if not feats:
        feats.append("<empty>")
    return feats


def _char_ngrams(norm: str, ngram_min: int, ngram_max: int) -> list[str]:
    """The character n-grams of one word, marked at both ends ("<bak>")."""
    padded = f"<{norm}>"
    return ["c=" + padded[i:i + n] for n in range(ngram_min, ngram_max + 1) for i in range(len(padded) - n + 1)]


def _entity_features(doc: Doc) -> list[str]:
    """What Rasa's RegexFeaturizer adds: which entities the data-driven extractor found, and
    whether one entity is (nearly) the whole message -- a bare answer such as "since saturday"."""
    feats: list[str] = []
    text_chars = sum(1 for c in doc.text if not c.isspace()) or 1
    for ent in doc._.entities or ():
        feats.append("e=" + ent["entity"])
        covered = sum(1 for c in doc.text[ent["start"]:ent["end"]] if not c.isspace())
        if covered / text_chars >= 0.6:
            feats.append("e_all=" + ent["entity"])
    return feats


@Language.factory("backline_intent_classifier",
                  default_config={"ngram_min": 2, "ngram_max": 4, "hash_length": 2 ** 18})
def make_intent_classifier(nlp: Language, name: str, ngram_min: int, ngram_max: int,
                           hash_length: int) -> "IntentClassifier":
    return IntentClassifier(name, ngram_min=ngram_min, ngram_max=ngram_max, hash_length=hash_length)


class IntentClassifier:
    """Multinomial logistic regression over hashed word, lemma, bigram and character n-gram
    features (what Rasa's LogisticRegressionClassifier does over CountVectors), trained with
    cross-entropy and Adam in numpy. Trains in seconds on CPU, costs microseconds per
    message, and tolerates typos through shared character n-grams. Writes `doc.cats`."""

    def __init__(self, name: str, *, ngram_min: int = 2, ngram_max: int = 4, hash_length: int = 2 ** 18) -> None:
        self.name = name
        self.ngram_min = ngram_min
        self.ngram_max = ngram_max
        self.hash_length = hash_length
        self.labels: list[str] = []
        self.columns: dict[int, int] = {}      # hashed feature -> weight row
        self.W = numpy.zeros((0, 0), dtype="float32")
        self.b = numpy.zeros((0,), dtype="float32")

    # features
    def _vector(self, doc: Doc) -> tuple[numpy.ndarray, numpy.ndarray]:
        counts: dict[int, float] = {}
        for feat in doc_features(doc, self.ngram_min, self.ngram_max):
            column = self.columns.get(hash_unicode(feat) % self.hash_length)
            if column is not None:
                counts[column] = counts.get(column, 0.0) + 1.0
        if not counts:
            return numpy.zeros(0, dtype="int64"), numpy.zeros(0, dtype="float32")
        idx = numpy.fromiter(counts.keys(), dtype="int64", count=len(counts))
        val = numpy.fromiter(counts.values(), dtype="float32", count=len(counts))
        return idx, val / numpy.sqrt((val * val).sum())   # L2: long messages don't shout louder

    def predict_proba(self, doc: Doc) -> numpy.ndarray:
        idx, val = self._vector(doc)
        logits = self.b + (val[:, None] * self.W[idx]).sum(axis=0) if len(idx) else self.b.copy()
        logits = logits - logits.max()
        exp = numpy.exp(logits)
        return exp / exp.sum()

    def __call__(self, doc: Doc) -> Doc:
        if self.labels:
            probs = self.predict_proba(doc)
            doc.cats = {label: float(p) for label, p in zip(self.labels, probs)}
        return doc

    def train(self, docs: list[Doc], labels: list[str], *, epochs: int = 40, batch_size: int = 32,
              learn_rate: float = 0.05, l2: float = 1e-5, seed: int = 42, progress=None) -> None:
        self.labels = sorted(set(labels))
        label_index = {label: i for i, label in enumerate(self.labels)}
        self.columns = {}
        for doc in docs:
            for feat in doc_features(doc, self.ngram_min, self.ngram_max):
                self.columns.setdefault(hash_unicode(feat) % self.hash_length, len(self.columns))
        n_feat, n_cls = len(self.columns), len(self.labels)
        self.W = numpy.zeros((n_feat, n_cls), dtype="float32")
        self.b = numpy.zeros(n_cls, dtype="float32")
        vectors = [self._vector(doc) for doc in docs]
        y = numpy.array([label_index[label] for label in labels])
        rng = numpy.random.default_rng(seed)
        m_w, v_w = numpy.zeros_like(self.W), numpy.zeros_like(self.W)
        m_b, v_b = numpy.zeros_like(self.b), numpy.zeros_like(self.b)
        beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
        for epoch in range(epochs):
            order = rng.permutation(len(docs))
            total = 0.0
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                idx = numpy.concatenate([vectors[i][0] for i in batch])
                val = numpy.concatenate([vectors[i][1] for i in batch])
                owner = numpy.repeat(numpy.arange(len(batch)), [len(vectors[i][0]) for i in batch])
                # Dense batch x touched-rows matrix: a doc's features are unique, so plain assignment.
                rows, column = numpy.unique(idx, return_inverse=True)
                X = numpy.zeros((len(batch), len(rows)), dtype="float32")
                X[owner, column] = val
                W_rows = self.W[rows]
                logits = X @ W_rows + self.b
                logits -= logits.max(axis=1, keepdims=True)
                probs = numpy.exp(logits)
                probs /= probs.sum(axis=1, keepdims=True)
                gold = y[batch]
                total += float(-numpy.log(probs[numpy.arange(len(batch)), gold] + 1e-12).sum())
                grad = probs
                grad[numpy.arange(len(batch)), gold] -= 1.0
                grad /= len(batch)
                g_w = X.T @ grad + l2 * W_rows
                g_b = grad.sum(axis=0)
                step += 1
                correction = learn_rate * numpy.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
                # Lazy Adam: only the rows this batch touched move (as sparse embeddings do).
                m_rows = m_w[rows]
                m_rows *= beta1
                m_rows += (1 - beta1) * g_w
                v_rows = v_w[rows]
                v_rows *= beta2
                v_rows += (1 - beta2) * (g_w * g_w)
                m_w[rows] = m_rows
                v_w[rows] = v_rows
                numpy.sqrt(v_rows, out=v_rows)
                v_rows += eps
                m_rows /= v_rows
                m_rows *= correction
                W_rows -= m_rows
                self.W[rows] = W_rows
                m_b[:] = beta1 * m_b + (1 - beta1) * g_b
                v_b[:] = beta2 * v_b + (1 - beta2) * g_b * g_b
                self.b -= correction * m_b / (numpy.sqrt(v_b) + eps)
            if progress:
                progress(epoch + 1, epochs, total / max(1, len(docs)))

    # serialisation (spaCy component protocol)
    def to_bytes(self, *, exclude: Iterable[str] = ()) -> bytes:
        return srsly.msgpack_dumps({
            "labels": self.labels, "ngram_min": self.ngram_min, "ngram_max": self.ngram_max,
            "hash_length": self.hash_length, "columns": list(self.columns.items()),
            "W": self.W.tobytes(), "W_shape": list(self.W.shape), "b": self.b.tobytes()})

    def from_bytes(self, data: bytes, *, exclude: Iterable[str] = ()) -> "IntentClassifier":
        msg = srsly.msgpack_loads(data)
        self.labels = list(msg["labels"])
        self.ngram_min, self.ngram_max, self.hash_length = msg["ngram_min"], msg["ngram_max"], msg["hash_length"]
        self.columns = {int(k): int(v) for k, v in msg["columns"]}
        self.W = numpy.frombuffer(msg["W"], dtype="float32").reshape(msg["W_shape"]).copy()
        self.b = numpy.frombuffer(msg["b"], dtype="float32").copy()
        return self

    def to_disk(self, path, *, exclude: Iterable[str] = ()) -> None:
        path.mkdir(parents=True, exist_ok=True)
        (path / "model.msgpack").write_bytes(self.to_bytes())

    def from_disk(self, path, *, exclude: Iterable[str] = ()) -> "IntentClassifier":
        return self.from_bytes((path / "model.msgpack").read_bytes())


def lemma_lookups() -> Lookups:
    """The English lookup lemma table from spacy-lookups-data (installed locally, no download)."""
    from spacy.lookups import load_lookups
    return load_lookups("en", ["lemma_lookup"])
