"""``slidemap models``: the model registry as a table (parameters, GFLOPs, description)."""

from __future__ import annotations

import argparse

HELP = "list the available models with their size and cost per 128x128 patch"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=int, default=16, help="base_channels of every model (16)")
    parser.add_argument(
        "--in-channels", type=int, default=21, help="input channels: bands + features (21)"
    )
    parser.add_argument("--size", type=int, default=128, help="patch side for the FLOP count (128)")


def models_table(width: int, in_channels: int, size: int = 128) -> str:
    """Markdown table of every registered model built with ``base_channels=width``."""
    from slidemap.models import build_model, list_models, model_info, profile_model

    rows = [
        "| name | parameters | GFLOPs / patch | description |",
        "| --- | ---: | ---: | --- |",
    ]
    for name in list_models():
        model = build_model(name, in_channels, base_channels=width)
        profile = profile_model(model, in_channels, size)
        rows.append(
            f"| {name} | {profile.parameters:,} | {profile.gflops:.3f} | "
            f"{model_info(name).description} |"
        )
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from slidemap.errors import ConfigError

    if args.width < 1 or args.in_channels < 1 or args.size < 1:
        raise ConfigError("--width, --in-channels and --size must be integers >= 1")
    print(
        f"models with base_channels={args.width}, {args.in_channels} input channels, "
        f"forward GFLOPs of one {args.size}x{args.size} patch:"
    )
    print(models_table(args.width, args.in_channels, args.size))
    return 0
