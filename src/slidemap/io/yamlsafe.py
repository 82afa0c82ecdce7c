"""YAML that cannot silently lose a setting or exhaust memory.

PyYAML's ``safe_load`` keeps the *last* of two equal keys (a config with two ``trainer:``
blocks silently loses the first), expands aliases without bound (a "billion laughs" file
of a few hundred bytes refers to 10⁹ nodes, and anything that walks it, copies it or
dumps it never finishes), and raises ``UnicodeDecodeError`` on a file that is not UTF-8.
:func:`load_yaml` refuses all three with one :class:`~slidemap.errors.ConfigError` naming
the file and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from slidemap.errors import ConfigError

#: nodes a document may expand to, aliases counted each time they are used.
MAX_EXPANDED_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(yaml.YAMLError):
    pass


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping repeating a key (merge keys ``<<`` may still
    be overridden, as YAML intends)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._checked: set[int] = set()

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if id(node) not in self._checked:  # before flatten_mapping merges ``<<`` keys in
            self._checked.add(id(node))
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: SafeConstructor refuses it below
                    continue
                if first != key_node.start_mark.line + 1:
                    raise _DuplicateKey(
                        f"key {key!r} appears twice (lines {first} and "
                        f"{key_node.start_mark.line + 1}); YAML would keep only the last and "
                        "silently drop the first: merge the two")
        return super().construct_mapping(node, deep=deep)


def expanded_size(node: Node | None) -> int:
    """Nodes ``node`` stands for once every alias is expanded (computed without expanding)."""
    memo: dict[int, int] = {}

    def size(current: Node) -> int:
        key = id(current)
        if key in memo:
            return memo[key]
        memo[key] = 1  # a recursive alias counts once (the constructor refuses it anyway)
        if isinstance(current, SequenceNode):
            total = 1 + sum(size(child) for child in current.value)
        elif isinstance(current, MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in current.value)
        else:
            total = 1
        memo[key] = min(total, MAX_EXPANDED_NODES + 1)
        return memo[key]

    return 0 if node is None else size(node)


def load_yaml(text: str | bytes, source: str | Path | None = None) -> Any:
    """Parse one YAML document strictly (see the module docstring).

    Args:
        text: the document; bytes must be UTF-8.
        source: the file it came from, named in errors.

    Returns:
        The document as plain Python data (``None`` for an empty document).

    Raises:
        ConfigError: not UTF-8, not YAML, a repeated key, or more than
            :data:`MAX_EXPANDED_NODES` nodes once aliases are expanded.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"is not UTF-8 text (byte 0x{text[exc.start]:02x} at offset {exc.start}); save it "
                "as UTF-8", source) from None
    loader = StrictSafeLoader(text)
    try:
        node = loader.get_single_node()
        size = expanded_size(node)
        if size > MAX_EXPANDED_NODES:
            raise ConfigError(
                f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} nodes (an alias bomb?); "
                "write the values out", source)
        return None if node is None else loader.construct_document(node)
    except _DuplicateKey as exc:
        raise ConfigError(str(exc), source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {' '.join(str(exc).split())}", source) from None
    except RecursionError:
        raise ConfigError("YAML nests too deeply", source) from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path) -> Any:
    """:func:`load_yaml` of a file's bytes; :class:`ConfigError` naming it if unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file does not exist", path) from None
    except IsADirectoryError:
        raise ConfigError("is a folder, not a YAML file", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read ({exc.strerror})", path) from None
    return load_yaml(data, path)

