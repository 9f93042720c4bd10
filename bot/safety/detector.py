"""The learned backstop: a classifier that suspects danger signs the rules did not confirm.

Trained by `bot train` (bot/model.py) on the rules' reviewed examples and on every NLU training
example labelled by the screen itself, with the NLU's own classifier (hashed word, lemma and
character n-gram features, so typos and near-synonyms share features). It never raises an alarm:
a sign it suspects is only asked about (the sign's screening question), the way DESIGN.md says a
possible sign is handled.
"""

from __future__ import annotations

from itertools import chain
from pathlib import Path
from typing import Iterator

import srsly

from bot.nlu.components import IntentClassifier
from bot.safety.rules import CRISIS_SIGN
from bot.safety.screen import Screener
from bot.safety.text import Text

NONE = "none"
# A sign this probable, and neither found nor ruled out by the rules, is asked about. Chosen by
# 3-fold cross-validation on the training data (benchmarks/detector_cv.py, 2026-12-02): at 0.2,
# 1.4 % of held-out messages without a sign get a question and 62 % of held-out signs are asked.
THRESHOLD = 0.2
# The crisis question's own: asking is safe and missing is not. 3-fold CV (2026-12-02, 4,766
# messages without a sign, 62 crisis): at 0.1, 0.2 % of messages without a sign would get the
# crisis question and 47 % of held-out crisis messages are asked (0.13 % and 29 % at 0.2; at
# 0.05, 0.5 % and 56 %, but common short answers such as "none of them" came close to it).
CRISIS_THRESHOLD = 0.1
TRAINING_FILE = "danger_training.yml"     # extra examples written for the detector (knowledge/)
FILE = "danger_detector.msgpack"
EPOCHS = 20


class DangerDetector:
    def __init__(self, classifier: IntentClassifier, threshold: float = THRESHOLD) -> None:
        self.classifier = classifier
        self.threshold = threshold

    @classmethod
    def train(cls, screener: Screener, texts: list[str], *, training: dict | None = None,
              seed: int = 42) -> "DangerDetector":
        """Trained on `training_set` (benchmarks/detector_cv.py cross-validates the same set)."""
        docs, labels = training_set(screener, texts, training)
        classifier = IntentClassifier("danger_detector")
        classifier.train(docs, labels, epochs=EPOCHS, seed=seed)
        return cls(classifier)

    def suspects(self, text: Text) -> list[str]:
        """Signs the classifier finds likely in this message, most likely first."""
        if not len(text) or not self.classifier.labels:
            return []
        probs = self.classifier.predict_proba(text.doc)
        ranked = sorted(zip(self.classifier.labels, probs), key=lambda lp: -lp[1])
        return [label for label, p in ranked if label != NONE and p >= threshold_for(label, self.threshold)]

    def save(self, folder: Path) -> None:
        (folder / FILE).write_bytes(srsly.msgpack_dumps({"threshold": self.threshold,
                                                         "classifier": self.classifier.to_bytes()}))

    @classmethod
    def load(cls, folder: Path) -> "DangerDetector | None":
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        data = srsly.msgpack_loads(path.read_bytes())
        classifier = IntentClassifier("danger_detector").from_bytes(data["classifier"])
        return cls(classifier, float(data["threshold"]))


def threshold_for(sign: str, default: float = THRESHOLD) -> float:
    """The probability at which `sign` is asked about: lower for the crisis question, which a
    person may always be asked (asking does not increase risk, CONTENT.md "Crisis screening")."""
    return CRISIS_THRESHOLD if sign == CRISIS_SIGN else default


def training_set(screener: Screener, texts: list[str], training: dict | None = None) -> tuple[list, list[str]]:
    """Positives: every present/asked example of danger_signs.yml, the detector's own training
    file, and any NLU training text the screen finds a sign in; negatives: absent examples,
    the training file's negatives and all other NLU training texts."""
    docs, labels = [], []
    # one stream, in this order: the sources are generators, so every text is screened and
    # tokenised in turn, exactly as one loop per source would
    for text, label in chain(_rule_examples(screener), _training_file_examples(screener, training),
                             _screened_examples(screener, texts)):
        docs.append(screener.text(text).doc)
        labels.append(label)
    return docs, labels


def _rule_examples(screener: Screener) -> Iterator[tuple[str, str]]:
    """danger_signs.yml: present and asked examples as the sign, absent ones as NONE."""
    for sign in screener.signs.values():
        for text in sign.examples.get("present", ()) + sign.examples.get("asked", ()):
            yield text, sign.id
        for text in sign.examples.get("absent", ()):
            yield text, NONE


def _training_file_examples(screener: Screener, training: dict | None) -> Iterator[tuple[str, str]]:
    """The detector's own training file: positives of known signs, then the negatives."""
    for sign_id, examples in ((training or {}).get("positives") or {}).items():
        if sign_id in screener.signs:
            for text in examples or ():
                yield str(text), sign_id
    for text in (training or {}).get("negatives") or ():
        yield str(text), NONE


def _screened_examples(screener: Screener, texts: list[str]) -> Iterator[tuple[str, str]]:
    """NLU training texts, labelled by the screen: the first sign it finds or suspects, else NONE."""
    for text in texts:
        result = screener.screen(text)
        found = result.present or result.suspected
        yield text, found[0] if found else NONE
