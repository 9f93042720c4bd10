"""screen() runs on every message: it must stay well under a millisecond for a 20-word message."""

from __future__ import annotations

import time
from pathlib import Path

from bot.safety.redflags import RedFlagScreener

SCREENER = RedFlagScreener.load(Path(__file__).resolve().parent.parent / "data" / "knowledge")
MESSAGES = [
    "I lifted a heavy box at work yesterday and now my lower back really hurts when I bend over",
    "no fever but I can't feel my legs and my back has been sore for about three weeks now",
    "my back is killing me after sitting at my desk all day, the pain is about 5/10 today",
    "I'm 78 and slipped on the ice, now there's a lump on my spine and it wakes me at night",
]


def test_screen_latency_per_20_word_message() -> None:
    for message in MESSAGES:
        assert 15 <= len(message.split()) <= 22
        SCREENER.screen(message)                      # warm up
    rounds = 200
    start = time.process_time()     # CPU time: other processes on a busy machine do not count
    for _ in range(rounds):
        for message in MESSAGES:
            SCREENER.screen(message)
    per_message = (time.process_time() - start) / (rounds * len(MESSAGES))
    print(f"screen(): {per_message * 1e6:.0f} us per 20-word message")
    # Target is ~0.3 ms on a laptop; the bound is loose so a busy CI machine does not flake.
    assert per_message < 0.003
