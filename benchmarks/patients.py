"""Simulated-patient benchmark: the interview measured on a vignette set (bot/patients.py), printed
as a Markdown table with the machine, date and load, for the README.

Usage: python benchmarks/patients.py [--file tests/patients/team.yml] [--json results/patients.json]

The same numbers as `bot test patients` (real engine in process, the trained model in models/,
in-memory store), plus how long the set took. Exit status is always 0: safety failures are listed,
`bot test patients` is the command that fails on them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, this folder would shadow the stdlib (benchmarks/http.py vs http).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import describe  # noqa: E402
from bot.patients import metrics_rows, report, run_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default=str(ROOT / "tests" / "patients" / "team.yml"), help="vignette file")
    parser.add_argument("--json", default=None, help="also write the results with transcripts here")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    conversations = asyncio.run(run_file(ROOT, Path(args.file)))
    seconds = time.perf_counter() - start
    data = report(conversations, args.file)
    turns = sum(c.turns for c in conversations)
    print(f"Simulated patients ({Path(args.file).name}) — {describe()}")
    print(f"{time.strftime('%Y-%m-%d %H:%M %Z')}, load average {load_before:.2f} → {os.getloadavg()[0]:.2f}")
    print()
    print("| metric | value |")
    print("|---|---|")
    for name, value in metrics_rows(data["metrics"]):
        print(f"| {name} | {value} |")
    print(f"| run time (load + {len(conversations)} conversations, {turns} patient turns) | {seconds:.1f} s |")
    if data["safety_failures"]:
        print()
    for problem in data["safety_failures"]:
        print(f"safety failure: {problem}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(data, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
