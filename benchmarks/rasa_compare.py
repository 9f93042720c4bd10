"""Backline next to real Rasa 3.6 on the same data: intent F1/accuracy on one identical split,
training time, HTTP latency/throughput and server memory. Prints one Markdown table.

    .venv/bin/python benchmarks/rasa_compare.py [--rasa-venv /tmp/rasa36-venv] [--fold 0]
        [--requests 100] [--conversations 20] [--turns 8] [--response-selector EPOCHS] [--keep]
        [--out results/rasa_compare.md]

Rasa 3.6 needs Python 3.10 and is never installed into Backline's venv nor committed. Set it up
outside the repository (large: TensorFlow), e.g.

    /root/.pyenv/versions/3.10.13/bin/python -m venv /tmp/rasa36-venv
    /tmp/rasa36-venv/bin/pip install rasa==3.6.21

(or point --rasa-venv / RASA_VENV elsewhere). Without it the script says
"Rasa 3.6 not available: <reason>" and still prints Backline's column.

What it does, all in a temporary folder (the repository is only read):
1. Snapshots config.yml, domain.yml, data/, actions/ (other people edit the tree meanwhile),
   so both engines see byte-identical data. Rasa's copy drops config.yml's `backline:` section
   and knowledge/ (Backline-only YAML that is not Rasa training data).
2. Splits the NLU examples with Backline's own stratified 5-fold split (bot/evaluate.py
   `stratified_folds`, the config seed); fold --fold is the test set, the other four train.
   The train split is written as Rasa NLU YAML (same annotations, synonyms, lookups, regexes).
3. Trains both NLU pipelines on the train split (Rasa: `rasa.model_training.train_nlu` with
   the project's config.yml; Backline: `bot.nlu.pipeline.train_nlp`) and parses the test split.
   The config has no ResponseSelector, so Rasa predicts the retrieval intent `faq` for every
   `faq/<topic>` example: the like-for-like metric maps faq/<topic> to `faq` for BOTH engines;
   Backline's full-topic score is shown too (and Rasa's with --response-selector, which adds a
   ResponseSelector to Rasa's copy of the config). Entities: micro F1 over exact spans.
4. Trains each engine's full model on all the data (`rasa train`, `bot train`), starts each
   server on loopback (`rasa run --enable-api`, `bot run`), with in-memory tracker stores for
   both, and measures /model/parse and /webhooks/rest/webhook latency (sequential), the
   webhook with N concurrent conversations, and the RSS of each server's process tree.
   Custom actions: Rasa calls a rasa-sdk action server running our unchanged actions/
   (`python -m rasa_sdk --actions actions`, from Backline's venv); Backline runs the same
   actions in process (its default). The action server's RSS is listed on its own row.
   The webhook conversation is benchmarks/http.py's: greeting, symptom report (starts the
   symptom form: custom validation actions), an FAQ question, thanks.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/http.py would shadow the standard library's `http` package (see benchmarks/run.py).
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402

from benchmarks.machine import describe  # noqa: E402

MESSAGES = ["hello", "my lower back hurts after lifting", "what are the paraspinal muscles?", "thanks"]
DEFAULT_VENV = os.environ.get("RASA_VENV", "/tmp/rasa36-venv")
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")
QUIET_ENV = {"SQLALCHEMY_SILENCE_UBER_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
             "PYTHONWARNINGS": "ignore", "LOG_LEVEL": "WARNING"}

# Run inside Rasa's venv: train NLU on the train split, parse the test split, print JSON.
RASA_NLU_CHILD = r"""
import asyncio, json, sys, time, logging, warnings
warnings.filterwarnings("ignore")
t0 = time.perf_counter()
from rasa.model_training import train_nlu
from rasa.core.agent import Agent
from rasa.utils.common import configure_logging_and_warnings
from rasa.utils.log_utils import configure_structlog
configure_logging_and_warnings(logging.WARNING)
configure_structlog(logging.WARNING)  # else every parse prints a debug line (and is timed with it)
imported = time.perf_counter() - t0
config, nlu_dir, domain, out, tests = sys.argv[1:6]
t = time.perf_counter()
path = train_nlu(config, nlu_dir, out, fixed_model_name="nlu-split", domain=domain)
train_s = time.perf_counter() - t
if not path:
    sys.exit("rasa train_nlu returned no model")
t = time.perf_counter()
agent = Agent.load(path)
load_s = time.perf_counter() - t
texts = json.load(open(tests))
async def run():
    preds, times = [], []
    for text in texts:
        t = time.perf_counter()
        parse = await agent.parse_message(text)
        times.append(time.perf_counter() - t)
        name = parse["intent"]["name"] if parse.get("intent") else None
        selectors = parse.get("response_selector") or {}
        chosen = selectors.get(name) or selectors.get("default") or {}
        key = (chosen.get("response") or {}).get("intent_response_key")
        preds.append(name)
        full.append(key or name)
        ents.append([{k: e.get(k) for k in ("entity", "start", "end", "value")} for e in parse.get("entities") or []])
    return preds, times
ents, full = [], []
preds, times = asyncio.run(run())
print("RESULT " + json.dumps({"train_s": train_s, "import_s": imported, "load_s": load_s,
                              "preds": preds, "full": full, "entities": ents, "parse_times": times}))
"""


@dataclass
class Gold:
    text: str
    intent: str


def load_avg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def base_intent(name: str | None) -> str:
    return (name or "None").split("/", 1)[0]


def tree_rss(pid: int) -> float:
    """RSS of a process and all its descendants, MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


# -- project snapshot and split -----------------------------------------------------------------

def snapshot(work: Path, response_selector: int = 0) -> tuple[Path, Path, list[str]]:
    """Copies for Backline (everything it needs) and for Rasa (what Rasa reads); notes on changes."""
    notes: list[str] = []
    bl = work / "backline"
    bl.mkdir()
    for name in ("config.yml", "domain.yml", "credentials.yml"):
        shutil.copy2(ROOT / name, bl / name)
    shutil.copytree(ROOT / "data", bl / "data")
    shutil.copytree(ROOT / "knowledge", bl / "knowledge")
    shutil.copytree(ROOT / "actions", bl / "actions", ignore=shutil.ignore_patterns("__pycache__"))
    (bl / "endpoints.yml").write_text("tracker_store:\n  type: in_memory\n")

    rs = work / "rasa"
    (rs / "data").mkdir(parents=True)
    config = yaml.safe_load((ROOT / "config.yml").read_text())
    if config.pop("backline", None) is not None:
        notes.append("config.yml: the `backline:` section is removed in Rasa's copy (Backline-only settings)")
    if response_selector:
        at = next((i for i, c in enumerate(config["pipeline"]) if c.get("name") == "FallbackClassifier"),
                  len(config["pipeline"]))
        config["pipeline"].insert(at, {"name": "ResponseSelector", "epochs": response_selector,
                                       "retrieval_intent": "faq"})
        notes.append(f"--response-selector: Rasa's copy of config.yml gets a ResponseSelector (retrieval_intent "
                     f"faq, epochs {response_selector}, TensorFlow) so that it can answer faq/<topic>")
    (rs / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copy2(ROOT / "domain.yml", rs / "domain.yml")
    for f in sorted((bl / "data").glob("*.yml")):
        shutil.copy2(f, rs / "data" / f.name)
    notes.append("knowledge/ is not given to Rasa (Backline's clinical knowledge YAML, read by actions/)")
    return bl, rs, notes


def write_rasa_nlu(examples: list[Any], raw_files: list[Path], out: Path) -> None:
    """The train split as Rasa NLU YAML (annotations rebuilt from the parsed entities), plus the
    synonym / lookup / regex blocks of the original files, unchanged."""
    by_intent: dict[str, list[str]] = {}
    for ex in examples:
        text, pieces, cursor = ex.text, [], 0
        for ent in sorted(ex.entities, key=lambda e: e["start"]):
            surface = text[ent["start"]:ent["end"]]
            pieces.append(text[cursor:ent["start"]])
            spec = {"entity": ent["entity"]}
            if ent.get("value") not in (None, surface):
                spec["value"] = ent["value"]
            for key in ("role", "group"):
                if key in ent:
                    spec[key] = ent[key]
            pieces.append(f"[{surface}]({ent['entity']})" if len(spec) == 1 else f"[{surface}]{json.dumps(spec)}")
            cursor = ent["end"]
        pieces.append(text[cursor:])
        by_intent.setdefault(ex.intent, []).append("".join(pieces))
    nlu: list[dict[str, Any]] = [
        {"intent": intent, "examples": "".join(f"- {line}\n" for line in lines)}
        for intent, lines in sorted(by_intent.items())
    ]
    for f in raw_files:
        for block in (yaml.safe_load(f.read_text()) or {}).get("nlu", []) or []:
            if isinstance(block, dict) and "intent" not in block:
                nlu.append(block)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump({"version": "3.1", "nlu": nlu}, sort_keys=False, allow_unicode=True, width=10**6))


def intent_scores(pairs: list[tuple[Gold, str]]) -> tuple[float, float]:
    from bot.evaluate import intent_report

    report = intent_report(pairs)
    return report["macro avg"]["f1-score"], report["accuracy"]


def entity_micro(test: list[Any], predicted: list[list[dict[str, Any]]]) -> str:
    """Micro precision / recall / F1 over (entity, start, end) spans of the test examples."""
    tp = fp = fn = 0
    for ex, pred in zip(test, predicted):
        gold = {(e["entity"], e["start"], e["end"]) for e in ex.entities}
        got = {(e["entity"], e["start"], e["end"]) for e in pred}
        tp, fp, fn = tp + len(gold & got), fp + len(got - gold), fn + len(gold - got)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return f"{f:.3f} (P {p:.3f}, R {r:.3f}; {tp + fn} gold spans)"


# -- servers ------------------------------------------------------------------------------------

async def wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"exited with code {proc.returncode}")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status < 500:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"no answer from {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # started with start_new_session: its own group only
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, **QUIET_ENV, **(env or {})}, start_new_session=True)


async def measure_server(base: str, pid: int, parse_texts: list[str], requests: int,
                         conversations: int, turns: int, tag: str) -> dict[str, Any]:
    webhook = f"{base}/webhooks/rest/webhook"
    result: dict[str, Any] = {"rss_idle": tree_rss(pid)}
    empty = 0
    unfilled: set[str] = set()

    def check(data: Any) -> None:
        for m in data or []:
            unfilled.update(PLACEHOLDER.findall(m.get("text") or ""))

    async def post(session: aiohttp.ClientSession, url: str, body: dict) -> tuple[float, Any]:
        t = time.perf_counter()
        async with session.post(url, json=body) as r:
            data = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"{url} answered {r.status}: {str(data)[:200]}")
        return time.perf_counter() - t, data

    async with aiohttp.ClientSession() as session:
        for text in parse_texts[:5]:  # warm-up
            await post(session, f"{base}/model/parse", {"text": text})
        times = []
        for i in range(requests):
            dt, _ = await post(session, f"{base}/model/parse", {"text": parse_texts[i % len(parse_texts)]})
            times.append(dt)
        result["parse"] = times
        for text in MESSAGES:  # warm-up conversation
            await post(session, webhook, {"sender": f"{tag}-warm", "message": text})
        times, sample = [], {}
        for i in range(requests):
            text = MESSAGES[i % len(MESSAGES)]
            dt, data = await post(session, webhook, {"sender": f"{tag}-seq-{i // len(MESSAGES)}", "message": text})
            times.append(dt)
            check(data)
            if not data:
                empty += 1
            if i < len(MESSAGES):
                sample[text] = [m.get("text", "[buttons]" if m.get("buttons") else str(m))[:70] for m in data]
        result["webhook"] = times
        result["sample"] = sample

    latencies: list[float] = []

    async def conversation(session: aiohttp.ClientSession, c: int) -> None:
        nonlocal empty
        for t in range(turns):
            dt, data = await post(session, webhook, {"sender": f"{tag}-par-{c}", "message": MESSAGES[t % len(MESSAGES)]})
            latencies.append(dt)
            check(data)
            if not data:
                empty += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conversations)) as session:
        t = time.perf_counter()
        await asyncio.gather(*(conversation(session, c) for c in range(conversations)))
        elapsed = time.perf_counter() - t
    result["throughput"] = conversations * turns / elapsed
    result["concurrent"] = latencies
    result["rss_load"] = tree_rss(pid)
    result["empty"] = empty
    result["unfilled"] = sorted(unfilled)
    result["messages"] = 2 * requests + conversations * turns - requests
    return result


# -- the two engines ----------------------------------------------------------------------------

def backline_nlu(project: Any, train: list[Any], test: list[Any]) -> dict[str, Any]:
    from bot.evaluate import full_intent
    from bot.model import settings_for
    from bot.nlu.pipeline import NLUModel, train_nlp
    from bot.nlu.trainingdata import TrainingData

    settings = settings_for(project)
    data = TrainingData(list(train), project.nlu.synonyms, project.nlu.lookups, project.nlu.regexes)
    t = time.perf_counter()
    nlp = train_nlp(data, settings)
    train_s = time.perf_counter() - t
    model = NLUModel(nlp, settings)
    preds, times, ents = [], [], []
    for ex in test:
        t = time.perf_counter()
        parse = model.parse(ex.text)
        times.append(time.perf_counter() - t)
        preds.append(full_intent(parse))
        ents.append(parse.get("entities") or [])
    return {"train_s": train_s, "preds": preds, "entities": ents, "parse_times": times}


def rasa_nlu(py: Path, rs: Path, work: Path, test: list[Any]) -> dict[str, Any]:
    tests = work / "rasa_tests.json"
    tests.write_text(json.dumps([ex.text for ex in test]))
    script = work / "rasa_nlu_child.py"
    script.write_text(RASA_NLU_CHILD)
    t = time.perf_counter()
    proc = subprocess.run([str(py), str(script), str(rs / "config.yml"), str(work / "rasa_split"),
                           str(rs / "domain.yml"), str(work / "rasa_models"), str(tests)],
                          cwd=rs, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, **QUIET_ENV})
    wall = time.perf_counter() - t
    (work / "rasa_nlu.log").write_text(proc.stdout + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()][-3:]
        raise RuntimeError(f"Rasa NLU training/parsing failed (exit {proc.returncode}): {' | '.join(tail)}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["wall_s"] = wall
    return result


def rasa_problems(log_text: str) -> list[str]:
    """What Rasa complained about, one line per kind with a count: warnings, errors, exceptions."""
    counts: dict[str, int] = {}
    unused: list[str] = []
    for line in log_text.replace("\x1b[93m", "").replace("\x1b[0m", "").splitlines():
        line = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+", "", line.strip())
        m = re.search(r"The utterance '(\w+)' is not used in any story or rule", line)
        if m:
            unused.append(m.group(1))
            continue
        if "placeholder_key" in line:
            key = re.search(r'"placeholder_key": "(\w+)"', line)
            msg = (f"response placeholder {{{key.group(1) if key else '?'}}} has no slot of that name: "
                   f"the text is sent with the literal placeholder")
        elif "UserWarning: " in line:
            msg = line.split("UserWarning: ", 1)[1].strip()
        elif line.startswith(("ERROR", "KeyError", "ValueError", "TypeError", "rasa.shared.exceptions")) or \
                re.match(r"^\w+(Error|Exception): ", line):
            msg = re.sub(r"\s+", " ", line)[:240]
        else:
            continue
        counts[msg] = counts.get(msg, 0) + 1
    out = [f"{msg} (x{n})" if n > 1 else msg for msg, n in counts.items()]
    if unused:
        out.insert(0, f"{len(unused)} responses are not used in any story or rule (Backline sends them from "
                      f"code or actions): {', '.join(sorted(set(unused)))}")
    return out


def rasa_sdk_version() -> str:
    try:
        from importlib.metadata import version

        return version("rasa-sdk")
    except Exception:  # noqa: BLE001
        return "?"


def summarise(r: dict[str, Any]) -> dict[str, str]:
    ms = 1000.0
    return {
        "parse": f"{statistics.median(r['parse']) * ms:.1f} / {percentile(r['parse'], 99) * ms:.1f} ms",
        "webhook": f"{statistics.median(r['webhook']) * ms:.1f} / {percentile(r['webhook'], 99) * ms:.1f} ms",
        "throughput": f"{r['throughput']:.1f} msg/s",
        "concurrent": f"{statistics.median(r['concurrent']) * ms:.0f} / {percentile(r['concurrent'], 99) * ms:.0f} ms",
        "rss": f"{r['rss_idle']:.0f} / {r['rss_load']:.0f} MiB",
        "empty": f"{r['empty']} of {r['messages']}",
        "unfilled": ", ".join(r["unfilled"]) or "none",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rasa-venv", default=DEFAULT_VENV, help="venv with rasa 3.6 (default $RASA_VENV or /tmp/rasa36-venv)")
    parser.add_argument("--fold", type=int, default=0, help="which of the 5 stratified folds is the test set")
    parser.add_argument("--requests", type=int, default=100, help="sequential requests per endpoint")
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--turns", type=int, default=8, help="turns per concurrent conversation")
    parser.add_argument("--response-selector", type=int, default=0, metavar="EPOCHS",
                        help="add a ResponseSelector (TensorFlow, EPOCHS epochs) to Rasa's config so it answers FAQs")
    parser.add_argument("--skip-http", action="store_true", help="NLU comparison only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, models)")
    parser.add_argument("--out", default=str(ROOT / "results" / "rasa_compare.md"))
    args = parser.parse_args()

    from bot.evaluate import stratified_folds
    from bot.project import load_project

    begun = time.perf_counter()
    load_start = load_avg()
    notes: list[str] = []
    rasa_py = Path(args.rasa_venv) / "bin" / "python"
    rasa_bin = Path(args.rasa_venv) / "bin" / "rasa"
    rasa_missing = None
    if not rasa_bin.exists():
        rasa_missing = f"no {rasa_bin} (create the venv as the docstring says)"
    else:
        v = subprocess.run([str(rasa_py), "-c", "import rasa; print(rasa.__version__)"], capture_output=True,
                           text=True, env={**os.environ, **QUIET_ENV}, timeout=300)
        version = v.stdout.strip().splitlines()[-1:] or [""]
        if v.returncode != 0:
            rasa_missing = f"`import rasa` failed in {args.rasa_venv}: {(v.stderr.strip().splitlines() or ['?'])[-1]}"
        elif not version[0].startswith("3.6"):
            rasa_missing = f"{args.rasa_venv} has rasa {version[0]}, not 3.6"
        else:
            notes.append(f"Rasa {version[0]} from {args.rasa_venv}")

    work = Path(tempfile.mkdtemp(prefix="rasa-compare-"))
    bl_rows: dict[str, str] = {}
    rs_rows: dict[str, str] = {}
    loads: dict[str, str] = {}
    procs: list[subprocess.Popen] = []
    try:
        bl_dir, rs_dir, snap_notes = snapshot(work, args.response_selector)
        notes += snap_notes
        project = load_project(bl_dir)
        from bot.model import settings_for

        seed = settings_for(project).seed
        folds = stratified_folds(list(project.nlu.examples), 5, seed)
        test = folds[args.fold]
        train = [ex for i, f in enumerate(folds) if i != args.fold for ex in f]
        write_rasa_nlu(train, sorted((rs_dir / "data").glob("nlu*.yml")), work / "rasa_split" / "nlu_train.yml")
        split = (f"fold {args.fold + 1} of Backline's stratified 5-fold split (seed {seed}): "
                 f"train {len(train)}, test {len(test)} examples, {len({ex.intent for ex in test})} intents "
                 f"({len({base_intent(ex.intent) for ex in test})} with faq/<topic> as faq)")

        # -- NLU: Backline
        print(f"[nlu] Backline training on {len(train)} examples (load {load_avg()}) ...", file=sys.stderr, flush=True)
        b = backline_nlu(project, train, test)
        loads["nlu_bl"] = load_avg().split(" / ")[0]
        f1_full, acc_full = intent_scores([(Gold(ex.text, ex.intent), p) for ex, p in zip(test, b["preds"])])
        f1_base, acc_base = intent_scores([(Gold(ex.text, base_intent(ex.intent)), base_intent(p))
                                           for ex, p in zip(test, b["preds"])])
        bl_rows["f1_base"], bl_rows["acc_base"] = f"{f1_base:.3f}", f"{acc_base:.3f}"
        bl_rows["full"] = f"{f1_full:.3f} / {acc_full:.3f}"
        bl_rows["entities"] = entity_micro(test, b["entities"])
        bl_rows["train_split"] = f"{b['train_s']:.1f} s"
        bl_rows["parse_inproc"] = f"{statistics.median(b['parse_times']) * 1000:.2f} ms"

        # -- NLU: Rasa
        if rasa_missing is None:
            print(f"[nlu] Rasa training on the same split (load {load_avg()}) ...", file=sys.stderr, flush=True)
            try:
                r = rasa_nlu(rasa_py, rs_dir, work, test)
                loads["nlu_rs"] = load_avg().split(" / ")[0]
                f1, acc = intent_scores([(Gold(ex.text, base_intent(ex.intent)), base_intent(p))
                                         for ex, p in zip(test, r["preds"])])
                rs_rows["f1_base"], rs_rows["acc_base"] = f"{f1:.3f}", f"{acc:.3f}"
                if args.response_selector:
                    f1, acc = intent_scores([(Gold(ex.text, ex.intent), p) for ex, p in zip(test, r["full"])])
                    rs_rows["full"] = f"{f1:.3f} / {acc:.3f}"
                else:
                    rs_rows["full"] = "n/a (no ResponseSelector in config.yml; see --response-selector)"
                rs_rows["entities"] = entity_micro(test, r["entities"])
                rs_rows["train_split"] = f"{r['train_s']:.1f} s (+{r['import_s']:.0f} s import)"
                rs_rows["parse_inproc"] = f"{statistics.median(r['parse_times']) * 1000:.2f} ms"
                problems = rasa_problems((work / "rasa_nlu.log").read_text())
                notes += [f"Rasa (NLU training) warned: {p}" for p in problems[:8]]
            except Exception as exc:  # noqa: BLE001 - reported in the table
                rasa_missing = str(exc)

        # -- HTTP
        if not args.skip_http:
            parse_texts = [ex.text for ex in test]
            # Backline: bot train (full data), then bot run
            print(f"[http] Backline: bot train + bot run (load {load_avg()}) ...", file=sys.stderr, flush=True)
            bot = [sys.executable, "-P", "-m", "bot"]
            t = time.perf_counter()
            tr = subprocess.run(bot + ["train", "--project", str(bl_dir), "--quiet", "--force"], capture_output=True,
                                text=True, timeout=1200)
            if tr.returncode != 0:
                raise RuntimeError(f"bot train failed: {tr.stderr.strip()[-300:]}")
            bl_rows["train_full"] = f"{time.perf_counter() - t:.1f} s wall"
            # One rasa-sdk action server with our unchanged actions/, from Backline's venv: Rasa
            # always calls it; Backline is measured both in process (its default) and through it.
            aport = free_port()
            action = start([sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(aport)],
                           bl_dir, work / "action_server.log")
            procs.append(action)
            asyncio.run(wait_http(f"http://127.0.0.1:{aport}/health", action, 120))
            for variant in ("inproc", "server"):
                if variant == "server":
                    (bl_dir / "endpoints.yml").write_text(
                        f"tracker_store:\n  type: in_memory\naction_endpoint:\n  url: http://127.0.0.1:{aport}/webhook\n")
                port = free_port()
                t = time.perf_counter()
                proc = start(bot + ["run", "--project", str(bl_dir), "--port", str(port)], bl_dir,
                             work / f"bot_run_{variant}.log")
                procs.append(proc)
                asyncio.run(wait_http(f"http://127.0.0.1:{port}/health", proc, 300))
                startup = time.perf_counter() - t
                res = asyncio.run(measure_server(f"http://127.0.0.1:{port}", proc.pid, parse_texts, args.requests,
                                                 args.conversations, args.turns, f"bl-{variant}"))
                stop(proc)
                if variant == "inproc":
                    loads["http_bl"] = load_avg().split(" / ")[0]
                    bl_rows["startup"] = f"{startup:.1f} s"
                    bl_rows.update(summarise(res))
                    bl_rows["actions"] = "in process (Backline default)"
                    bl_sample = res["sample"]
                else:
                    loads["http_bl_as"] = load_avg().split(" / ")[0]
                    sm = summarise(res)
                    bl_rows["as_webhook"] = sm["webhook"]
                    bl_rows["as_throughput"] = sm["throughput"]
                    bl_rows["as_concurrent"] = sm["concurrent"]
                    rs_rows["as_webhook"] = rs_rows["as_throughput"] = rs_rows["as_concurrent"] = "(rows above)"

            rs_sample = None
            if rasa_missing is None:
                try:
                    print(f"[http] Rasa: rasa train + action server + rasa run (load {load_avg()}) ...",
                          file=sys.stderr, flush=True)
                    t = time.perf_counter()
                    tr = subprocess.run([str(rasa_bin), "train", "--fixed-model-name", "full", "--out",
                                         str(work / "rasa_models")], cwd=rs_dir, capture_output=True, text=True,
                                        timeout=3000, env={**os.environ, **QUIET_ENV})
                    (work / "rasa_train.log").write_text(tr.stdout + tr.stderr)
                    if tr.returncode != 0 or not (work / "rasa_models" / "full.tar.gz").exists():
                        tail = [x for x in (tr.stderr + tr.stdout).splitlines() if x.strip()][-3:]
                        raise RuntimeError(f"rasa train failed (exit {tr.returncode}): {' | '.join(tail)}")
                    rs_rows["train_full"] = f"{time.perf_counter() - t:.1f} s wall"
                    for p in rasa_problems((work / "rasa_train.log").read_text()):
                        if f"Rasa (NLU training) warned: {p}" not in notes:
                            notes.append(f"Rasa (rasa train) warned: {p}")
                    rport = free_port()
                    (rs_dir / "endpoints.yml").write_text(
                        f"action_endpoint:\n  url: http://127.0.0.1:{aport}/webhook\n")
                    (rs_dir / "credentials.yml").write_text("rest:\n")
                    t = time.perf_counter()
                    rasa = start([str(rasa_bin), "run", "--enable-api", "-i", "127.0.0.1", "-p", str(rport),
                                  "-m", str(work / "rasa_models" / "full.tar.gz"), "--endpoints", "endpoints.yml",
                                  "--credentials", "credentials.yml"], rs_dir, work / "rasa_run.log")
                    procs.append(rasa)
                    asyncio.run(wait_http(f"http://127.0.0.1:{rport}/status", rasa, 600))
                    rs_rows["startup"] = f"{time.perf_counter() - t:.1f} s"
                    res = asyncio.run(measure_server(f"http://127.0.0.1:{rport}", rasa.pid, parse_texts,
                                                     args.requests, args.conversations, args.turns, "rs"))
                    loads["http_rs"] = load_avg().split(" / ")[0]
                    rs_rows.update(summarise(res))
                    rs_rows["actions"] = (f"rasa-sdk {rasa_sdk_version()} action server (Backline's venv) with our "
                                          f"actions/ (its RSS {tree_rss(action.pid):.0f} MiB, not in the RSS row)")
                    rs_sample = res["sample"]
                    for p in rasa_problems((work / "rasa_run.log").read_text()):
                        notes.append(f"Rasa (rasa run) logged: {p[:300]}")
                except Exception as exc:  # noqa: BLE001
                    rs_rows["http_error"] = str(exc)[:400]
                finally:
                    pass
    finally:
        for p in procs:
            stop(p)
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    na = f"Rasa 3.6 not available: {rasa_missing}" if rasa_missing else None

    def row(label: str, key: str, load_keys: tuple[str, str] = ("", "")) -> str:
        rv = "—" if na else rs_rows.get(key, "—")
        lb = " / ".join(loads.get(k, "") for k in load_keys if loads.get(k)) or ""
        return f"| {label} | {bl_rows.get(key, '—')} | {rv} | {lb} |"

    lines = [
        "# Backline vs Rasa 3.6 on the same data",
        "",
        f"- machine: {describe()}",
        f"- load average (1 / 5 / 15 min): {load_start} at start, {load_avg()} at end; "
        f"the last column is the 1-min load after each engine's measurement (Backline / Rasa)",
        f"- NLU split: {split}",
        f"- HTTP: {args.requests} sequential requests per endpoint; {args.conversations} concurrent conversations x "
        f"{args.turns} turns of {MESSAGES}; in-memory tracker stores for both",
        f"- total wall time {time.perf_counter() - begun:.0f} s",
    ]
    if na:
        lines.append(f"- **{na}**")
    if rs_rows.get("http_error"):
        lines.append(f"- **Rasa HTTP benchmark failed:** {rs_rows['http_error']}")
    lines += [
        "",
        "| metric | Backline | Rasa 3.6 | load 1 min |",
        "|---|---|---|---|",
        row("intent macro F1 (faq/<topic> counted as faq, both engines)", "f1_base", ("nlu_bl", "nlu_rs")),
        row("intent accuracy (faq/<topic> counted as faq)", "acc_base", ("nlu_bl", "nlu_rs")),
        row("intent macro F1 / accuracy with the FAQ topics (faq/<topic>)", "full", ("nlu_bl",)),
        row("entity micro F1, exact span and type (same test split)", "entities", ("nlu_bl", "nlu_rs")),
        row("NLU training time on the train split (in process)", "train_split", ("nlu_bl", "nlu_rs")),
        row("NLU parse median (in process, test split)", "parse_inproc", ("nlu_bl", "nlu_rs")),
    ]
    if not args.skip_http:
        lines += [
            row("full training (all data, CLI wall time incl. start-up)", "train_full", ("http_bl", "http_rs")),
            row("server start-up to first HTTP answer", "startup", ("http_bl", "http_rs")),
            row("/model/parse median / p99 (sequential)", "parse", ("http_bl", "http_rs")),
            row("/webhooks/rest/webhook median / p99 (sequential)", "webhook", ("http_bl", "http_rs")),
            row(f"webhook throughput, {args.conversations} concurrent conversations", "throughput", ("http_bl", "http_rs")),
            row(f"webhook median / p99 at {args.conversations} concurrent", "concurrent", ("http_bl", "http_rs")),
            row("server RSS, process tree (idle / after load)", "rss", ("http_bl", "http_rs")),
            row("custom actions", "actions"),
            row("Backline with actions on the same action server: webhook median / p99 (sequential)", "as_webhook",
                ("http_bl_as",)),
            row(f"Backline with the action server: throughput, {args.conversations} concurrent", "as_throughput",
                ("http_bl_as",)),
            row(f"Backline with the action server: median / p99 at {args.conversations} concurrent", "as_concurrent",
                ("http_bl_as",)),
            row("bot texts with an unfilled {placeholder}", "unfilled", ("http_bl", "http_rs")),
            row("webhook answers with no message", "empty", ("http_bl", "http_rs")),
        ]
    lines += ["", "Notes:"] + [f"- {n}" for n in notes]
    if not args.skip_http and bl_rows.get("webhook"):
        lines += ["", "First reply texts per message (sanity check that both engines really answered):", ""]
        for text in MESSAGES:
            lines.append(f"- `{text}` → Backline: {bl_sample.get(text)}")
            if rs_sample:
                lines.append(f"  → Rasa: {rs_sample.get(text)}")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
