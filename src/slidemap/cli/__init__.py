"""The ``slidemap`` command: a thin dispatcher over one module per subcommand.

Each subcommand lives in ``slidemap/cli/<name>.py`` and defines::

    HELP = "one line shown by slidemap --help"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...   # exit status

Only the module of the command being run is imported, so ``slidemap synth`` does not pay
for importing torch. Any :class:`~slidemap.errors.SlidemapError`, and any OS-level error
(disk full, permission denied) that escapes, becomes one line on stderr naming the path and
a non-zero exit; ``--debug`` shows the traceback instead. SIGINT and SIGTERM end a command
with one line and status ``128 + signal`` after its clean-up has run.
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
    "predict", "export", "models",
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
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(_module_name(args.command))
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
