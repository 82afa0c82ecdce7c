"""The ``slidemap`` command: a thin dispatcher over one module per subcommand.

Each subcommand lives in ``slidemap/cli/<name>.py`` and defines::

    HELP = "one line shown by slidemap --help"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...   # exit status

Only the module of the command being run is imported, so ``slidemap synth`` does not pay
for importing torch. Any :class:`~slidemap.errors.SlidemapError` becomes one line on
stderr and a non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

#: command name -> module under slidemap.cli (dashes become underscores).
COMMANDS: tuple[str, ...] = (
    "demo", "synth", "synth-scene", "features", "train", "evaluate", "compare",
    "predict", "export", "models", "crossval",
)


def _module_name(command: str) -> str:
    return f"slidemap.cli.{command.replace('-', '_')}"


def _available() -> list[str]:
    return [c for c in COMMANDS if importlib.util.find_spec(_module_name(c)) is not None]


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Parser with every available subcommand; only ``selected``'s module is imported."""
    parser = argparse.ArgumentParser(
        prog="slidemap", description="Landslide mapping from satellite imagery."
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _available():
        if command == selected:
            module = importlib.import_module(_module_name(command))
            p = sub.add_parser(command, help=module.HELP, description=module.HELP)
            p.add_argument("--debug", action="store_true", help="show full tracebacks on error")
            module.add_arguments(p)
        else:
            sub.add_parser(command, help=f"(see slidemap {command} --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(_module_name(args.command))
    debug = bool(getattr(args, "debug", False))
    from slidemap.errors import SlidemapError

    try:
        return int(module.run(args) or 0)
    except SlidemapError as exc:
        if debug:
            raise
        print(f"slidemap {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"slidemap {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
