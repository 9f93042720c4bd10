"""Output guard: no bot text may diagnose, give a dose or prescribe (rules in guard.yml)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.safety.data import LineList, LineMap, Where, load_yaml

_TOP_KEYS = {"version", "replacements", "normalize", "lists", "rules", "examples"}
_RULE_KEYS = {"name", "category", "pattern", "unless_before", "unless_after", "unless_question",
              "needs_in_sentence"}
_SENTENCE_END = re.compile(r"[.!?\n]+")
# The bot quoting the user ('In their own words: "this is sciatica"') is not the bot speaking.
_QUOTED = re.compile(r'"[^"\n]{0,300}"|\u201c[^\u201d\n]{0,300}\u201d')
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


@dataclass(frozen=True)
class GuardRule:
    name: str
    category: str
    pattern: re.Pattern[str]
    unless_before: re.Pattern[str] | None
    unless_after: re.Pattern[str] | None
    unless_question: bool
    needs_in_sentence: re.Pattern[str] | None


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    left = 0
    for m in _SENTENCE_END.finditer(text, 0, start):
        left = m.end()
    m = _SENTENCE_END.search(text, end)
    return left, (m.end() if m else len(text))


class OutputGuard:
    """Checks bot texts against the never-diagnose / never-dose rules of guard.yml."""

    def __init__(self, rules: list[GuardRule], replacements: dict[str, str],
                 normalize: list[tuple[re.Pattern[str], str]], examples: dict) -> None:
        self.rules = rules
        self.replacements = replacements
        self._normalize = normalize
        self.examples = examples

    def violations(self, text: str) -> list[str]:
        """Names of the rules `text` breaks, in rule order; [] when it is clean."""
        norm = self.normalize(text)
        broken: list[str] = []
        for rule in self.rules:
            if rule.name not in broken and self._fires(rule, norm):
                broken.append(rule.name)
        return broken

    def check(self, text: str) -> tuple[str, list[str]]:
        """(text, []) when clean; otherwise (a safe refusal-and-referral text, the broken rules)."""
        broken = self.violations(text)
        if not broken:
            return text, []
        category = self._category(broken[0])
        return self.replacements.get(category, self.replacements["diagnosis"]), broken

    def normalize(self, text: str) -> str:
        norm = _QUOTED.sub('""', text or "")
        norm = " ".join(norm.lower().translate(_APOSTROPHES).split())
        for pattern, replacement in self._normalize:
            norm = pattern.sub(replacement, norm)
        return norm

    def _category(self, rule_name: str) -> str:
        for rule in self.rules:
            if rule.name == rule_name:
                return rule.category
        return "diagnosis"

    @staticmethod
    def _fires(rule: GuardRule, norm: str) -> bool:
        for match in rule.pattern.finditer(norm):
            left, right = _sentence_bounds(norm, match.start(), match.end())
            sentence = norm[left:right]
            if rule.unless_before and rule.unless_before.search(norm[left:match.start()]):
                continue
            if rule.unless_after and rule.unless_after.search(norm[match.end():right]):
                continue
            if rule.unless_question and sentence.rstrip().endswith("?"):
                continue
            if rule.needs_in_sentence and not rule.needs_in_sentence.search(sentence):
                continue
            return True
        return False

    @classmethod
    def load(cls, knowledge_dir: Path) -> "OutputGuard":
        """Read and validate guard.yml from `knowledge_dir`."""
        path = Path(knowledge_dir) / "guard.yml"
        data = load_yaml(path)
        where = Where(path.name)
        where.check_keys(data, _TOP_KEYS, path.name)
        for key in ("replacements", "rules"):
            if key not in data:
                raise where.error(1, f"missing section `{key}:`")
        replacements = cls._load_replacements(where, data)
        normalize = cls._load_normalize(where, data)
        lists = cls._load_lists(where, data)
        rules = cls._load_rules(where, data, replacements, lists)
        examples = data.get("examples") or {}
        return cls(rules, {k: " ".join(v.split()) for k, v in replacements.items()}, normalize, examples)

    @staticmethod
    def _load_replacements(where: Where, data: LineMap) -> LineMap:
        replacements = where.mapping(data["replacements"], data.lines["replacements"], "`replacements`")
        if "diagnosis" not in replacements:
            raise where.error(replacements.line, "`replacements` needs a `diagnosis:` text (the default)")
        for key, value in replacements.items():
            if not isinstance(value, str) or not value.strip():
                raise where.error(replacements.lines[key], f"replacement `{key}` must be a text")
        return replacements

    @staticmethod
    def _load_normalize(where: Where, data: LineMap) -> list[tuple[re.Pattern[str], str]]:
        normalize: list[tuple[re.Pattern[str], str]] = []
        if "normalize" in data:
            block = where.mapping(data["normalize"], data.lines["normalize"], "`normalize`")
            for source, target in block.items():
                if not isinstance(source, str) or not isinstance(target, str):
                    raise where.error(block.lines[source], "`normalize` entries are `written: standard`, both text")
                normalize.append((re.compile(r"(?<![\w'])" + re.escape(source.lower()) + r"(?![\w'])"),
                                  target.lower()))
        return normalize

    @classmethod
    def _load_lists(cls, where: Where, data: LineMap) -> dict[str, str]:
        """Named alternations (`lists:`), each entry checked as a regex; rules use them as `{name}`."""
        lists: dict[str, str] = {}
        if "lists" in data:
            block = where.mapping(data["lists"], data.lines["lists"], "`lists`")
            for name, items in block.items():
                entries = where.strings(items, block.lines[name], f"list `{name}`")
                for entry, line in entries:
                    cls._regex(where, entry, line, f"list `{name}`")
                lists[name] = "|".join(f"(?:{entry})" for entry, _ in entries)
        return lists

    @classmethod
    def _load_rules(cls, where: Where, data: LineMap, replacements: LineMap,
                    lists: dict[str, str]) -> list[GuardRule]:
        rules_block = data["rules"]
        if not isinstance(rules_block, LineList) or not rules_block:
            raise where.error(data.lines["rules"], "`rules` must be a list of rules (`- name: ...`)")
        rules: list[GuardRule] = []
        names: set[str] = set()
        for spec, line in zip(rules_block, rules_block.lines):
            rules.append(cls._load_rule(where, spec, line, names, replacements, lists))
        return rules

    @classmethod
    def _load_rule(cls, where: Where, spec: object, line: int, names: set[str], replacements: LineMap,
                   lists: dict[str, str]) -> GuardRule:
        """One `- name: ...` entry; its name is added to `names` (names must be unique)."""
        spec = where.mapping(spec, line, "a rule")
        where.check_keys(spec, _RULE_KEYS, "a rule")
        for key in ("name", "category", "pattern"):
            if not isinstance(spec.get(key), str) or not spec[key].strip():
                raise where.error(spec.lines.get(key, line), f"every rule needs a `{key}:` text")
        name = spec["name"]
        if name in names:
            raise where.error(spec.lines["name"], f"rule name `{name}` is used twice; names must be unique")
        names.add(name)
        if spec["category"] not in replacements:
            raise where.error(spec.lines["category"], f"rule `{name}`: category `{spec['category']}` has no "
                                                      f"text under `replacements`; add one or use "
                                                      f"{', '.join(replacements)}")

        def compiled(key: str) -> re.Pattern[str] | None:
            if key not in spec:
                return None
            return cls._regex(where, cls._fill(where, spec[key], lists, spec.lines[key]),
                              spec.lines[key], f"rule `{name}` `{key}`")

        question = spec.get("unless_question", False)
        if not isinstance(question, bool):
            raise where.error(spec.lines["unless_question"], "unless_question is true or false")
        return GuardRule(name, spec["category"], compiled("pattern"), compiled("unless_before"),
                         compiled("unless_after"), question, compiled("needs_in_sentence"))

    @staticmethod
    def _fill(where: Where, pattern: object, lists: dict[str, str], line: int) -> str:
        if not isinstance(pattern, str):
            raise where.error(line, "a pattern must be text (a regular expression)")

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in lists:
                raise where.error(line, f"`{{{m.group(1)}}}` is not a list under `lists:`; "
                                        f"known: {', '.join(sorted(lists)) or 'none'}")
            return lists[m.group(1)]

        return re.sub(r"\{([a-z_]+)\}", sub, pattern.strip())

    @staticmethod
    def _regex(where: Where, source: str, line: int, what: str) -> re.Pattern[str]:
        try:
            return re.compile(source)
        except re.error as exc:
            raise where.error(line, f"{what}: not a valid regular expression ({exc}); fix it") from None


