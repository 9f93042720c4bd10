"""Safety layer: the danger-sign screen, the triage decision and the output guard.

The one owner of the triage level, the danger signs and the screening answers is
`bot.safety.decide.SafetyLayer`. Rules live in knowledge/ (concepts.yml, context.yml,
danger_signs.yml, guard.yml); these modules hold only mechanisms. Bad data raises
SafetyDataError naming file:line and the fix.
"""

from bot.safety.data import SafetyDataError
from bot.safety.triage import LEVELS, raise_level

__all__ = ["LEVELS", "SafetyDataError", "raise_level", "SafetyLayer", "Screener", "OutputGuard"]


def __getattr__(name: str):
    # Lazy, so `import bot.safety` stays cheap for code that only needs the levels.
    if name == "SafetyLayer":
        from bot.safety.decide import SafetyLayer
        return SafetyLayer
    if name == "Screener":
        from bot.safety.screen import Screener
        return Screener
    if name == "OutputGuard":
        from bot.safety.guard import OutputGuard
        return OutputGuard
    raise AttributeError(f"module 'bot.safety' has no attribute {name!r}")
