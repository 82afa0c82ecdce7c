"""Validation of plain data (a parsed YAML file, an override, a command-line value) against
the schema's dataclasses, by pydantic, with one-line :class:`~slidemap.errors.ConfigError`
messages that name the file, the dotted key and the fix::

    configs/paper/unet.yaml: unknown key 'trainer.max_epoch'; did you mean 'max_epochs'?
    cfg.yaml: 'data.batch_size' must be an integer, got 'sixteen' (str)
    cfg.yaml: 'threshold' must lie in [0, 1], got 1.5

The schema (:mod:`slidemap.config.schema`) declares each field's type and range with the
aliases below (:data:`Int`, :data:`Number`, :data:`Probability`...), so a range lives in the
type, once; this module only turns pydantic's errors into those lines. Pydantic's lax
coercions are switched off (``"3"`` is not an integer, ``true`` is not a number), except
that a number written as text is read as one: YAML 1.1 reads ``1e-3`` (no dot) as a string.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import annotated_types
from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError

from slidemap.errors import ConfigError

T = TypeVar("T")

#: pydantic settings of every config dataclass: an unknown key is an error.
SCHEMA_CONFIG = ConfigDict(extra="forbid")

_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _number_from_text(value: Any) -> Any:
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
    return value


#: an integer (not a bool, not text).
Int = Annotated[int, Strict()]
#: a finite real number: an integer or a float, or a number written as text (``"1e-3"``);
#: NaN and infinities are refused (no setting of an experiment means them, and torch or
#: Lightning would fail on them only once training runs, or silently train on NaN).
Number = Annotated[float, BeforeValidator(_number_from_text), Strict(), Field(allow_inf_nan=False)]
#: true or false (not 0/1, not text).
Bool = Annotated[bool, Strict()]
#: text.
Str = Annotated[str, Strict()]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
PositiveNumber = Annotated[Number, Field(gt=0)]
NonNegativeNumber = Annotated[Number, Field(ge=0)]
#: a probability, e.g. the threshold of the landslide mask: a number in [0, 1].
Probability = Annotated[Number, Field(ge=0.0, le=1.0)]


# ------------------------------------------------------------------------------ messages
def close_matches(key: str, valid: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the names of ``valid`` close to ``key``, else the list."""
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    if close:
        return f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"; valid keys: {', '.join(valid)}"


def _strip(tp: Any) -> tuple[Any, list[Any]]:
    """``tp`` without ``Annotated``, and the metadata it carried (outermost last)."""
    metadata: list[Any] = []
    while typing.get_origin(tp) is Annotated:
        tp, *extra = typing.get_args(tp)
        metadata = [*extra, *metadata]
    return tp, metadata


def type_name(tp: Any) -> str:
    """What a value of type ``tp`` is, in words (``"an integer"``, ``"'adam' or 'sgd'"``)."""
    tp, metadata = _strip(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp) or origin is dict:
        return "a mapping"
    if origin is list:
        item = type_name(typing.get_args(tp)[0])
        article, _, noun = item.partition(" ")
        items = f"{noun}s" if article in ("a", "an") and " " not in noun else f"items ({item})"
        constraints = [c for m in metadata for c in (*getattr(m, "metadata", ()), m)]
        non_empty = any(getattr(c, "min_length", 0) for c in constraints)
        return f"a {'non-empty ' if non_empty else ''}list of {items}"
    return {type(None): "null", int: "an integer", float: "a number", str: "a string",
            bool: "true/false"}.get(tp, str(tp))


def _bounds(tp: Any) -> str:
    """The range a constrained number type (or the constrained member of a union) allows,
    in words (``"be positive"``, ``"lie in [0, 1]"``)."""
    bare, metadata = _strip(tp)
    if typing.get_origin(bare) in (Union, types.UnionType):
        ranges = [_bounds(member) for member in typing.get_args(bare)]
        return next((r for r in ranges if r), "")
    limits: dict[str, float] = {}
    # pydantic's Field(gt=0) keeps its constraints as annotated_types objects in .metadata
    constraints = [c for item in metadata for c in (*getattr(item, "metadata", ()), item)]
    for constraint in constraints:
        if isinstance(constraint, annotated_types.BaseMetadata):
            for name in ("gt", "ge", "lt", "le"):
                if getattr(constraint, name, None) is not None:
                    limits[name] = getattr(constraint, name)
    if limits.keys() == {"ge", "le"}:
        return f"lie in [{_shown(limits['ge'])}, {_shown(limits['le'])}]"
    if limits == {"gt": 0}:
        return "be positive"
    if not limits:
        return ""
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return "be " + " and ".join(f"{symbols[k]} {_shown(v)}" for k, v in limits.items())


def _shown(limit: float) -> str:
    """A bound as written: integers whole (``4294967295``), other numbers short (``0.5``)."""
    return str(limit) if isinstance(limit, int) else f"{limit:g}"


def _fields(tp: Any) -> dict[str, Any]:
    """Field name -> annotated type of dataclass ``tp``."""
    hints = typing.get_type_hints(tp, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(tp)}


def _dotted(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _locate(root: Any, loc: Sequence[str | int]) -> tuple[list[str | int], Any, Any]:
    """Walk ``loc`` (pydantic's error location) down the schema from type ``root``.

    Returns:
        ``(key path, type at its end, type of its parent)``; the walk stops at a leaf field
        (pydantic adds the member names of unions after it) or at an unknown key (which is
        then the last part of the path).
    """
    path: list[str | int] = []
    tp, parent = root, None
    for part in loc:
        bare, _ = _strip(tp)
        if dataclasses.is_dataclass(bare) and isinstance(part, str):
            path.append(part)
            parent, tp = bare, _fields(bare).get(part)
            if tp is None:
                break
        elif typing.get_origin(bare) is list and isinstance(part, int):
            path.append(part)
            parent, tp = bare, typing.get_args(bare)[0]
        else:
            break
    return path, tp, parent


_EXTRA = ("unexpected_keyword_argument", "extra_forbidden")
_RANGE = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _message(errors: Sequence[Mapping[str, Any]], root: Any) -> str:
    """One line for the first problem of ``errors`` (unknown keys first, as a reader fixes them)."""
    ordered = sorted(range(len(errors)), key=lambda i: errors[i]["type"] not in _EXTRA)
    first = errors[ordered[0]]
    path, tp, parent = _locate(root, first["loc"])
    key = _dotted(path)
    if first["type"] in _EXTRA:
        names = list(_fields(parent)) if dataclasses.is_dataclass(parent) else []
        return f"unknown key {key!r}{close_matches(str(path[-1]), names)}"
    if first["type"] == "missing":
        return f"missing key {key!r}"
    if first["type"] == "too_short":
        return f"{key!r} needs at least one entry"
    same_key = [e for e in errors if _locate(root, e["loc"])[0] == path]
    ranged = next((e for e in same_key if e["type"] in _RANGE), None)
    value = first.get("input")
    if ranged is not None:
        return f"{key!r} must {_bounds(tp)}, got {ranged.get('input')!r}"
    return f"{key!r} must be {type_name(tp)}, got {value!r} ({type(value).__name__})"


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def build(tp: type[T], raw: Any, source: str | Path | None = "<config>") -> T:
    """An instance of schema type ``tp`` (a config dataclass) from plain data ``raw``.

    Raises:
        ConfigError: unknown key (with the closest valid ones), missing key, wrong type or
            value out of range; the message names ``source`` and the dotted key.
    """
    try:
        return _adapter(tp).validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(_message(exc.errors(), tp), source) from None


def check_value(tp: Any, value: Any, name: str, source: str | Path | None = None) -> Any:
    """``value`` checked against the (constrained) type ``tp``; ``name`` is how the user
    wrote it (``"--threshold"``, ``"threshold"``), named in the error."""
    try:
        return _adapter(tp).validate_python(value)
    except ValidationError as exc:
        errors = exc.errors()
        ranged = next((e for e in errors if e["type"] in _RANGE), None)
        if ranged is not None:
            raise ConfigError(f"{name} must {_bounds(tp)}, got {value!r}", source) from None
        raise ConfigError(f"{name} must be {type_name(tp)}, got {value!r}", source) from None


def check_threshold(value: Any, name: str = "threshold", source: str | Path | None = None) -> float:
    """A probability threshold in [0, 1] (:data:`Probability`), the one check of every
    threshold a user gives (config, ``--threshold``, mapping options).

    Raises:
        ConfigError: not a number or outside [0, 1]; names ``name`` and ``source``.
    """
    return float(check_value(Probability, value, name, source))
