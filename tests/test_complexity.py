"""No function in bot/ over cyclomatic complexity 15 (radon's measure), except those README.md
names with a reason under "Functions over complexity 15". A new complex function fails here until
it is split or explained there; an explained one that is now simple enough must leave the list."""

from __future__ import annotations

import re

from radon.complexity import cc_visit
from radon.visitors import Class

from tests.helpers import ROOT

LIMIT = 15
LISTED = re.compile(r"^- `(bot/[\w/]+\.py)` `([\w.]+)` \((\d+)\)")


def _functions(code: str):
    for block in cc_visit(code):
        for function in (block.methods if isinstance(block, Class) else [block]):
            yield function
            yield from function.closures


def measured() -> dict[tuple[str, str], int]:
    found = {}
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for function in _functions(path.read_text(encoding="utf-8")):
            if function.complexity > LIMIT:
                found[(str(path.relative_to(ROOT)), function.fullname)] = function.complexity
    return found


def listed() -> dict[tuple[str, str], int]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Functions over complexity 15", 1)[1].split("\n#", 1)[0]
    return {(m[1], m[2]): int(m[3]) for m in map(LISTED.match, section.splitlines()) if m}


def test_every_function_over_the_limit_is_explained_in_the_readme():
    unexplained = {f"{path} {name} ({n})" for (path, name), n in measured().items() if (path, name) not in listed()}
    assert not unexplained, f"split these or say why in README.md: {sorted(unexplained)}"


def test_the_readme_lists_only_functions_still_over_the_limit_with_their_measure():
    now = measured()
    stale = {f"{path} {name}: README says {n}, measured {now.get((path, name), 'at most 15')}"
             for (path, name), n in listed().items() if now.get((path, name)) != n}
    assert not stale, sorted(stale)


def test_the_measure_sees_a_complex_function():
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(20))
    (function,) = _functions(f"def f(x):\n{branches}    return None\n")
    assert function.complexity == 21
