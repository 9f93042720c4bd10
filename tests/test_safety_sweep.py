"""Every response text in domain.yml passes the output guard (the bot's own words never diagnose)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.safety.guard import OutputGuard

ROOT = Path(__file__).resolve().parent.parent
GUARD = OutputGuard.load(ROOT / "knowledge")
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def _texts() -> list[tuple[str, str]]:
    out = []
    for name, variants in (DOMAIN.get("responses") or {}).items():
        for index, variant in enumerate(variants or []):
            if variant.get("text"):
                out.append((f"{name}[{index}]", variant["text"]))
            for button in variant.get("buttons") or []:
                out.append((f"{name}[{index}] button", button.get("title", "")))
    return out


TEXTS = _texts()


def test_domain_has_responses() -> None:
    assert len(TEXTS) >= 20
    names = {name.split("[")[0] for name, _ in TEXTS}
    assert {"utter_cannot_diagnose", "utter_medication", "utter_emergency", "utter_crisis"} <= names


@pytest.mark.parametrize("name,text", TEXTS, ids=[n for n, _ in TEXTS])
def test_response_passes_the_guard(name: str, text: str) -> None:
    assert GUARD.violations(text) == [], f"{name}: {text}"
    assert GUARD.check(text) == (text, [])


def _knowledge_texts() -> list[tuple[str, str]]:
    """Every sentence-like string in the content team's knowledge files (the bot says these)."""
    out: list[tuple[str, str]] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")
        elif isinstance(node, str) and len(node.split()) >= 4:
            out.append((where, node))

    for path in sorted((ROOT / "knowledge").glob("*.yml")):
        # rule data, and the detector's training sentences (users' words, never said by the bot)
        if path.name not in ("concepts.yml", "context.yml", "danger_signs.yml", "guard.yml", "danger_training.yml"):
            walk(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)
    signs = yaml.safe_load((ROOT / "knowledge" / "danger_signs.yml").read_text(encoding="utf-8"))["signs"]
    for sign, spec in signs.items():       # the questions and reasons the bot says
        out += [(f"danger_signs.yml.{sign}.{key}", spec[key]) for key in ("question", "reason")]
    return out


KNOWLEDGE_TEXTS = _knowledge_texts()


@pytest.mark.parametrize("where,text", KNOWLEDGE_TEXTS, ids=[w for w, _ in KNOWLEDGE_TEXTS])
def test_knowledge_text_passes_the_guard(where: str, text: str) -> None:
    assert GUARD.violations(text) == [], f"{where}: {text}"
