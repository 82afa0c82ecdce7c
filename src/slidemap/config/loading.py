"""Reading experiment and comparison YAML files, with ``--set`` overrides.

Overrides (``--set trainer.max_epochs=3``) are dotted ``key=value`` pairs whose value is
parsed as a YAML scalar (``3`` → int, ``1e-3`` → float, ``true`` → bool, ``[a, b]`` → list)
and applied to the raw YAML before validation, so they are checked the same way.

These functions check the schema (keys, types, ranges). Registry names (model, loss,
feature) are checked one layer up, by :mod:`slidemap.workflows.configs`, whose
``load_experiment`` / ``load_comparison`` every command uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from slidemap.config.paths import resolve_config_path
from slidemap.config.schema import (
    CompareConfig,
    ExperimentConfig,
    deep_update,
    experiment_from_dict,
)
from slidemap.config.validation import build
from slidemap.errors import ConfigError
from slidemap.io.atomic import write_text_atomic
from slidemap.io.yamlsafe import load_yaml, read_yaml_file


def parse_override(text: str, source: str | Path | None = None) -> tuple[list[str], Any]:
    """``"trainer.max_epochs=3"`` -> ``(["trainer", "max_epochs"], 3)`` (value as YAML).

    ``source`` is the config file the override applies to, named in errors.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"override {text!r} is not of the form dotted.key=value", source)
    try:
        parsed = load_yaml(value) if value.strip() else None
    except ConfigError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc.problem})", source) from None
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], source: str | Path) -> dict[str, Any]:
    """Set each dotted ``key=value`` in nested ``raw`` (in place; returns it).

    A numeric part indexes a list (``loss.0.weight=0.5``). Keys that do not exist are set
    anyway and then rejected by validation, with the usual close-match hint.
    """
    for text in overrides:
        parts, value = parse_override(text, source)
        node: Any = raw
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(
                        f"override {text!r}: {'.'.join(parts[:i])!r} is a list of {len(node)}; "
                        f"{part!r} is not an index of it", source
                    )
                index = int(part)
                if last:
                    node[index] = value
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), dict | list):
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(
                    f"override {text!r}: {'.'.join(parts[:i])!r} is a value, not a section", source
                )
    return raw


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of YAML file ``path``.

    Raises:
        ConfigError: missing or unreadable file, not UTF-8, invalid YAML, a key given twice,
            an alias bomb (:mod:`slidemap.io.yamlsafe`), empty, or not a mapping.
    """
    if not path.exists():
        raise ConfigError("config file does not exist", path)
    raw = read_yaml_file(path)
    if raw is None:
        raise ConfigError("config file is empty; expected a mapping of settings (start from configs/demo.yaml)", path)
    if not isinstance(raw, dict):
        raise ConfigError(f"the top level must be a mapping, got {type(raw).__name__}", path)
    return raw


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Read an experiment YAML, apply dotted overrides, validate against the schema.

    Args:
        path: YAML file (or the name of a config shipped in the package).
        overrides: ``["trainer.max_epochs=3", "data.root=/data/l4s"]``.

    Raises:
        ConfigError: naming the file and the key at fault.
    """
    resolved = resolve_config_path(path)
    # overrides address the defaults too (``loss.0.weight`` when the file has no ``loss``)
    raw = deep_update(ExperimentConfig().to_dict(), read_yaml(resolved))
    raw = apply_overrides(raw, overrides, resolved)
    return experiment_from_dict(raw, source=resolved)


def load_compare_config(path: str | Path, overrides: Sequence[str] = ()) -> CompareConfig:
    """Read a comparison YAML: ``base`` is inline or a path relative to this file, and
    ``base_overrides`` (optional, nested like an experiment) changes it for this comparison.

    Overrides address the comparison (``base.trainer.max_epochs=5``, ``split=valid``).
    Every model's resolved experiment is validated here, so a bad variant fails before
    any training starts.
    """
    resolved = resolve_config_path(path)
    raw = read_yaml(resolved)
    base = raw.get("base", {})
    if isinstance(base, str):
        base = read_yaml(resolve_config_path(resolved.parent / base))
    if not isinstance(base, Mapping):
        raise ConfigError(f"'base' must be a mapping or a file name, got {base!r}", resolved)
    raw["base"] = deep_update(ExperimentConfig().to_dict(), base)
    # ``base_overrides`` changes the base file's settings for this comparison only (e.g. a
    # deployable config trained on every area, compared here with one area left out)
    base_overrides = raw.pop("base_overrides", None) or {}
    if not isinstance(base_overrides, Mapping):
        raise ConfigError(f"'base_overrides' must be a mapping, got {base_overrides!r}", resolved)
    deep_update(raw["base"], base_overrides)
    raw = apply_overrides(raw, overrides, resolved)
    config = build(CompareConfig, raw, resolved)
    names = [v.name for v in config.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"model variant names repeat: {names}", resolved)
    if len(set(config.seeds)) != len(config.seeds):
        raise ConfigError(f"'seeds' repeat: {config.seeds}", resolved)
    config.experiments(resolved)
    return config


def config_text(config: ExperimentConfig | CompareConfig) -> str:
    """The resolved config as the YAML :func:`save_config` writes."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def save_config(config: ExperimentConfig | CompareConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    return write_text_atomic(path, config_text(config))
