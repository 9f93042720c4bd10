"""Every response text in domain.yml passes the output guard (the bot's own words never diagnose)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.safety.guard import OutputGuard

ROOT = Path(__file__).resolve().parent.parent
GUARD = OutputGuard.load(ROOT / "data" / "knowledge")
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
    assert {"utter_cannot_diagnose", "utter_medication", "utter_guarded"} <= names


@pytest.mark.parametrize("name,text", TEXTS, ids=[n for n, _ in TEXTS])
def test_response_passes_the_guard(name: str, text: str) -> None:
    assert GUARD.violations(text) == [], f"{name}: {text}"
    assert GUARD.check(text) == (text, [])
