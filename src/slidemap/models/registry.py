"""Model registry: a name and options in, a network out (like timm's ``create_model``).

Networks register themselves with :func:`register_model`; one class may be registered
under several names with different default options (``unet`` and ``unet_cbam`` are the
same :class:`~slidemap.models.unet.UNet`), so ablations are configs, not code::

    build_model("unet_cbam", in_channels=21, base_channels=16, cbam_decoder=False)

The options of a name are the keyword-only parameters of its factory; anything else is
a :class:`~slidemap.errors.ConfigError` that lists the valid names or options.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from slidemap.errors import ConfigError

#: modules that register the built-in networks when imported.
_BUILTIN_MODULES = ("slidemap.models.unet", "slidemap.models.segnet", "slidemap.models.dpfcn")

Factory = TypeVar("Factory", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of one model name.

    Attributes:
        name: registry name, e.g. ``"unet_cbam"``.
        description: one line for tables and ``--help``.
        factory: the class or function called as ``factory(in_channels, **options)``.
        options: every option with its default value for this name.
    """

    name: str
    description: str
    factory: Callable[..., nn.Module]
    options: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelInfo] = {}


def _factory_options(factory: Callable[..., nn.Module]) -> dict[str, Any]:
    """Keyword-only parameters of ``factory`` with their defaults."""
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def register_model(name: str, description: str, **defaults: Any) -> Callable[[Factory], Factory]:
    """Class/function decorator registering ``name``; ``defaults`` override the factory's.

    The factory must take ``in_channels`` first and every option as keyword-only.
    """

    def decorator(factory: Factory) -> Factory:
        options = _factory_options(factory)
        unknown = sorted(set(defaults) - set(options))
        if unknown:
            raise TypeError(f"register_model({name!r}): {factory} has no option {unknown}")
        if name in _REGISTRY:
            raise TypeError(f"register_model: {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, description, factory, {**options, **defaults})
        return factory

    return decorator


def _load_builtin() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def _display_rank(info: ModelInfo) -> int:
    module = info.factory.__module__
    return _BUILTIN_MODULES.index(module) if module in _BUILTIN_MODULES else len(_BUILTIN_MODULES)


def list_models() -> list[str]:
    """Registered names: ``unet, unet_cbam, segnet, dpfcn``, then any others as registered."""
    _load_builtin()
    return [info.name for info in sorted(_REGISTRY.values(), key=_display_rank)]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; :class:`ConfigError` when unknown."""
    _load_builtin()
    if name not in _REGISTRY:
        raise ConfigError(f"model {name!r} is unknown; choose one of {', '.join(list_models())}")
    return _REGISTRY[name]


def build_model(name: str, in_channels: int, **options: Any) -> nn.Module:
    """Build model ``name`` for ``in_channels`` input channels.

    ``forward((B, in_channels, H, W)) -> logits (B, 1, H, W)`` for any ``H, W``. The
    model carries ``model_name`` and ``model_options`` (every option, resolved), which is
    what a checkpoint needs to rebuild it.

    Raises:
        ConfigError: unknown name, unknown option (both list the valid ones) or a bad value.
    """
    info = model_info(name)
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        raise ConfigError(
            f"model {name!r} has no option {', '.join(unknown)}; "
            f"valid options: {', '.join(info.options)}"
        )
    resolved = {**info.options, **options}
    model = info.factory(in_channels, **resolved)
    model.model_name = name
    # plain data (tuples as lists) so checkpoints and YAML configs store it safely
    model.model_options = {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()}
    return model


#: bytes per parameter a loaded model takes (float32 weights, plus room for a copy).
BYTES_PER_PARAMETER = 8


def declared_parameters(name: str, in_channels: int, **options: Any) -> int:
    """Parameters ``build_model(name, in_channels, **options)`` would allocate, counted on
    torch's ``meta`` device (shapes only: nothing is allocated, however absurd the options).

    Raises:
        ConfigError: as :func:`build_model`.
    """
    import torch

    with torch.device("meta"):
        model = build_model(name, in_channels, **options)
    return sum(p.numel() for p in model.parameters())


def check_model_size(name: str, in_channels: int, options: dict[str, Any], source: Any = None) -> int:
    """Refuse options that declare a model larger than the memory budget, before building it
    (a hand-edited ``base_channels: 100000`` in a checkpoint or a config); returns the
    parameter count.

    Raises:
        ConfigError: bad options. ResourceError: too large, naming ``source``.
    """
    from slidemap.io.resources import check_allocation

    count = declared_parameters(name, in_channels, **options)
    check_allocation(count * BYTES_PER_PARAMETER, f"model {name!r} with {count:,} parameters", source)
    return count
