"""The `bot` command: train | shell | run | test | validate | ask | forget."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Sequence

from bot.yamlio import ProjectError

EXAMPLES = """examples:
  bot train                      train the NLU model from data/ into models/
  bot shell                      chat in the terminal (trains first if the data changed)
  bot run --port 5005            serve the chat widget, REST and socket.io
  bot ask "what are the paraspinal muscles?" --json
  bot validate                   check domain.yml against data/ (file:line for each problem)
  bot test                       NLU cross-validation, conversation tests, safety sweep
  bot test patients              simulated patients play tests/patients/team.yml (metrics table)
  bot forget SENDER_ID           erase one conversation from the store
"""


def _project_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", "-p", default=os.environ.get("BACKLINE_PROJECT", "."),
                        help="project folder holding config.yml, domain.yml and data/ (default: current folder)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bot", description="Backline: a symptom-triage chatbot for back problems. It never diagnoses.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="verbose logs (may include message text)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train the NLU model into models/")
    _project_arg(p)
    p.add_argument("--force", action="store_true", help="train even when the data did not change")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("shell", help="chat with the bot in the terminal")
    _project_arg(p)
    p.add_argument("--sender", default=None, help="conversation id (default: a new one each time)")
    p.add_argument("--no-color", action="store_true", help="plain text output")

    p = sub.add_parser("run", help="serve the chat widget, the REST/socket.io API (Rasa-compatible)")
    _project_arg(p)
    p.add_argument("--host", default=os.environ.get("BACKLINE_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("BACKLINE_PORT", "5005")))
    p.add_argument("--workers", type=int, default=1, help="worker processes (needs PostgreSQL/Redis stores)")
    p.add_argument("--auth-token", default=os.environ.get("BACKLINE_AUTH_TOKEN"),
                   help="require ?token=... on API endpoints")
    p.add_argument("--cors", default=None, help="comma-separated allowed origins (default from credentials.yml)")
    p.add_argument("--frame-origins", default=None,
                   help="comma-separated sites that may frame the widget via embed.js "
                        "(default: credentials.yml `frame_origins`, else any site)")
    p.add_argument("--max-request-bytes", type=int, default=1_000_000, help="reject larger requests with 413")
    p.add_argument("--rate-limit", default=os.environ.get("BACKLINE_RATE_LIMIT"),
                   help="messages per sender and per client, as COUNT/SECONDS (e.g. 30/60); 429 beyond")

    p = sub.add_parser("test", help="evaluate: NLU cross-validation, conversation tests, safety sweep, "
                                    "simulated patients")
    _project_arg(p)
    p.add_argument("what", nargs="?", choices=["all", "nlu", "conversations", "safety", "patients"], default="all")
    p.add_argument("--full", action="store_true", help="full reports (5 folds, full sweep, plots)")
    p.add_argument("--folds", type=int, default=None, help="cross-validation folds (default 5; 3 in fast mode)")
    p.add_argument("--nlu-file", default=None, help="held-out NLU file to evaluate on instead of folds")
    p.add_argument("--out", default="results", help="folder for reports (JSON, Markdown, PNG)")
    p.add_argument("--file", default=None,
                   help="patients: the vignette file to play (default tests/patients/team.yml)")
    p.add_argument("--json", default=None, help="patients: where to write results with transcripts "
                                                "(default OUT/patients.json)")

    p = sub.add_parser("validate", help="check domain, data and rules for consistency")
    _project_arg(p)

    p = sub.add_parser("ask", help="one question, one answer (for scripts and FAQ use)")
    _project_arg(p)
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the replies as Rasa REST JSON")

    p = sub.add_parser("forget", help="erase a conversation from the tracker store")
    _project_arg(p)
    p.add_argument("sender_id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args) or 0
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for users; --debug shows the traceback
        if args.debug:
            raise
        name = type(exc).__name__
        if name in ("StoreUnavailable", "ModelError", "SafetyDataError", "KnowledgeError"):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"error: {name}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


# -- commands -----------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from bot import model
    from bot.project import load_project

    project = load_project(args.project)
    fingerprint = project.nlu_fingerprint()
    existing = model.find_model(project, fingerprint)
    if existing and not args.force:
        print(f"Model is up to date: {existing} (use --force to retrain)")
        return 0
    path, seconds = model.train(project, progress=not args.quiet)
    labels = len(json.loads((path / "fingerprint.json").read_text())["labels"])
    print(f"Trained {labels} intents on {len(project.nlu.examples)} examples in {seconds:.1f} s -> {path}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from bot.validate import validate_project

    problems, warnings = validate_project(Path(args.project))
    for line in warnings:
        print(f"warning: {line}")
    for line in problems:
        print(f"error: {line}")
    if problems:
        print(f"{len(problems)} problem(s) found.")
        return 1
    print("Project is valid." + (f" ({len(warnings)} warning(s))" if warnings else ""))
    return 0


def _memory_agent(project_dir: str, progress: bool = True):
    from bot.agent import Agent
    from bot.stores import create_lock_store, create_tracker_store

    return Agent.load(project_dir, tracker_store=create_tracker_store({"type": "in_memory"}, Path(project_dir)),
                      lock_store=create_lock_store(None), progress=progress)


def cmd_ask(args: argparse.Namespace) -> int:
    from bot.agent import UserMessage
    from bot.limits import message_error

    problem = message_error(args.question)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    agent = _memory_agent(args.project, progress=sys.stderr.isatty())
    sender = f"ask-{uuid.uuid4().hex[:12]}"

    async def go() -> list[dict[str, Any]]:
        try:
            return await agent.handle_message(UserMessage(args.question, sender, input_channel="cli"))
        finally:
            await agent.close()

    replies = asyncio.run(go())
    if args.json:
        print(json.dumps([{"recipient_id": sender, **r} for r in replies], ensure_ascii=False, indent=2))
    else:
        for reply in replies:
            if reply.get("text"):
                print(reply["text"])
            for i, button in enumerate(reply.get("buttons") or [], 1):
                print(f"  {i}. {button.get('title')}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from bot.limits import sender_id_error
    from bot.project import load_project
    from bot.stores import create_tracker_store

    problem = sender_id_error(args.sender_id)
    if problem:
        print(f"error: a conversation id {problem}; no stored conversation has this one", file=sys.stderr)
        return 2
    project = load_project(args.project)

    async def go() -> bool:
        store = create_tracker_store(project.endpoints.get("tracker_store"), project.root)
        try:
            return await store.delete(args.sender_id)
        finally:
            await store.close()

    if asyncio.run(go()):
        print(f"Erased conversation {args.sender_id}.")
        return 0
    print(f"No conversation {args.sender_id} in the store.")
    return 1


def cmd_shell(args: argparse.Namespace) -> int:
    from bot.channels.console import run_console

    check_deployment(args.project, 1)

    return run_console(args.project, sender=args.sender, color=not args.no_color)


def check_deployment(project_dir: str, workers: int) -> None:
    """Fail fast, in one line, before serving: unreachable stores (URL with the password
    masked), or several workers on a store that only one process can use. Also applies the
    retention policy (`conversation_ttl_days`) once at start."""
    import time

    from bot.project import load_project
    from bot.stores import create_lock_store, create_tracker_store

    project = load_project(project_dir)
    tracker_cfg = project.endpoints.get("tracker_store") or {}
    lock_cfg = project.endpoints.get("lock_store") or {}
    if workers > 1:
        kind = str(tracker_cfg.get("type") or "sql").lower()
        dialect = str(tracker_cfg.get("dialect") or "sqlite").lower()
        if kind in ("memory", "in_memory", "inmemory") or (kind == "sql" and dialect == "sqlite"):
            raise ProjectError(project.root / "endpoints.yml", None,
                               f"--workers {workers} needs a tracker store every worker can share; the "
                               f"{'in-memory' if kind != 'sql' else 'SQLite'} store serves one process only. "
                               "Set tracker_store to PostgreSQL (type: sql, dialect: postgresql) or Redis, "
                               "or run with --workers 1")
        if str(lock_cfg.get("type") or "").lower() != "redis":
            raise ProjectError(project.root / "endpoints.yml", None,
                               f"--workers {workers} needs `lock_store: {{type: redis}}` so each conversation's "
                               "messages are processed one at a time across workers")

    async def ping() -> int:
        tracker_store = create_tracker_store(tracker_cfg or None, project.root)
        lock_store = create_lock_store(lock_cfg or None)
        try:
            await tracker_store.ping()
            await lock_store.ping()
            days = tracker_cfg.get("conversation_ttl_days")
            return await tracker_store.purge(time.time() - float(days) * 86400) if days else 0
        finally:
            await tracker_store.close()
            await lock_store.close()

    purged = asyncio.run(ping())
    if purged:
        print(f"Erased {purged} conversation(s) older than {tracker_cfg.get('conversation_ttl_days')} days.")


def cmd_run(args: argparse.Namespace) -> int:
    from bot.server import serve

    check_deployment(args.project, args.workers)
    cors = [o.strip() for o in args.cors.split(",")] if args.cors else None
    frames = [o.strip() for o in args.frame_origins.split(",")] if args.frame_origins else None
    return serve(Path(args.project), host=args.host, port=args.port, workers=args.workers,
                 token=args.auth_token, cors_origins=cors, frame_origins=frames,
                 max_request_bytes=args.max_request_bytes, rate_limit=args.rate_limit) or 0


def cmd_test(args: argparse.Namespace) -> int:
    if args.what == "patients":
        from bot.patients import run_command

        return run_command(args)
    from bot.evaluate import run_tests

    return run_tests(args)


COMMANDS = {
    "train": cmd_train,
    "shell": cmd_shell,
    "run": cmd_run,
    "test": cmd_test,
    "validate": cmd_validate,
    "ask": cmd_ask,
    "forget": cmd_forget,
}

if __name__ == "__main__":
    sys.exit(main())
