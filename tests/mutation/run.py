"""Mutation testing of the safety layer: do the tests fail when the safety code breaks?

    make mutation                         # every mutant (about 1-2 h on 2 cores)
    MUTATION_SAMPLE=150 make mutation     # a random sample, spread over the modules by size
    MUTATION_MODULES=triage,answers ...   # only these modules (names as in TARGETS)
    MUTATION_ONLY=decide.py:188:3 ...     # only these mutant ids (comma-separated)

Each mutant is one small change (mutmut's usual operators, made with `ast`) written into a
worker's private copy of the project; the test files that cover the module then run with
`pytest -x`, under a timeout. Killed = a test failed; survived = all passed; timeout = the tests
hung (counts as killed, as in mutmut). Mutants listed in tests/mutation/equivalent.yml (with the
reason they cannot change behaviour) are reported apart and left out of the score.
Results: the table printed at the end and results/mutation.json.

Not part of `make test`. Written instead of using mutmut 3 because mutmut mutates whole files
(the brief targets only the alert path of bot/processor.py), runs every test of the project to
map tests to functions, and its trampolines need the tests to import from its `mutants/` copy.
"""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT_FILE = ROOT / "tests" / "mutation" / "equivalent.yml"
RESULTS = ROOT / "results" / "mutation.json"

# module -> the fast test files that cover it, most telling first (pytest -x stops at the first failure)
TARGETS: dict[str, tuple[str, ...]] = {
    "bot/safety/triage.py": ("tests/test_safety_triage.py", "tests/test_safety_decide.py"),
    "bot/safety/answers.py": ("tests/test_safety_decide.py", "tests/test_processor.py"),
    "bot/safety/decide.py": ("tests/test_safety_decide.py", "tests/test_processor.py"),
    "bot/safety/screen.py": ("tests/test_safety_screen.py", "tests/test_safety_decide.py",
                             "tests/test_safety_data.py"),
    "bot/safety/guard.py": ("tests/test_safety_guard.py", "tests/test_safety_sweep.py",
                            "tests/test_safety_data.py"),
    "bot/safety/context.py": ("tests/test_safety_context.py", "tests/test_safety_screen.py"),
    "bot/safety/quantities.py": ("tests/test_safety_quantities.py", "tests/test_safety_screen.py"),
    "bot/processor.py": ("tests/test_processor.py", "tests/test_safety_decide.py"),
}
# In bot/processor.py only the alert path is mutated: these functions, and the statements of
# `handle` that act on the Decision.
PROCESSOR_FUNCTIONS = {"_safety", "_ask_safety", "_resume"}
PROCESSOR_HANDLE_NAME = "decision"

COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "models", "results", "blind", "__pycache__", "*.pyc",
                                     ".pytest_cache", ".hypothesis", "node_modules", "*.egg-info", ".bot")

COMPARE_SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
                ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
              ast.Mod: ast.Mult, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr, ast.Pow: ast.Mult}
SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
          ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-",
          ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.BitOr: "|", ast.BitAnd: "&",
          ast.Pow: "**", ast.And: "and", ast.Or: "or"}
# statements whose removal is a mutant: assignments and calls that add to / change a collection
REMOVABLE_CALLS = {"append", "extend", "add", "update", "insert", "remove", "discard", "pop", "setdefault",
                   "sort", "clear"}


@dataclass
class Mutant:
    id: str            # file-stem:line:n (n-th mutant on that line)
    file: str
    line: int
    function: str
    operator: str
    description: str   # "`a < b` -> `a <= b`"
    source: str = ""   # the whole mutated module (not stored in the results)
    status: str = "pending"
    seconds: float = 0.0
    test: str = ""     # the first failing test (killed)


# -- making mutants --------------------------------------------------------------------------------

def _offsets(source: str) -> list[int]:
    starts, pos = [0], 0
    for line in source.splitlines(keepends=True):
        pos += len(line.encode("utf-8"))
        starts.append(pos)
    return starts


class _Maker:
    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source
        self.raw = source.encode("utf-8")
        self.starts = _offsets(source)
        self.tree = ast.parse(source)
        self.mutants: list[Mutant] = []
        self.skip: set[int] = set()       # ids of nodes never mutated (docstrings, annotations, messages)
        self.parents: dict[int, ast.AST] = {}
        for parent in ast.walk(self.tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[id(child)] = parent
        self._mark_skipped()

    def _span(self, node: ast.AST) -> tuple[int, int]:
        return (self.starts[node.lineno - 1] + node.col_offset, self.starts[node.end_lineno - 1] + node.end_col_offset)

    def _text(self, node: ast.AST) -> str:
        a, b = self._span(node)
        return self.raw[a:b].decode("utf-8")

    def _mark_skipped(self) -> None:
        def skip_all(node: ast.AST | None) -> None:
            if node is not None:
                self.skip.update(id(n) for n in ast.walk(node))

        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                        and isinstance(body[0].value.value, str):
                    skip_all(body[0])                       # docstring
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.JoinedStr)):
                skip_all(node)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                skip_all(node.returns)
                for arg in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                    skip_all(arg.annotation)
                skip_all(node.args.vararg)
                skip_all(node.args.kwarg)
            if isinstance(node, ast.AnnAssign):
                skip_all(node.annotation)
            if isinstance(node, ast.Raise):
                skip_all(node.exc)                          # the text of an error message
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "log":
                skip_all(node)                              # logging
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                skip_all(node)
            if isinstance(node, (ast.Set, ast.List, ast.Tuple, ast.Dict)) and not _in_function(node, self.parents):
                # word tables at module level (sets/dicts of words and their values) are data, as the
                # knowledge/*.yml files are: their own tests check them, the operators do not apply
                items = node.keys + node.values if isinstance(node, ast.Dict) else node.elts
                if len(items) >= 4 and all(isinstance(i, ast.Constant) for i in items if i is not None):
                    skip_all(node)
            if isinstance(node, ast.Subscript):
                # typing subscripts at module level (dict[str, Any]) are annotations, not values
                if isinstance(node.value, ast.Name) and node.value.id in ("dict", "list", "tuple", "set", "frozenset",
                                                                          "Mapping", "Iterable", "Optional"):
                    if isinstance(self.parents.get(id(node)), (ast.AnnAssign, ast.arg)):
                        skip_all(node)

    # where a mutant may go
    def _wanted(self, node: ast.AST, scopes: list[tuple[int, int]] | None) -> bool:
        if id(node) in self.skip or not hasattr(node, "lineno"):
            return False
        if scopes is None:
            return True
        return any(a <= node.lineno and node.end_lineno <= b for a, b in scopes)

    def _function_of(self, line: int) -> str:
        best = "<module>"
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= node.end_lineno:
                best = node.name
        return best

    def _add(self, node: ast.AST, replacement: str, operator: str, description: str, statement: bool = False) -> None:
        a, b = self._span(node)
        text = replacement if statement else f"({replacement})"
        mutated = (self.raw[:a] + text.encode("utf-8") + self.raw[b:]).decode("utf-8")
        try:
            compile(mutated, self.path, "exec")
        except SyntaxError:
            return
        line = node.lineno
        n = sum(1 for m in self.mutants if m.line == line)
        self.mutants.append(Mutant(f"{Path(self.path).name}:{line}:{n}", self.path, line, self._function_of(line),
                                   operator, description, mutated))

    def make(self, scopes: list[tuple[int, int]] | None) -> list[Mutant]:
        for node in ast.walk(self.tree):
            if not self._wanted(node, scopes):
                continue
            original = self._text(node)
            if isinstance(node, ast.Compare):
                for i, op in enumerate(node.ops):
                    swap = COMPARE_SWAP.get(type(op))
                    if swap:
                        new = ast.Compare(node.left, list(node.ops), node.comparators)
                        new.ops[i] = swap()
                        self._add(node, ast.unparse(new), "compare",
                                  f"`{SYMBOL[type(op)]}` -> `{SYMBOL[swap]}` in `{_short(original)}`")
            elif isinstance(node, ast.BoolOp):
                other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
                self._add(node, ast.unparse(ast.BoolOp(other, node.values)), "boolean",
                          f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[type(other)]}` in `{_short(original)}`")
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                self._add(node, ast.unparse(node.operand), "not", f"`not` removed in `{_short(original)}`")
            elif isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAP:
                swap = BINOP_SWAP[type(node.op)]
                self._add(node, ast.unparse(ast.BinOp(node.left, swap(), node.right)), "arithmetic",
                          f"`{SYMBOL[type(node.op)]}` -> `{SYMBOL[swap]}` in `{_short(original)}`")
            elif isinstance(node, ast.Constant):
                value = node.value
                if isinstance(value, bool):
                    self._add(node, repr(not value), "boolean-constant", f"`{value}` -> `{not value}`")
                elif isinstance(value, (int, float)):
                    self._add(node, repr(value + 1), "number", f"`{value!r}` -> `{value + 1!r}`")
                elif isinstance(value, str):
                    self._add(node, repr(f"XX{value}XX"), "string", f"`{_short(repr(value))}` -> `'XX...XX'`")
            elif isinstance(node, ast.Return) and node.value is not None and not (
                    isinstance(node.value, ast.Constant) and node.value.value is None):
                self._add(node, "return None", "return", f"`{_short(original)}` -> `return None`", statement=True)
            elif isinstance(node, ast.Break):
                self._add(node, "continue", "break", "`break` -> `continue`", statement=True)
            elif isinstance(node, ast.Continue):
                self._add(node, "break", "break", "`continue` -> `break`", statement=True)
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and _in_function(node, self.parents) \
                    or isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await)) \
                    and _removable_call(node.value):
                self._add(node, "pass", "statement", f"`{_short(original)}` removed", statement=True)
        self.mutants.sort(key=lambda m: (m.line, m.id))
        return self.mutants


def _in_function(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    while id(node) in parents:
        node = parents[id(node)]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return True
    return False


def _removable_call(node: ast.AST) -> bool:
    if isinstance(node, ast.Await):
        node = node.value
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in REMOVABLE_CALLS or name.startswith("_") or name in ("add",)


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def _processor_scopes(tree: ast.Module) -> list[tuple[int, int]]:
    scopes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            if node.name in PROCESSOR_FUNCTIONS:
                scopes.append((node.body[0].lineno, node.end_lineno))
            elif node.name == "handle":
                for stmt in ast.walk(node):
                    if isinstance(stmt, ast.stmt) and stmt is not node and any(
                            isinstance(n, ast.Name) and n.id == PROCESSOR_HANDLE_NAME for n in ast.walk(stmt)):
                        if isinstance(stmt, ast.For):    # the loop itself only for its `decision` lines
                            continue
                        scopes.append((stmt.lineno, stmt.end_lineno))
    return scopes


def make_mutants(files: list[str]) -> list[Mutant]:
    out = []
    for rel in files:
        source = (ROOT / rel).read_text(encoding="utf-8")
        maker = _Maker(rel, source)
        scopes = _processor_scopes(maker.tree) if rel == "bot/processor.py" else None
        out += maker.make(scopes)
    return out


# -- equivalent mutants ----------------------------------------------------------------------------

def load_equivalent() -> dict[tuple[str, str], str]:
    """(id, mutation) -> reason. Both must match, so an entry goes stale (with a warning) when the
    module changes under it."""
    if not EQUIVALENT_FILE.exists():
        return {}
    data = yaml.safe_load(EQUIVALENT_FILE.read_text(encoding="utf-8")) or {}
    out = {}
    for entry in data.get("equivalent") or []:
        if not str(entry.get("reason") or "").strip():
            raise SystemExit(f"{EQUIVALENT_FILE}: {entry} has no reason")
        out[(entry["id"], entry["mutation"])] = entry["reason"]
    return out


# -- running ---------------------------------------------------------------------------------------

class Worker:
    def __init__(self, index: int, base: Path) -> None:
        self.dir = base / f"worker{index}"
        shutil.copytree(ROOT, self.dir, ignore=COPY_IGNORE, symlinks=True)
        if (ROOT / "models").exists():
            (self.dir / "models").symlink_to(ROOT / "models")

    def run(self, mutant: Mutant | None, tests: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
        target = self.dir / mutant.file if mutant else None
        original = target.read_bytes() if target else None
        if target:
            target.write_text(mutant.source, encoding="utf-8")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
        cmd = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly", "--no-header", "-o", "addopts=", *tests]
        start = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, cwd=self.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)
            try:
                output, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.communicate()
                return "timeout", time.monotonic() - start, ""
        finally:
            if target:
                target.write_bytes(original)
        seconds = time.monotonic() - start
        if proc.returncode == 0:
            return "survived", seconds, ""
        failed = next((line.split(" ", 1)[1].split(" - ")[0] for line in output.splitlines()
                       if line.startswith(("FAILED ", "ERROR "))), output.strip().splitlines()[-1] if output.strip() else "")
        return "killed", seconds, failed


def _bar(done: int, total: int, counts: dict[str, int], width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  killed {counts['killed']}  "
            f"survived {counts['survived']}  timeout {counts['timeout']}")


def main() -> int:
    modules = [m.strip() for m in os.environ.get("MUTATION_MODULES", "").split(",") if m.strip()]
    files = [f for f in TARGETS if not modules or Path(f).stem in modules]
    mutants = make_mutants(files)
    equivalent = load_equivalent()
    known = {(m.id, m.description) for m in mutants}
    for key in equivalent:
        if key not in known and (not modules or Path(key[0].split(":")[0]).stem in modules):
            print(f"warning: equivalent.yml entry matches no mutant: {key[0]} {key[1]}", file=sys.stderr)
    for m in mutants:
        if (m.id, m.description) in equivalent:
            m.status = "equivalent"
    todo = [m for m in mutants if m.status == "pending"]
    only = {x.strip() for x in os.environ.get("MUTATION_ONLY", "").split(",") if x.strip()}
    if only:
        todo = [m for m in todo if m.id in only]
    sample = int(os.environ.get("MUTATION_SAMPLE") or 0)
    sampled = bool(sample) and sample < len(todo)
    if sampled:
        rng = random.Random(int(os.environ.get("MUTATION_SEED") or 0))
        picked = []
        for f in files:
            group = [m for m in todo if m.file == f]
            # by size, but at least 12 of each module (or all it has), so a small module gets a score too
            k = max(min(len(group), 12), round(sample * len(group) / len(todo)))
            picked += rng.sample(group, min(k, len(group)))
        for m in todo:
            if m not in picked:
                m.status = "not run"
        todo = picked
    jobs = max(1, min(2, int(os.environ.get("MUTATION_JOBS") or 2)))
    print(f"{len(mutants)} mutants in {len(files)} modules; {sum(m.status == 'equivalent' for m in mutants)} "
          f"listed as equivalent; running {len(todo)}{' (sample)' if sampled else ''} with {jobs} workers")

    base = Path(tempfile.mkdtemp(prefix="backline-mutation-"))
    try:
        workers = [Worker(i, base) for i in range(jobs)]
        # the unmutated tests must pass in the copy; their time sets the timeouts
        baseline: dict[str, float] = {}
        for f in files:
            status, seconds, failed = workers[0].run(None, TARGETS[f], timeout=900)
            if status != "survived":
                print(f"the tests of {f} fail without any mutation ({failed}); fix that first", file=sys.stderr)
                return 2
            baseline[f] = seconds
        print("baseline: " + ", ".join(f"{Path(f).name} {s:.1f} s" for f, s in baseline.items()))
        free = list(workers)
        lock = threading.Lock()
        counts = {"killed": 0, "survived": 0, "timeout": 0}
        done = [0]

        def one(m: Mutant) -> None:
            with lock:
                worker = free.pop()
            try:
                m.status, m.seconds, m.test = worker.run(m, TARGETS[m.file], timeout=max(20.0, 2 * baseline[m.file]))
            finally:
                with lock:
                    free.append(worker)
                    counts[m.status] += 1
                    done[0] += 1
                    if m.status == "survived":
                        print(f"\rsurvived: {m.file}:{m.line} [{m.id}] {m.description}", file=sys.stderr)
                    print(_bar(done[0], len(todo), counts), end="", file=sys.stderr, flush=True)

        started = time.monotonic()
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, todo))
        elapsed = time.monotonic() - started
        print(file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"\n{'module':<28}{'mutants':>8}{'run':>6}{'killed':>8}{'timeout':>8}{'survived':>9}{'equiv.':>7}{'score':>8}")
    total = {"run": 0, "dead": 0}
    for f in files:
        group = [m for m in mutants if m.file == f]
        run = [m for m in group if m.status in ("killed", "survived", "timeout")]
        k = sum(m.status == "killed" for m in run)
        t = sum(m.status == "timeout" for m in run)
        s = sum(m.status == "survived" for m in run)
        e = sum(m.status == "equivalent" for m in group)
        score = f"{100 * (k + t) / len(run):.1f}%" if run else "-"
        total["run"] += len(run)
        total["dead"] += k + t
        print(f"{f:<28}{len(group):>8}{len(run):>6}{k:>8}{t:>8}{s:>9}{e:>7}{score:>8}")
    if total["run"]:
        print(f"{'all':<28}{len(mutants):>8}{total['run']:>6}{'':>8}{'':>8}"
              f"{total['run'] - total['dead']:>9}{'':>7}{100 * total['dead'] / total['run']:>7.1f}%")
    print(f"{elapsed / 60:.1f} min on {os.cpu_count()} cores, {jobs} workers")
    survivors = [m for m in mutants if m.status == "survived"]
    if survivors:
        print("\nsurvivors:")
        for m in survivors:
            print(f"  {m.file}:{m.line} [{m.id}] ({m.function}) {m.description}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "sampled": sampled, "seconds": round(elapsed),
        "mutants": [{k: v for k, v in asdict(m).items() if k != "source"} for m in mutants],
    }, indent=1), encoding="utf-8")
    return 1 if survivors else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--list":
        for m in make_mutants(list(TARGETS)):
            print(f"{m.id:<22} {m.function:<22} {m.operator:<16} {m.description}")
        sys.exit(0)
    sys.exit(main())
