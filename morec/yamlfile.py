"""The one YAML reader of morec's own files (configs, sweep and tune files, run directories' config.yaml).

PyYAML's ``safe_load`` keeps the last of two equal keys in a mapping, so a config with two ``train:``
sections silently loses the first; and a few hundred bytes of nested aliases (``&a [*b, *b, ...]``)
expand into billions of values once anything walks or prints them. This loader refuses both: a
repeated key is an error naming the key and both lines, and a document whose aliases would expand
past :data:`MAX_VALUES` values (or refer to themselves) is an error before anything is built.
"""
from __future__ import annotations

import re
import reprlib
from pathlib import Path
from typing import Any

import yaml

MAX_VALUES = 100_000  # values of a document with its aliases expanded; a real config has a few hundred
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """A YAML file that cannot be read as written: the message names the file, the line and what to do (the
    command line prints it as one line, as it does a ConfigError)."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses repeated mapping keys and alias expansions over :data:`MAX_VALUES` values."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node, self.name)
        return self.construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue  # merged keys (<<) may be overridden on purpose; unhashable keys fail in PyYAML itself
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlError(f"{_where(self.name)}line {line}: key {shown(key)} appears twice in one mapping "
                                f"(first at line {seen[key]}); keep one of them (YAML would silently use the last)")
            seen[key] = line
        return super().construct_mapping(node, deep)


def _where(name: str) -> str:
    return "" if name in ("<unicode string>", "<byte string>", "<file>") else f"{name}, "


def _check_expansion(root: yaml.Node, name: str) -> None:
    """Count the document's values as if every alias were copied out; refuse a cycle or more than MAX_VALUES."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlError(f"{_where(name)}line {node.start_mark.line + 1}: an alias refers to the value that "
                            "contains it (a recursive alias); write the value out instead")
        active.add(key)
        total = 1
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                raise YamlError(f"{_where(name)}line {node.start_mark.line + 1}: its aliases expand to more than "
                                f"{MAX_VALUES:,} values (an alias bomb?); write the values out, with fewer aliases")
        active.discard(key)
        sizes[key] = total
        return total

    size(root)


def parse_yaml(text: str, name: str = "<unicode string>") -> Any:
    """One YAML document from ``text``, read strictly; ``name`` (a path) is what errors name.
    Raises :class:`YamlError` for a repeated key or an alias bomb, ``yaml.YAMLError`` for bad syntax."""
    loader = StrictLoader(text)
    loader.name = str(name)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """A YAML file read strictly; unreadable text, bad syntax, repeated keys and alias bombs are one-line
    :class:`YamlError` messages naming the file and the line."""
    path = Path(path)
    if path.is_dir():
        raise YamlError(f"{path} is a folder; give the {what} (e.g. {path / 'config.yaml'})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise YamlError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); give a {what}") from None
    try:
        return parse_yaml(text, str(path))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise YamlError(f"{path}{where}: not valid YAML ({problem}); fix the syntax there") from None


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxset = 3, 6, 8, 8, 8
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 80, 80, 40


def shown(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to a line: an error quoting a value never prints more than ``limit`` characters of it
    (a huge or deeply nested value is abbreviated with '...')."""
    text = re.sub(r"\s+", " ", _SHORT.repr(value))
    return text if len(text) <= limit else text[:limit - 3] + "..."
