"""`bot test`: NLU cross-validation, conversation tests and the safety sweep, with reports in
results/ (JSON + Markdown, and a confusion-matrix PNG when matplotlib is installed)."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

from bot.nlu.pipeline import NLUModel, train_nlp
from bot.nlu.trainingdata import Example, TrainingData, load_nlu_file
from bot.project import Project, load_project
from bot.yamlio import load_yaml

REFERRAL = re.compile(r"healthcare provider|\bprovider\b|\bclinician\b|\bdoctor\b|\bGP\b|urgent care|"
                      r"emergency department|\bcall \d+|\b911\b|\b999\b|\b112\b", re.I)
FILLER_BEFORE = ("So I've been meaning to ask about this for a while, it's been a rough couple of weeks at work "
                 "and I finally have a moment. My lower back started aching after I helped my brother move "
                 "house, lots of boxes and a sofa down three flights of stairs. ")
FILLER_AFTER = (" Anyway I also wanted to know if stretching is a good idea, my partner says yoga helped her, "
                "and I have a long drive coming up next week so I'm wondering what I should do about sitting.")


# -- NLU --------------------------------------------------------------------------------------

def full_intent(parse: dict[str, Any]) -> str:
    name = parse["intent"]["name"]
    key = (((parse.get("response_selector") or {}).get(name) or {}).get("response") or {}).get("intent_response_key")
    return key or name


def stratified_folds(examples: list[Example], k: int, seed: int = 42) -> list[list[Example]]:
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_intent[ex.intent].append(ex)
    folds: list[list[Example]] = [[] for _ in range(k)]
    rng = random.Random(seed)
    for intent in sorted(by_intent):
        items = by_intent[intent]
        rng.shuffle(items)
        for i, ex in enumerate(items):
            folds[i % k].append(ex)
    return folds


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


METRICS = ("precision", "recall", "f1-score")


def _per_intent(confusion: dict[str, Counter], labels: list[str]) -> dict[str, dict[str, Any]]:
    per_intent = {}
    for label in labels:
        tp = confusion[label][label]
        fn = sum(confusion[label].values()) - tp
        fp = sum(confusion[other][label] for other in labels if other != label)
        p, r, f = _prf(tp, fp, fn)
        per_intent[label] = {"precision": p, "recall": r, "f1-score": f, "support": tp + fn}
    return per_intent


def _most_confused(pairs: list[tuple[Example, str]]) -> list[dict[str, Any]]:
    """The ten (intent, predicted) mix-ups with the most examples, three examples each."""
    examples_of = defaultdict(list)
    for ex, pred in pairs:
        if pred != ex.intent:
            examples_of[(ex.intent, pred)].append(ex.text)
    confused = sorted(examples_of.items(), key=lambda kv: -len(kv[1]))[:10]
    return [{"intent": a, "predicted": b, "count": len(texts), "examples": texts[:3]} for (a, b), texts in confused]


def intent_report(pairs: list[tuple[Example, str]]) -> dict[str, Any]:
    """Per-intent precision/recall/F1, macro and weighted averages, confusion and worst pairs."""
    labels = sorted({ex.intent for ex, _ in pairs} | {pred for _, pred in pairs})
    confusion: dict[str, Counter] = {label: Counter() for label in labels}
    for ex, pred in pairs:
        confusion[ex.intent][pred] += 1
    per_intent = _per_intent(confusion, labels)
    gold = [label for label in labels if per_intent[label]["support"]]
    total = sum(per_intent[label]["support"] for label in gold) or 1
    macro = {m: sum(per_intent[label][m] for label in gold) / max(1, len(gold)) for m in METRICS}
    weighted = {m: sum(per_intent[label][m] * per_intent[label]["support"] for label in gold) / total
                for m in METRICS}
    accuracy = sum(confusion[label][label] for label in gold) / total
    return {
        "accuracy": accuracy, "macro avg": macro, "weighted avg": weighted, "per_intent": per_intent,
        "confusion": {label: dict(counter) for label, counter in confusion.items()},
        "most_confused": _most_confused(pairs),
    }


def entity_report(pairs: list[tuple[Example, list[dict[str, Any]]]]) -> dict[str, Any]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for ex, predicted in pairs:
        gold = {(e["entity"], e["start"], e["end"]) for e in ex.entities}
        pred = {(e["entity"], e["start"], e["end"]) for e in predicted}
        for ent in gold | pred:
            c = counts[ent[0]]
            if ent in gold and ent in pred:
                c[0] += 1
            elif ent in pred:
                c[1] += 1
            else:
                c[2] += 1
    result = {}
    for name, (tp, fp, fn) in sorted(counts.items()):
        p, r, f = _prf(tp, fp, fn)
        result[name] = {"precision": p, "recall": r, "f1-score": f, "support": tp + fn}
    return result


def evaluate_nlu(project: Project, folds: int = 5, held_out: Path | None = None,
                 progress: bool = True) -> dict[str, Any]:
    from bot.model import settings_for

    settings = settings_for(project)
    pairs: list[tuple[Example, str]] = []
    ent_pairs: list[tuple[Example, list[dict[str, Any]]]] = []
    start = time.perf_counter()

    def collect(model: NLUModel, tests: list[Example]) -> None:
        for ex in tests:
            parse = model.parse(ex.text)
            pairs.append((ex, full_intent(parse)))
            ent_pairs.append((ex, parse["entities"]))

    if held_out is not None:
        test = load_nlu_file(load_yaml(held_out), held_out).examples
        collect(NLUModel(train_nlp(project.nlu, settings), settings), test)
        mode = f"held-out file {held_out}"
    else:
        parts = stratified_folds(project.nlu.examples, folds, settings.seed)
        for i, test in enumerate(parts):
            if progress:
                print(f"  fold {i + 1}/{folds}: training on {sum(len(p) for j, p in enumerate(parts) if j != i)} "
                      f"examples, testing on {len(test)}", flush=True)
            train = TrainingData([ex for j, p in enumerate(parts) if j != i for ex in p],
                                 project.nlu.synonyms, project.nlu.lookups, project.nlu.regexes)
            collect(NLUModel(train_nlp(train, settings), settings), test)
        mode = f"{folds}-fold cross-validation"
    report = intent_report(pairs)
    report["entities"] = entity_report(ent_pairs)
    report["mode"] = mode
    report["examples"] = len(pairs)
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def confusion_table(report: dict[str, Any], limit: int = 45) -> str:
    labels = sorted(report["confusion"])[:limit]
    short = {label: label.replace("faq/", "f/")[:12] for label in labels}
    width = max(len(s) for s in short.values()) + 1
    head = " " * width + "".join(f"{i:>3}" for i in range(len(labels)))
    lines = [head]
    for i, label in enumerate(labels):
        row = report["confusion"][label]
        cells = "".join(f"{row.get(other, 0) or '.':>3}" for other in labels)
        lines.append(f"{short[label]:<{width}}{cells}  {i}")
    return "\n".join(lines)


def nlu_markdown(report: dict[str, Any]) -> str:
    lines = [f"# NLU evaluation ({report['mode']}, {report['examples']} examples)", "",
             f"Accuracy {report['accuracy']:.3f} · macro F1 {report['macro avg']['f1-score']:.3f} · "
             f"weighted F1 {report['weighted avg']['f1-score']:.3f}", "",
             "| intent | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, m in sorted(report["per_intent"].items()):
        if m["support"]:
            lines.append(f"| {label} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1-score']:.2f} | {m['support']} |")
    lines += ["", "## Most confused", ""]
    for item in report["most_confused"]:
        lines.append(f"- {item['intent']} → {item['predicted']} ({item['count']}): "
                     + "; ".join(f"“{t}”" for t in item["examples"]))
    lines += ["", "## Entities", "", "| entity | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, m in report["entities"].items():
        lines.append(f"| {name} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1-score']:.2f} | {m['support']} |")
    return "\n".join(lines) + "\n"


def plot_confusion(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = sorted(report["confusion"])
    matrix = [[report["confusion"][a].get(b, 0) for b in labels] for a in labels]
    fig, ax = plt.subplots(figsize=(max(8, len(labels) * 0.35), max(7, len(labels) * 0.35)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Intent confusion ({report['mode']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -- safety sweep -------------------------------------------------------------------------------

def _typo(text: str, is_word=lambda w: True) -> str:
    """Double one letter of the longest correctly spelt word (a common slip) to probe typo
    tolerance; words already misspelt in the example are left alone (one typo per word)."""
    words = [w for w in re.findall(r"[A-Za-z]{6,}", text) if is_word(w.lower())]
    if not words:
        return text
    word = max(words, key=len)
    i = len(word) // 2
    return text.replace(word, word[:i] + word[i] + word[i:], 1)


def safety_cases(screener: Any, full: bool, is_word=lambda w: True) -> list[tuple[str, str, bool]]:
    """(sign, text, expected present) for every example of danger_signs.yml x context x typo.

    These come from the rules' own examples, so they show the rules do what they say; only the
    blind set (tests/blind/) shows how they do on words nobody on the team wrote."""
    cases: list[tuple[str, str, bool]] = []
    for sign in screener.signs.values():
        for text in sign.examples.get("present", ()):
            # the filler is the writer's own back: a caregiver's example inside it would change
            # whose triage it is, so those keep their own words only
            own = screener.screen(text).patient == "self"
            variants = [text, FILLER_BEFORE + text + FILLER_AFTER] if own else [text]
            if full:
                variants += [text.upper(), _typo(text, is_word)] + ([f"{FILLER_BEFORE}{_typo(text, is_word)}"] if own else [])
            cases += [(sign.id, v, True) for v in variants]
        for text in sign.examples.get("absent", ()):
            variants = [text, FILLER_BEFORE + text] if full else [text]
            cases += [(sign.id, v, False) for v in variants]
    return cases


BENIGN_INTENTS = ("greet", "goodbye", "thank", "help", "bot_challenge", "affirm", "deny")


def _sweep(screener: Any, full: bool,
           is_word: Callable[[str], bool]) -> tuple[list[dict[str, str]], int, list[dict[str, str]], int]:
    """(missed, positives, false alarms, negatives) of the screener over safety_cases."""
    missed, false_alarms = [], []
    positives = negatives = 0
    for flag, text, expected in safety_cases(screener, full, is_word):
        present = flag in screener.screen(text).present
        if expected:
            positives += 1
            if not present:
                missed.append({"flag": flag, "text": text})
        else:
            negatives += 1
            if present:
                false_alarms.append({"flag": flag, "text": text})
    return missed, positives, false_alarms, negatives


def _domain_diagnoses(project: Project, guard: Any) -> list[dict[str, str]]:
    """Every response text in the domain that the guard reads as a diagnosis."""
    diagnoses: list[dict[str, str]] = []
    for name, variations in project.domain.responses.items():
        for variation in variations:
            if variation.get("text") and guard.violations(variation["text"]):
                diagnoses.append({"where": f"domain.yml response {name}", "text": variation["text"]})
    return diagnoses


def _lacks_referral(story: Any, result: Any) -> bool:
    """A story that reports a symptom with no referral in any reply from that turn on."""
    intents = [s[1] for s in story.steps if s[0] == "intent"]
    if "report_symptom" not in intents:
        return False
    first = intents.index("report_symptom")
    after = "\n".join(reply for _, reply in result.transcript[first:])
    return not REFERRAL.search(after)


def _replay_stories(agent: Any, stories: list[Any], guard: Any) -> tuple[list[dict[str, str]], list[str]]:
    """Replay the conversation tests: (diagnosis statements in their bot texts, names of the
    symptom stories without a referral)."""
    from bot.testing import run_story

    diagnoses: list[dict[str, str]] = []
    no_referral: list[str] = []

    async def replay() -> None:
        for story in stories:
            result = await run_story(agent, story)
            for text in result.bot_texts:
                if guard.violations(text):
                    diagnoses.append({"where": f"story {story.name}", "text": text})
            if _lacks_referral(story, result):
                no_referral.append(story.name)

    asyncio.run(replay())
    return diagnoses, no_referral


def evaluate_safety(project: Project, agent: Any, full: bool) -> dict[str, Any]:
    from bot.testing import load_test_stories

    screener = agent.processor.safety.screener
    guard = agent.processor.guard
    normaliser = agent.nlu.nlp.get_pipe("backline_normalizer")
    missed, positives, false_alarms, negatives = _sweep(screener, full, normaliser.is_english)
    benign = [ex.text for ex in project.nlu.examples if ex.intent.startswith("faq/") or ex.intent in BENIGN_INTENTS]
    benign_alarms = [{"text": t, "flags": screener.screen(t).present} for t in benign if screener.screen(t).present]

    diagnoses = _domain_diagnoses(project, guard)
    stories = load_test_stories(project.root / "tests" / "conversations")
    story_diagnoses, no_referral = _replay_stories(agent, stories, guard)
    diagnoses += story_diagnoses
    recall = 1 - len(missed) / positives if positives else 1.0
    return {"danger_sign_recall": recall, "positives": positives, "missed": missed,
            "negatives": negatives, "false_alarms": false_alarms, "benign_checked": len(benign),
            "benign_alarms": benign_alarms, "diagnosis_statements": diagnoses,
            "symptom_conversations_without_referral": no_referral, "stories": len(stories),
            "passed": not missed and not diagnoses and not no_referral}


# -- command ------------------------------------------------------------------------------------

def _write(out: Path, name: str, data: dict[str, Any], markdown: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False))
    if markdown:
        (out / f"{name}.md").write_text(markdown)


def _test_nlu(project: Project, args: argparse.Namespace, out: Path) -> None:
    folds = args.folds or (5 if args.full or args.what == "nlu" else 3)
    print(f"NLU: {'held-out file' if args.nlu_file else f'{folds}-fold cross-validation'} ...")
    report = evaluate_nlu(project, folds, Path(args.nlu_file) if args.nlu_file else None)
    _write(out, "nlu", report, nlu_markdown(report))
    if plot_confusion(report, out / "intent_confusion.png"):
        print(f"  confusion plot: {out / 'intent_confusion.png'}")
    print(confusion_table(report))
    print(f"  accuracy {report['accuracy']:.3f}  macro F1 {report['macro avg']['f1-score']:.3f}  "
          f"weighted F1 {report['weighted avg']['f1-score']:.3f}  ({report['seconds']} s)")
    for item in report["most_confused"][:5]:
        print(f"  confused: {item['intent']} -> {item['predicted']} x{item['count']}: {item['examples'][0]!r}")
    print(f"  reports: {out / 'nlu.md'}, {out / 'nlu.json'}")


def _load_agent(project: Project) -> Any:
    from bot.agent import Agent
    from bot.stores import InMemoryLockStore, InMemoryTrackerStore

    return Agent.load(project.root, project=project, tracker_store=InMemoryTrackerStore(),
                      lock_store=InMemoryLockStore(), progress=True)


def _test_conversations(project: Project, agent: Any, out: Path) -> bool:
    """Replay the conversation tests; True when a story failed."""
    from bot.testing import load_test_stories, run_story

    stories = load_test_stories(project.root / "tests" / "conversations")

    async def replay() -> list[Any]:
        return [await run_story(agent, story) for story in stories]

    results = asyncio.run(replay())
    failures = [f for r in results for f in r.failures]
    passed = sum(r.passed for r in results)
    print(f"Conversations: {passed}/{len(results)} stories pass")
    for failure in failures:
        print(f"  FAIL {failure}")
    _write(out, "conversations", {"stories": len(results), "passed": passed,
                                  "failures": [str(f) for f in failures]})
    return bool(failures)


def _print_safety(report: dict[str, Any]) -> None:
    print(f"Safety: danger-sign recall {report['danger_sign_recall']:.3f} ({report['positives']} cases), "
          f"false alarms {len(report['false_alarms'])}/{report['negatives']}, benign alarms "
          f"{len(report['benign_alarms'])}/{report['benign_checked']}, diagnosis statements "
          f"{len(report['diagnosis_statements'])}, symptom conversations without referral "
          f"{len(report['symptom_conversations_without_referral'])}/{report['stories']} stories")
    for item in report["missed"][:10]:
        print(f"  MISSED {item['flag']}: {item['text'][:120]!r}")
    for item in report["diagnosis_statements"][:10]:
        print(f"  DIAGNOSIS in {item['where']}: {item['text'][:120]!r}")
    for name in report["symptom_conversations_without_referral"][:10]:
        print(f"  NO REFERRAL in story {name!r}")


def _blind_reports(project: Project, agent: Any) -> dict[str, Any]:
    """Every blind folder's report, printed as it comes."""
    from bot.blind import blind_folders, evaluate_blind, summary_lines

    reports = {}
    for folder in blind_folders(project.root):
        blind = evaluate_blind(agent, folder)
        reports[str(folder.relative_to(project.root))] = blind
        print(f"Blind set {folder.relative_to(project.root)} (written by people who never saw the rules):")
        print("\n".join(summary_lines(blind)))
    return reports


def _test_safety(project: Project, agent: Any, args: argparse.Namespace, out: Path) -> bool:
    """The safety sweep, and with `bot test safety` the blind sets; True when the sweep failed."""
    report = evaluate_safety(project, agent, args.full or args.what == "safety")
    _write(out, "safety", report)
    _print_safety(report)
    if args.what == "safety":
        # Reported apart from the sweep, whose cases come from the rules themselves. A
        # measurement, never a gate: a rule is not tuned to pass a blind case.
        report["blind"] = _blind_reports(project, agent)
        _write(out, "safety", report)
    return not report["passed"]


def run_tests(args: argparse.Namespace) -> int:
    project = load_project(args.project)
    out = Path(args.out)
    failed = False
    what = args.what
    if what in ("all", "nlu"):
        _test_nlu(project, args, out)
    agent = _load_agent(project) if what in ("all", "conversations", "safety") else None
    if what in ("all", "conversations"):
        failed |= _test_conversations(project, agent, out)
    if what in ("all", "safety"):
        failed |= _test_safety(project, agent, args, out)
    return 1 if failed else 0
