"""Cross-validation of the learned backstop (bot/safety/detector.py) on its own training set:
how often a message without a sign would be asked a question, and how many held-out signs would
be asked about, at each threshold; the crisis sign separately. Chooses nothing by itself: the
thresholds in detector.py are set from this table (never from the blind sets).

Usage: python benchmarks/detector_cv.py [--folds 3] [--seed 42]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from bot.nlu.components import IntentClassifier  # noqa: E402
from bot.project import load_project  # noqa: E402
from bot.safety.data import load_yaml  # noqa: E402
from bot.safety.detector import EPOCHS, NONE, TRAINING_FILE, training_set  # noqa: E402
from bot.safety.rules import CRISIS_SIGN  # noqa: E402
from bot.safety.screen import Screener  # noqa: E402

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4)


def folds(labels: list[str], k: int, seed: int) -> list[int]:
    """A fold number per example, stratified by label."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    fold = [0] * len(labels)
    rng = random.Random(seed)
    for items in by_label.values():
        rng.shuffle(items)
        for n, i in enumerate(items):
            fold[i] = n % k
    return fold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    project = load_project(ROOT)
    screener = Screener.load(project.knowledge_dir)
    path = project.knowledge_dir / TRAINING_FILE
    docs, labels = training_set(screener, [ex.text for ex in project.nlu.examples],
                                load_yaml(path) if path.is_file() else None)
    fold = folds(labels, args.folds, args.seed)
    held: list[tuple[str, dict[str, float]]] = []
    for k in range(args.folds):
        train = [i for i in range(len(docs)) if fold[i] != k]
        classifier = IntentClassifier("danger_detector_cv")
        classifier.train([docs[i] for i in train], [labels[i] for i in train], epochs=EPOCHS, seed=args.seed)
        for i in (i for i in range(len(docs)) if fold[i] == k):
            held.append((labels[i], dict(zip(classifier.labels, classifier.predict_proba(docs[i])))))

    negatives = [p for label, p in held if label == NONE]
    positives = [(label, p) for label, p in held if label != NONE]
    crisis = [p for label, p in positives if label == CRISIS_SIGN]
    print(f"# Danger-sign detector, {args.folds}-fold cross-validation ({describe()})\n")
    print(f"{len(negatives)} held-out messages without a sign, {len(positives)} with one "
          f"({len(crisis)} crisis)\n")
    print("| threshold | messages without a sign asked any question | signs asked about (right sign) "
          "| without a sign asked the crisis question | crisis asked about |")
    print("|---|---|---|---|---|")
    for t in THRESHOLDS:
        false_any = sum(any(v >= t for lab, v in p.items() if lab != NONE) for p in negatives)
        caught = sum(p.get(label, 0.0) >= t for label, p in positives)
        false_crisis = sum(p.get(CRISIS_SIGN, 0.0) >= t for p in negatives)
        crisis_caught = sum(p.get(CRISIS_SIGN, 0.0) >= t for p in crisis)
        print(f"| {t:.2f} | {false_any / len(negatives):.1%} | {caught / len(positives):.1%} "
              f"| {false_crisis / len(negatives):.2%} | {crisis_caught / max(1, len(crisis)):.1%} |")


if __name__ == "__main__":
    main()
