"""The one YAML reader (project files, the safety rules, the knowledge base): line numbers on every
mapping key and list item, a repeated key is an error, and the one error type users see for bad
project files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ProjectError(Exception):
    """A problem in a project file, stated as `file:line: what is wrong (how to fix it)`."""

    def __init__(self, path: Path | str | None, line: int | None, message: str) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        where = self.path or ""
        if where and line:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class LineDict(dict):
    """A mapping that remembers the line (1-based) it and each of its keys started on."""

    line: int = 0
    lines: dict[Any, int]

    @property
    def key_lines(self) -> dict[str, int]:
        return {str(k): v for k, v in self.lines.items()}


class LineList(list):
    """A sequence that remembers the line of itself and of each item."""

    line: int = 0
    lines: list[int]

    @property
    def item_lines(self) -> list[int]:
        return self.lines


class _LineLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml: ~10x faster
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark
            )
        if key in result:
            # a second `utter_emergency:` would silently replace the first: refuse
            raise DuplicateKey(key, result.lines[key], key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"key `{key}` appears twice (first on line {first}); merge the two entries into one")
        self.line = again


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def line_of(obj: Any, key: str | int | None = None) -> int | None:
    """The line where `obj` (or its key/item) starts, when it came from load_yaml."""
    if key is not None:
        if isinstance(obj, LineDict):
            return obj.key_lines.get(str(key), obj.line)
        if isinstance(obj, LineList) and isinstance(key, int) and key < len(obj.item_lines):
            return obj.item_lines[key]
    return getattr(obj, "line", None)


def load_yaml(path: Path, *, required: bool = True) -> Any:
    """Parse one YAML file; any syntax or encoding error becomes a one-line ProjectError."""
    if not path.exists():
        if required:
            raise ProjectError(path, None, "file not found (create it or run `bot` from the project folder)")
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ProjectError(path, None, f"not valid UTF-8 ({exc.reason} at byte {exc.start}); save the file as UTF-8")
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path | str) -> Any:
    """Parse YAML text read from `path` (named in errors)."""
    loader = _LineLoader(text)
    try:
        return loader.get_single_data()
    except DuplicateKey as exc:
        raise ProjectError(path, exc.line, str(exc)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        hint = " (check indentation and quoting)" if "indent" in problem or "expected" in problem else ""
        raise ProjectError(path, line, f"YAML syntax error: {problem}{hint}")
    except yaml.YAMLError as exc:
        raise ProjectError(path, None, f"YAML error: {exc}")
    finally:
        loader.dispose()


def plain(obj: Any) -> Any:
    """Strip line bookkeeping: plain dicts and lists (for JSON and for rasa-sdk)."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj
