"""The terminal chat turns numbers into button payloads, several at once where the choices allow."""

from __future__ import annotations

import io

from bot.channels.console import Console

CHOICES = [{"title": "Fever", "payload": "fever or chills"}, {"title": "Cancer", "payload": "I have had cancer"},
           {"title": "None of these", "payload": "none of these"}]


def _console(multiselect: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    console = Console(agent=None, sender="t", out=out, color=False)
    console.show([{"text": "Any of these?", "buttons": CHOICES, **({"custom": {"multiselect": True}} if multiselect else {})}])
    return console, out


def test_several_numbers_pick_several_choices() -> None:
    console, out = _console(multiselect=True)
    assert "type the numbers" in out.getvalue()
    assert console.resolve("1,2") == "fever or chills; I have had cancer"
    assert console.resolve("2 and 1") == "I have had cancer; fever or chills"
    assert console.resolve("3") == "none of these"


def test_one_number_only_where_one_choice_is_allowed() -> None:
    console, out = _console(multiselect=False)
    assert "type the numbers" not in out.getvalue()
    assert console.resolve("2") == "I have had cancer"
    assert console.resolve("1,2") == "1,2"            # not a choice: sent as typed


def test_other_text_and_numbers_out_of_range_are_sent_as_typed() -> None:
    console, _ = _console(multiselect=True)
    assert console.resolve("I'm 81") == "I'm 81"
    assert console.resolve("7") == "7"
    assert console.resolve("1, 7") == "1, 7"
