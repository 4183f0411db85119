"""YAML loading that remembers where every value came from.

Config errors must name ``file:line``; PyYAML's plain ``safe_load`` forgets positions and silently
keeps the last of two duplicate keys (a duplicated ``scopes:`` could quietly change a route's
policy), so this loader records line numbers and refuses duplicate keys.

It also bounds what a document may make the readers do: PyYAML composes and constructs
recursively, so a document nested a few thousand levels deep would raise `RecursionError` (and
end whatever was loading it), and a few lines of aliases can expand to billions of values for
the readers that walk them. Both are a `YamlError` at the line where the limit is passed.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import CollectionNode, MappingNode, Node, SequenceNode

__all__ = ["MAX_DEPTH", "MAX_VALUES", "YamlError", "YamlList", "YamlMap", "load_yaml"]

MAX_DEPTH = 64  # collections inside collections; a real config needs fewer than ten
MAX_VALUES = 100_000  # values once every alias is expanded; a large route table has thousands


class YamlError(Exception):
    """The text is not YAML we accept; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class YamlMap(dict[str, Any]):
    """A mapping that knows its own line and the line of each key."""

    line: int
    key_lines: dict[str, int]


class YamlList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    line: int
    item_lines: list[int]


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Loader(yaml.SafeLoader):
    _depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # Composing recurses once per level: refuse before the interpreter's stack runs out.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlError(int(mark.line) + 1, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node = super().compose_document()
        if node is not None:
            _check_expanded_size(node)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> YamlMap:  # type: ignore[override]
        self.flatten_mapping(node)
        result = YamlMap()
        result.line = _line(node)
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise YamlError(_line(key_node), f"keys must be strings, got {key!r}")
            if key in result:
                raise YamlError(
                    _line(key_node),
                    f"duplicate key '{key}' (first at line {result.key_lines[key]})",
                )
            result[key] = self.construct_object(value_node, deep=True)
            result.key_lines[key] = _line(key_node)
        return result

    def construct_yaml_seq_with_lines(self, node: SequenceNode) -> YamlList:
        result = YamlList(self.construct_object(child, deep=True) for child in node.value)
        result.line = _line(node)
        result.item_lines = [_line(child) for child in node.value]
        return result


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq_with_lines)


def _check_expanded_size(root: Node) -> None:
    """Refuse a document that, once its aliases are expanded, holds more than MAX_VALUES values
    or nests deeper than MAX_DEPTH (the readers and ``${VAR}`` interpolation walk it expanded)."""
    seen: dict[int, tuple[int, int]] = {}  # per node: (values, depth); an alias is the same node

    def measure(node: Node) -> tuple[int, int]:
        known = seen.get(id(node))
        if known is not None:
            return known
        seen[id(node)] = (1, 1)  # a recursive alias is refused by the constructor
        values, depth = 1, 1
        if isinstance(node, CollectionNode):
            children: list[Node] = (
                [item for pair in node.value for item in pair]
                if isinstance(node, MappingNode)
                else list(node.value)
            )
            for child in children:
                child_values, child_depth = measure(child)
                values += child_values
                depth = max(depth, child_depth + 1)
                if values > MAX_VALUES:
                    raise YamlError(_line(node), f"aliases expand to more than {MAX_VALUES} values")
                if depth > MAX_DEPTH:
                    raise YamlError(_line(node), f"aliases nest more than {MAX_DEPTH} levels deep")
        seen[id(node)] = (values, depth)
        return values, depth

    measure(root)


def load_yaml(text: str) -> Any:
    """Parse one YAML document into plain values, with `YamlMap`/`YamlList` for collections."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except YamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        raise YamlError(line, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlError(1, f"not valid YAML: {exc}") from None
    except RecursionError:
        # Nesting is bounded above; a long chain of merge keys (``<<: *previous``) still recurses.
        raise YamlError(1, "not valid YAML: nested too deeply") from None
