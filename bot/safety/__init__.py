"""Safety layer: red-flag screening, triage levels, and the output guard (never diagnose, never dose).

Rules and phrases live in knowledge/{red_flags,negation,guard}.yml; these modules
hold only the mechanisms. Bad data raises SafetyDataError naming file:line and the fix.
"""

from bot.safety.data import SafetyDataError
from bot.safety.triage import LEVELS, raise_level

__all__ = ["LEVELS", "SafetyDataError", "raise_level", "RedFlagScreener", "ScreenResult", "Finding",
           "OutputGuard"]


def __getattr__(name: str):
    # Lazy, so `import bot.safety` stays cheap for code that only needs the levels.
    if name in ("RedFlagScreener", "ScreenResult", "Finding"):
        from bot.safety import redflags
        return getattr(redflags, name)
    if name == "OutputGuard":
        from bot.safety.guard import OutputGuard
        return OutputGuard
    raise AttributeError(f"module 'bot.safety' has no attribute {name!r}")
