"""YAML from files portfwd does not control, loaded within limits.

PyYAML's safe loader builds no objects beyond plain data, but two things still make a small
file expensive: its pure-Python implementation (8 MB took 78 s) and aliases. An alias is cheap
to load (the loaded data shares the aliased object) but everything that walks the data later
walks every copy: nine levels of nine aliases are 387 million nodes when an exec plugin's
cluster info is serialised. So :func:`load_yaml`

- uses libyaml (`yaml.CSafeLoader`) when PyYAML was built with it;
- stops composing once the document has more than `max_nodes` nodes;
- refuses a document whose nodes, with every alias expanded, number more than `max_nodes`
  (counted on the node graph in linear time, before any data is built), and one where an
  alias refers to the node that holds it (a loop no walker would finish).

Callers cap the file's size first (`portfwd.filecheck.read_capped`). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["YamlLimitError", "load_yaml"]

_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlLimitError(ValueError):
    """The document is over a limit; the message says which one, and the limit."""


def _too_many(max_nodes: int) -> YamlLimitError:
    return YamlLimitError(
        f"it has more YAML nodes than portfwd's limit of {max_nodes:,}, counting aliases expanded"
    )


class _LimitedLoader(_BASE):  # type: ignore[misc,valid-type]
    def __init__(self, stream: str | bytes, max_nodes: int) -> None:
        super().__init__(stream)
        self.max_nodes = max_nodes
        self.composed = 0

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # The composer asks for each new node's tag (aliases reuse a node and do not ask):
        # counting here stops a huge document before it is all in memory.
        self.composed += 1
        if self.composed > self.max_nodes:
            raise _too_many(self.max_nodes)
        return super().resolve(kind, value, implicit)

    def get_single_node(self) -> yaml.Node | None:
        node: yaml.Node | None = super().get_single_node()
        if node is not None:
            _check_expanded(node, self.max_nodes)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expanded(root: yaml.Node, max_nodes: int) -> None:
    """The node count with aliases expanded (a shared node counts once per reference)."""
    size: dict[int, int] = {}  # id(node) -> nodes in its expanded subtree, once known
    on_path: set[int] = set()  # nodes whose subtree is being counted (an alias to one: a loop)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(size[id(c)] for c in _children(node))
            if total > max_nodes:
                raise _too_many(max_nodes)
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlLimitError("a YAML alias in it refers to the node that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)


def load_yaml(text: str | bytes, *, max_nodes: int) -> Any:
    """The one document in `text` as plain data. Raises yaml.YAMLError for bad syntax and
    YamlLimitError (a ValueError) for a document over the limits."""
    loader = _LimitedLoader(text, max_nodes)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
