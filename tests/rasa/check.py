"""`make rasa-check`: real Rasa 3.6 on the project as it stands.

    .venv/bin/python tests/rasa/check.py [--rasa-venv DIR] [--keep]

1. A Rasa 3.6.21 venv (Python 3.10, found through pyenv or on PATH) in a cache folder,
   created when missing (RASA_VENV, default ~/.cache/backline/rasa-3.6) and reused after.
2. `rasa data validate --fail-on-warnings` in the repository; every warning Rasa prints about
   the project fails the check (Rasa 3.6 exits 0 on some of them, e.g. unused responses).
3. `rasa train` (models and Rasa's training cache in the cache folder, so unchanged data trains
   in seconds on the next run); warnings about the project fail the check here too.
4. The conversation tests in tests/rasa/stories.yml with `rasa test core --e2e`
   (--fail-on-prediction-errors), custom actions on a rasa-sdk action server started from the
   project's own .venv (`python -m rasa_sdk --actions actions`).
5. `rasa run` with the trained model and that action server, and conversations over Rasa's
   REST channel (tests/rasa/conversations.yml): what real Rasa answers, checked message by
   message, and the conversation's state (open form, slots) through Rasa's HTTP API. They
   include Backline's safety layer inside Rasa (actions/safety.py): emergency and crisis
   alerts, a danger sign in the middle of the questions, the screening question of a
   suspected sign.

Prints one line per check and ends with `rasa-check: N passed, M failed`; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RASA_VERSION = "3.6.21"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "backline"
DEFAULT_VENV = Path(os.environ.get("RASA_VENV") or CACHE / "rasa-3.6")
STAMP = ".backline-rasa-" + RASA_VERSION
# Rasa's own environment: no telemetry prompt, quiet TensorFlow, no SQLAlchemy banner.
RASA_ENV = {"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "PYTHONWARNINGS": "always::UserWarning",
            "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
# `<file>.py:<line>: SomethingWarning: message`, as Python prints a warning.
WARNING_LINE = re.compile(r"^(?P<file>\S+\.py):\d+: (?P<kind>\w*Warning): (?P<message>.*)$")
# Warnings about Rasa's and its libraries' own code (deprecations inside site-packages), not
# about the project's files: they are not the project's to fix.
LIBRARY_WARNINGS = {"DeprecationWarning", "PendingDeprecationWarning", "FutureWarning",
                    "PyparsingDeprecationWarning", "MovedIn20Warning"}


# Warnings Rasa 3.6 prints about this project that are known and explained; any other warning
# fails the check. Each entry: the start of the message, and why it stays for now.
KNOWN_WARNINGS = {
    "The following duplicated intents have been found across multiple domain files: faq":
        "Rasa 3.6 defect: its importer adds the retrieval intent `faq` from the NLU data and "
        "reports it as a duplicate of the domain's `faq`; leaving `faq` out of domain.yml "
        "instead warns that data/rules.yml uses an intent the domain lacks",
    "You have defined training data consisting of entity examples, but your NLU configuration "
    "does not include an entity extractor trained on your training data":
        "by design: entities come from lookup tables, synonyms and regexes "
        "(RegexEntityExtractor); a CRFEntityExtractor adds two other warnings (overlap, pattern)",
    "You have defined training data consisting of lookup tables, but your NLU configuration "
    "does not include any components that uses the features":
        "by design: RegexEntityExtractor uses the lookup tables directly, not as features",
}
# Responses Rasa's validator counts as unused because a form or an action sends them (it counts
# only responses named as story or rule steps): the form's questions (Rasa's FormAction asks
# utter_ask_<slot>), the disclaimer (action_session_start, which Rasa runs before the first
# message), the restart text (Rasa's own action_restart utters it), the failed-action text
# (Backline's engine), and the safety layer's alerts and thanks: actions/safety.py sends them
# from action_validate_slot_mappings, which Rasa runs on every message before any rule, so an
# alert never depends on which rule wins (the conversations below check each is sent).
SENT_BY_ACTIONS = {
    "utter_disclaimer", "utter_restart", "utter_action_failed",
    "utter_emergency", "utter_urgent", "utter_crisis", "utter_safety_thanks",
    # actions/replies.py: the intro, the refusals that keep the thread, "is it serious?"
    "utter_symptom_intro", "utter_symptom_intro_other", "utter_cannot_diagnose", "utter_medication",
    "utter_others_medicine", "utter_questions_instead", "utter_questions_instead_other", "utter_serious_honest",
    "utter_serious_honest_other", "utter_serious_answered", "utter_default", "utter_out_of_scope",
    "utter_out_of_scope_in_form",
}


def known_warning(message: str, domain: dict[str, Any]) -> bool:
    if any(message.startswith(known) for known in KNOWN_WARNINGS):
        return True
    unused = re.fullmatch(r"The utterance '(\w+)' is not used in any story or rule\.", message)
    if unused:
        name = unused[1]
        form_slots = {s for f in (domain.get("forms") or {}).values() for s in f.get("required_slots") or []}
        # the form's questions, asked by action_ask_<slot> (actions/questions.py): the question,
        # its rephrasing, and their third-person forms for caregivers
        asked = re.fullmatch(r"utter_(?:re)?ask_(\w+?)(?:_other)?", name)
        return name in SENT_BY_ACTIONS or bool(asked and asked[1] in form_slots)
    return False


class Results:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""), flush=True)
        return ok


# -- the Rasa venv ----------------------------------------------------------------------------

def find_python310() -> str:
    """Python 3.10 for Rasa 3.6: RASA_PYTHON, then pyenv's newest 3.10, then python3.10."""
    if os.environ.get("RASA_PYTHON"):
        return os.environ["RASA_PYTHON"]
    roots = [os.environ.get("PYENV_ROOT") or "", str(Path.home() / ".pyenv")]
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        roots.insert(0, out.stdout.strip())
    for root in filter(None, roots):
        found = sorted(glob.glob(f"{root}/versions/3.10.*/bin/python3.10"),
                       key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("versions/")[1])[:3]])
        if found:
            return found[-1]
    if shutil.which("python3.10"):
        return shutil.which("python3.10")  # type: ignore[return-value]
    sys.exit("rasa-check: no Python 3.10 found (Rasa 3.6 needs it): install it with pyenv "
             "(`pyenv install 3.10`) or set RASA_PYTHON to a python3.10")


def ensure_venv(venv: Path) -> Path:
    """The venv's python; creates the venv (rasa==3.6.21) when it is missing or half-made."""
    python = venv / "bin" / "python"
    if (venv / STAMP).exists() and python.exists():
        return python
    if venv.exists():
        print(f"rasa-check: {venv} is incomplete; creating it again", flush=True)
        shutil.rmtree(venv)
    base = find_python310()
    print(f"rasa-check: creating the Rasa {RASA_VERSION} venv in {venv} with {base} "
          "(a few minutes, once)", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(pip + ["pip<24.1"], check=True)  # Rasa 3.6's metadata needs an older pip
    subprocess.run(pip + [f"rasa=={RASA_VERSION}"], check=True)
    (venv / STAMP).write_text(f"rasa=={RASA_VERSION}\n")
    print(f"rasa-check: venv ready in {time.monotonic() - started:.0f} s", flush=True)
    return python


# -- running Rasa -------------------------------------------------------------------------------

def rasa(python: Path, *args: str, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = subprocess.run([str(python), "-m", "rasa", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)
    print(f"     rasa {args[0]} {args[1] if len(args) > 1 and not args[1].startswith('-') else ''}"
          f"-> exit {proc.returncode} in {time.monotonic() - started:.0f} s", flush=True)
    return proc


def project_warnings(output: str) -> list[str]:
    """The warnings Rasa printed about the project (each once), less the known ones."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text()) or {}
    return [w for w in all_warnings(output) if not known_warning(w, domain)]


def all_warnings(output: str) -> list[str]:
    found: list[str] = []
    lines = output.splitlines()
    for i, line in enumerate(lines):
        match = WARNING_LINE.match(line.strip().replace("\x1b[93m", "").replace("\x1b[0m", ""))
        if not match or match["kind"] in LIBRARY_WARNINGS:
            continue
        message = match["message"].strip()
        # multi-line warnings ("Issue found in 'data/rules.yml': \n Found intent ...")
        following = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if message.endswith(":") and following and not WARNING_LINE.match(following):
            message = f"{message} {following}"
        if message not in found:
            found.append(message)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}; "
                               f"log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; log:\n{log.read_text()[-3000:]}")


def start(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def tracker_problems(server: str, sender: str, expected: dict[str, Any]) -> list[str]:
    """How the conversation's state (Rasa's HTTP API) differs from `expected`: `active_loop`
    (a form name or null) and `slots` (name: value)."""
    tracker = get(f"{server}/conversations/{sender}/tracker")
    problems = []
    if "active_loop" in expected:
        loop = (tracker.get("active_loop") or {}).get("name")
        if loop != expected["active_loop"]:
            problems.append(f"active_loop is {loop!r}, expected {expected['active_loop']!r}")
    for name, value in (expected.get("slots") or {}).items():
        if tracker["slots"].get(name) != value:
            problems.append(f"slot {name} is {tracker['slots'].get(name)!r}, expected {value!r}")
    return problems


def run_conversations(server: str, results: Results) -> None:
    """tests/rasa/conversations.yml over Rasa's REST channel: each turn's replies must contain
    every `expect` fragment (case-insensitive) and none of the `forbid` ones; `state` is
    checked against the conversation's tracker."""
    url = f"{server}/webhooks/rest/webhook"
    spec = yaml.safe_load((HERE / "conversations.yml").read_text())
    for conversation in spec["conversations"]:
        sender = f"rasa-check-{hashlib.sha1(conversation['name'].encode()).hexdigest()[:10]}"
        for number, turn in enumerate(conversation["turns"], 1):
            try:
                replies = post(url, {"sender": sender, "message": turn["user"]})
            except OSError as error:
                results.check(False, f"{conversation['name']}, turn {number}", str(error))
                break
            texts = "\n".join(r.get("text") or "" for r in replies)
            buttons = [b.get("title") for r in replies for b in r.get("buttons") or []]
            shown = (texts + "\n" + "\n".join(map(str, buttons))).lower()
            missing = [e for e in turn.get("expect", []) if e.lower() not in shown]
            forbidden = [f for f in turn.get("forbid", []) if f.lower() in shown]
            first = turn.get("first")
            wrong_first = bool(first) and not (replies and first.lower() in (replies[0].get("text") or "").lower())
            try:
                state = tracker_problems(server, sender, turn["state"]) if "state" in turn else []
            except OSError as error:
                state = [f"tracker: {error}"]
            ok = not missing and not forbidden and not wrong_first and not state
            detail = (f"user: {turn['user']!r}\n     missing {missing}, forbidden present {forbidden}"
                      f"{', first reply lacks ' + repr(first) if wrong_first else ''}"
                      f"{', ' + '; '.join(state) if state else ''}\n     replies: {texts!r}")
            if not results.check(ok, f"{conversation['name']}, turn {number}: {turn['user']!r}", detail):
                break


# -- the check ----------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rasa-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args()

    python = ensure_venv(args.rasa_venv.expanduser())
    results = Results()
    work = Path(tempfile.mkdtemp(prefix="backline-rasa-check-"))
    # Models and Rasa's training cache live next to the venv, one model folder per checkout.
    state = args.rasa_venv.expanduser().parent / "rasa-3.6-state"
    models = state / "models" / hashlib.sha1(str(ROOT).encode()).hexdigest()[:12]
    env = {**os.environ, **RASA_ENV, "RASA_CACHE_DIRECTORY": str(state / "train-cache")}
    action_server = rasa_server = None
    try:
        proc = rasa(python, "data", "validate", "--fail-on-warnings", env=env, timeout=600)
        (work / "validate.log").write_text(proc.stdout + proc.stderr)
        warnings = project_warnings(proc.stdout + proc.stderr)
        results.check(proc.returncode == 0, "rasa data validate --fail-on-warnings exits 0",
                      (proc.stdout + proc.stderr)[-3000:])
        results.check(not warnings, "rasa data validate prints no warning about the project",
                      "\n     ".join(warnings))

        proc = rasa(python, "train", "--out", str(models), "--fixed-model-name", "backline",
                    env=env)
        (work / "train.log").write_text(proc.stdout + proc.stderr)
        model = models / "backline.tar.gz"
        if not results.check(proc.returncode == 0 and model.exists(), "rasa train",
                             (proc.stdout + proc.stderr)[-3000:]):
            return finish(results, work, args.keep)
        warnings = project_warnings(proc.stdout + proc.stderr)
        results.check(not warnings, "rasa train prints no warning about the project",
                      "\n     ".join(warnings))

        action_port, rasa_port = free_port(), free_port()
        action_server = start([str(ROOT / ".venv" / "bin" / "python"), "-m", "rasa_sdk",
                               "--actions", "actions", "--port", str(action_port)],
                              work / "action_server.log", {**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_http(f"http://127.0.0.1:{action_port}/health", action_server, 120,
                  work / "action_server.log")
        endpoints = work / "endpoints.yml"
        endpoints.write_text(yaml.safe_dump({"action_endpoint": {
            "url": f"http://127.0.0.1:{action_port}/webhook"}}))
        credentials = work / "credentials.yml"
        credentials.write_text("rest:\n")

        proc = rasa(python, "test", "core", "--model", str(model), "--stories",
                    str(HERE / "stories.yml"), "--endpoints", str(endpoints), "--e2e",
                    "--fail-on-prediction-errors", "--out", str(work / "results"), env=env)
        (work / "test.log").write_text(proc.stdout + proc.stderr)
        failed = work / "results" / "failed_test_stories.yml"
        stories = len(yaml.safe_load((HERE / "stories.yml").read_text())["stories"])
        detail = (failed.read_text()[:3000] if failed.exists() else "") or (proc.stdout + proc.stderr)[-3000:]
        results.check(proc.returncode == 0 and "Prediction errors" not in proc.stdout + proc.stderr,
                      f"rasa test core --e2e: {stories} conversation tests", detail)

        rasa_server = start([str(python), "-m", "rasa", "run", "--model", str(model),
                             "--endpoints", str(endpoints), "--credentials", str(credentials),
                             "--port", str(rasa_port), "--interface", "127.0.0.1",
                             "--enable-api"], work / "rasa_run.log", env)
        wait_http(f"http://127.0.0.1:{rasa_port}/", rasa_server, 300, work / "rasa_run.log")
        run_conversations(f"http://127.0.0.1:{rasa_port}", results)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        results.check(False, "rasa-check ran to the end", str(error))
    finally:
        stop(rasa_server)
        stop(action_server)
    return finish(results, work, args.keep)


def finish(results: Results, work: Path, keep: bool) -> int:
    if keep or results.failed:
        print(f"rasa-check: logs in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"rasa-check: {results.passed} passed, {results.failed} failed", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
