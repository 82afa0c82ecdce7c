"""The ``slidemap`` command: a thin dispatcher over one module per subcommand.

Each subcommand lives in ``slidemap/cli/<name>.py`` and defines::

    HELP = "one line shown by slidemap --help"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...   # exit status

The top level of those modules is cheap (argparse, pathlib, ``slidemap.errors``): heavy
libraries (torch, rasterio, matplotlib) are imported inside ``add_arguments`` and ``run``.
So ``slidemap --help`` imports every command module to list each with its ``HELP`` line,
while only the selected command's arguments are built and only it imports its libraries
(``slidemap synth`` never pays for torch). A test keeps it so.

Any :class:`~slidemap.errors.SlidemapError`, and any OS-level error (disk full, permission
denied) that escapes, becomes one line on stderr naming the path and a non-zero exit;
``--debug`` (before or after the command name) shows the traceback instead. A misspelt
command is answered with the closest one. SIGINT and SIGTERM end a command with one line and
status ``128 + signal`` after its clean-up has run.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType

from slidemap import __version__

#: command name -> module under slidemap.cli (dashes become underscores).
COMMANDS: tuple[str, ...] = (
    "demo", "synth", "synth-scene", "features", "train", "evaluate", "compare",
    "predict", "export", "models", "crossval",
)

#: exit status of a command line argparse or the dispatcher refuses (argparse's own).
USAGE_EXIT = 2

_DEBUG_HELP = "show the full traceback on error (accepted before or after the command)"


def _module_name(command: str) -> str:
    return f"slidemap.cli.{command.replace('-', '_')}"


def _available() -> list[str]:
    return [c for c in COMMANDS if importlib.util.find_spec(_module_name(c)) is not None]


def command_module(command: str) -> ModuleType:
    """The module of ``command`` (cheap to import: see the module docstring)."""
    return importlib.import_module(_module_name(command))


def build_parser(selected: str | Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``slidemap`` parser: every available command listed with its ``HELP`` line, the
    arguments of ``selected`` (one name, or several for tests that walk all parsers) built.

    ``--debug`` is defined on the top level (default ``False``) and again on each command
    with ``default=SUPPRESS``, so ``slidemap --debug predict ...`` is not reset by the
    command's parser and ``slidemap predict ... --debug`` works too.
    """
    chosen = {selected} if isinstance(selected, str) else set(selected or ())
    parser = argparse.ArgumentParser(
        prog="slidemap",
        description="Landslide mapping from satellite imagery.",
        epilog="Run 'slidemap COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"slidemap {__version__}",
                        help="print slidemap's version and exit")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in _available():
        module = command_module(command)
        if command in chosen:
            p = sub.add_parser(command, help=module.HELP, description=module.HELP)
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help=_DEBUG_HELP)
            module.add_arguments(p)
        else:
            sub.add_parser(command, help=module.HELP, add_help=False)
    return parser


def _first_positional(argv: Sequence[str]) -> str | None:
    """The command name: the first argument that is not an option (the top-level options,
    ``--debug``, ``--version`` and ``--help``, take no value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _unknown_command(name: str) -> int:
    """One line on stderr for a command that does not exist, with the closest ones."""
    close = difflib.get_close_matches(name, _available(), n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    print(f"slidemap: error: unknown command {name!r}{hint} (slidemap --help lists them)",
          file=sys.stderr)
    return USAGE_EXIT


def _raise_interrupted(signum: int, _frame: object) -> None:
    from slidemap.errors import Interrupted

    raise Interrupted(signum)


def install_signal_handlers() -> dict[int, object]:
    """SIGINT and SIGTERM raise :class:`~slidemap.errors.Interrupted` in the main thread, so
    every clean-up runs (no temporaries left, nothing half-written under a final name) and
    the command ends with one line and status ``128 + signal``. Returns the old handlers."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        old[signum] = signal.signal(signum, _raise_interrupted)
    return old


def restore_signal_handlers(old: dict[int, object]) -> None:
    import signal

    for signum, handler in old.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]


def _os_error_line(exc: OSError) -> str:
    """``<path>: <reason>`` of an OS-level error (disk full, permission, I/O error)."""
    reason = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    paths = [p for p in (exc.filename, getattr(exc, "filename2", None)) if p]
    return f"{paths[0]}: {reason}" if paths else reason


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = _first_positional(argv)
    if selected is not None and selected not in _available():
        return _unknown_command(selected)
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = command_module(args.command)
    debug = bool(getattr(args, "debug", False))
    from slidemap.errors import Interrupted, SlidemapError

    def fail(message: str, code: int) -> int:
        print(f"slidemap {args.command}: error: {message}", file=sys.stderr)
        return code

    old_handlers = install_signal_handlers()
    try:
        return int(module.run(args) or 0)
    except SlidemapError as exc:
        if debug:
            raise
        return fail(str(exc), exc.exit_code)
    except Interrupted as exc:
        if debug:
            raise
        print(f"slidemap {args.command}: {exc.describe()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"slidemap {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            raise
        return fail("out of memory; use smaller windows or batches (--window, --batch-size)", 2)
    except OSError as exc:  # a disk or permission problem no layer turned into a SlidemapError
        if debug:
            raise
        return fail(_os_error_line(exc), 2)
    finally:
        restore_signal_handlers(old_handlers)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
